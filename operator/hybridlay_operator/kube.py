"""The operator's writes and listings against the Kubernetes API: one thin, generic layer.

It rides on the official client's transport and authentication (kubeconfig or the in-cluster
service account) but sends plain JSON and returns plain dicts: the typed models would only be
converted back, and their validation costs more than the request on a busy operator. Blocking
calls run in a bounded thread pool so the event loop (kopf's watches, the webhook server) stays free.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import client, config

from hybridlay import names

MERGE_PATCH = "application/merge-patch+json"
PAGE_SIZE = 5000


class ApiError(Exception):
    """A non-2xx answer of the API server."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        self.status = status
        super().__init__(f"{method} {path}: HTTP {status}: {message}")


def load_client() -> client.ApiClient:
    """An API client: the in-cluster service account in a pod, else ``KUBECONFIG`` (or ~/.kube/config)."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        # Read the variable now: the library's default location was fixed when it was imported.
        kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def connection_info(api_client: client.ApiClient) -> kopf.ConnectionInfo:
    """The same server and credentials for kopf's own client (its watches and webhook server)."""
    cfg = api_client.configuration
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    scheme, _, token = header.partition(" ") if header and " " in header else ("", "", header or "")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def custom_path(plural: str, name: str | None = None, subresource: str | None = None) -> str:
    path = f"/apis/{names.GROUP}/{names.VERSION}/{plural}"
    if name is not None:
        path += f"/{name}"
    if subresource is not None:
        path += f"/{subresource}"
    return path


def core_path(plural: str, namespace: str | None = None, name: str | None = None) -> str:
    path = "/api/v1" + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return path + (f"/{name}" if name else "")


def lease_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return path + (f"/{name}" if name else "")


class Kube:
    """Asynchronous JSON requests through one API client and a bounded pool of threads."""

    def __init__(self, api_client: client.ApiClient, threads: int = 16) -> None:
        self._client = api_client
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube")

    @property
    def client(self) -> client.ApiClient:
        return self._client

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _request_sync(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "",
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        _, url, headers, body, _ = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(method, url, header_params=headers, body=body, _request_timeout=30)
        data = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            message = data.decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                message = json.loads(data).get("message", message)
            raise ApiError(response.status, method, path, message)
        return json.loads(data) if data else None

    async def request(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        """One request (``query``, ``content_type`` as options); the parsed JSON answer."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self._request_sync, method, path, body, **options)
        return await loop.run_in_executor(self._pool, call)

    async def list(self, path: str, label_selector: str = "", field_selector: str = "") -> list[dict[str, Any]]:
        """Every item of a collection, page by page (a real API server caps one answer)."""
        items: list[dict[str, Any]] = []
        cont = ""
        while True:
            query = [("limit", str(PAGE_SIZE))]
            if cont:
                query.append(("continue", cont))
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            page = await self.request("GET", path, query=query)
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue") or ""
            if not cont:
                return items

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return result

    async def create(self, path: str, body: dict[str, Any]) -> bool:
        """Create; False when the name is taken (409): for an IPInstance, someone holds that address."""
        try:
            await self.request("POST", path, body)
        except ApiError as e:
            if e.status == 409:
                return False
            raise
        return True

    async def patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        """JSON merge patch; None when the object is gone."""
        try:
            result: dict[str, Any] = await self.request("PATCH", path, patch, content_type=MERGE_PATCH)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return result

    async def delete(self, path: str) -> bool:
        """Delete; False when it was already gone (deletion is idempotent for our callers)."""
        try:
            await self.request("DELETE", path)
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True
