"""The operator's requests to the Kubernetes API: one thin, generic layer over one aiohttp session.

It takes the server and credentials from the official client's configuration (kubeconfig or the
in-cluster service account) but sends plain JSON and returns plain dicts: the typed models would
only be converted back. Requests run on the event loop with keep-alive connections: no thread per
request, which on a busy operator cost twice the CPU of the request itself.

Large collections are read in a stream (:meth:`Kube.list_each`): each item is handed over as it is
parsed and can be dropped at once, so a list of 100,000 objects never sits in memory as a whole.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import kopf
from kubernetes import client, config

from hybridlay import names

MERGE_PATCH = "application/merge-patch+json"
PAGE_SIZE = 5000
REQUEST_TIMEOUT = 30.0
# How long a credential read from the client's configuration is used before it is read again.
AUTH_SECONDS = 10.0
# Silence allowed while a large list is prepared by the server (100,000 objects take seconds).
LIST_READ_TIMEOUT = 120.0
# A watch line is one object; a pod with large annotations can exceed aiohttp's default line limit.
MAX_LINE = 64 << 20
TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1"
Query = list[tuple[str, str]]
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class ApiError(Exception):
    """A non-2xx answer of the API server; ``reason`` and ``details`` come from its Status body."""

    def __init__(
        self, status: int, method: str, path: str, message: str, *, reason: str = "", details: Any = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.details = details if isinstance(details, dict) else {}
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


def _authorization(cfg: client.Configuration) -> str | None:
    # The configuration's refresh hook (if any) renews rotating service-account tokens.
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    return str(header) if header else None


def connection_info(api_client: client.ApiClient) -> kopf.ConnectionInfo:
    """The same server and credentials for kopf's own client (its watches and webhook server)."""
    cfg = api_client.configuration
    header = _authorization(cfg)
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


def _ssl_context(cfg: client.Configuration) -> ssl.SSLContext | bool:
    if not str(cfg.host).startswith("https"):
        return False
    if cfg.verify_ssl:
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    return context


def _query(query: Query | None) -> str:
    return "?" + urlencode(query) if query else ""


class Kube:
    """Asynchronous JSON requests through one keep-alive session (created on first use, in the loop
    that uses it); ``threads`` bounds the connections kept, as it bounded the threads before."""

    def __init__(self, api_client: client.ApiClient, threads: int = 16) -> None:
        self._client = api_client
        self._limit = max(4, 2 * threads)
        self._session: aiohttp.ClientSession | None = None
        self._base = ""
        self._auth: tuple[float, str | None] = (-AUTH_SECONDS, None)

    @property
    def client(self) -> client.ApiClient:
        return self._client

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            cfg = self._client.configuration
            connector = aiohttp.TCPConnector(limit=self._limit, ssl=_ssl_context(cfg), keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                base_url=None,
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                # Compressing 100 MB of JSON costs the API server more than loopback or a LAN saves.
                headers={"Accept-Encoding": "identity"},
                auto_decompress=False,
                read_bufsize=1 << 18,
            )
        return self._session

    def _url(self, path: str, query: Query | None = None) -> str:
        if not self._base:
            # The client's ``host`` reads the proxy settings from the environment at every call.
            self._base = str(self._client.configuration.host).rstrip("/")
        return self._base + path + _query(query)

    def _headers(self, accept: str = "application/json", content_type: str = "") -> dict[str, str]:
        headers = {"Accept": accept}
        now = time.monotonic()
        if now - self._auth[0] > AUTH_SECONDS:
            # Asked again now and then: a rotating service-account token is re-read by the client.
            self._auth = (now, _authorization(self._client.configuration))
        auth = self._auth[1]
        if auth:
            headers["Authorization"] = auth
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def close(self) -> None:
        """Close the session (at once when called in its loop; otherwise it is dropped)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            try:
                asyncio.get_running_loop().create_task(session.close())
            except RuntimeError:
                session.detach()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @staticmethod
    def _error(status: int, method: str, path: str, data: bytes) -> ApiError:
        message, reason, details = data.decode(errors="replace"), "", None
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = str(body.get("message", message))
            reason = str(body.get("reason") or "")
            details = body.get("details")
        return ApiError(status, method, path, message, reason=reason, details=details)

    async def request(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        """One request (``query``, ``content_type`` as options); the parsed JSON answer."""
        query: Query | None = options.get("query")
        content_type = options.get("content_type") or ("application/json" if body is not None else "")
        data = None if body is None else _dumps(body).encode()
        async with self._http().request(
            method,
            self._url(path, query),
            data=data,
            headers=self._headers(content_type=content_type),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        ) as response:
            raw = await response.read()
            if not 200 <= response.status < 300:
                raise self._error(response.status, method, path, raw)
        return json.loads(raw) if raw else None

    async def list(self, path: str, label_selector: str = "", field_selector: str = "") -> list[dict[str, Any]]:
        """Every item of a collection as it is now (read from etcd), page by page."""
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

    @staticmethod
    def _cache_query(resource_version: str, label_selector: str = "") -> Query:
        """A list from the API server's watch cache: "0" is any recent state (no etcd read, no
        paging: the cache answers in one piece); another version asks for one not older than it."""
        query = [("resourceVersion", resource_version)]
        if resource_version != "0":
            query.append(("resourceVersionMatch", "NotOlderThan"))
        if label_selector:
            query.append(("labelSelector", label_selector))
        return query

    async def list_each(
        self,
        path: str,
        on_item: Callable[[dict[str, Any]], None],
        resource_version: str = "0",
        label_selector: str = "",
    ) -> str:
        """Stream a list from the watch cache, calling ``on_item`` with each item as it is parsed;
        returns the list's resourceVersion (to watch from)."""
        query = self._cache_query(resource_version, label_selector)
        parser = ListParser(on_item)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=LIST_READ_TIMEOUT)
        async with self._http().get(self._url(path, query), headers=self._headers(), timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise self._error(response.status, "GET", path, await response.read())
            decoder = codecs.getincrementaldecoder("utf-8")()
            async for chunk in response.content.iter_chunked(1 << 20):
                parser.feed(decoder.decode(chunk))
            parser.feed(decoder.decode(b"", final=True), final=True)
        return parser.resource_version

    async def table(self, path: str, resource_version: str = "0") -> dict[str, Any]:
        """The collection as the server's Table (its printer columns, no objects): a tenth of the
        bytes of the objects, and much less work for the server. A server (or stand-in) that does
        not serve Tables answers with the plain list, which is returned as it is."""
        query = [*self._cache_query(resource_version), ("includeObject", "None")]
        accept = f"{TABLE},application/json"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=LIST_READ_TIMEOUT)
        headers = self._headers(accept=accept)
        async with self._http().get(self._url(path, query), headers=headers, timeout=timeout) as response:
            raw = await response.read()
            if not 200 <= response.status < 300:
                raise self._error(response.status, "GET", path, raw)
        result: dict[str, Any] = json.loads(raw)
        return result

    async def watch(
        self, path: str, resource_version: str, timeout_seconds: int, label_selector: str = ""
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events from ``resource_version`` (bookmarks included) until the server ends the
        stream after ``timeout_seconds``."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if label_selector:
            query.append(("labelSelector", label_selector))
        # A dead connection shows as silence beyond the stream's own end.
        timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
        async with self._http().get(self._url(path, query), headers=self._headers(), timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise self._error(response.status, "GET", path, await response.read())
            content = response.content
            while True:
                line = await content.readuntil(b"\n", max_size=MAX_LINE)
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)

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
        return await self.create_object(path, body) is not None

    async def create_object(self, path: str, body: dict[str, Any], field_manager: str = "") -> dict[str, Any] | None:
        """Create and return the object as stored (``field_manager`` names the writer in its
        managedFields); None when the name is taken (409)."""
        query = [("fieldManager", field_manager)] if field_manager else None
        try:
            result: dict[str, Any] = await self.request("POST", path, body, query=query)
        except ApiError as e:
            if e.status == 409:
                return None
            raise
        return result

    async def patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        """JSON merge patch; None when the object is gone."""
        try:
            result: dict[str, Any] = await self.request("PATCH", path, patch, content_type=MERGE_PATCH)
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return result

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> bool:
        """Delete; False when it was already gone (deletion is idempotent for our callers)."""
        try:
            await self.request("DELETE", path, body)
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True


_WS = re.compile(r"[ \t\n\r]*")
_decode = json.JSONDecoder().raw_decode


class ListParser:
    """An incremental reader of one JSON list answer (``{"metadata": …, "items": [ … ], …}``):
    each item is decoded as soon as all of it has arrived and handed to ``on_item``; the other
    top-level fields are kept in ``top``. Only the unparsed tail of the text is ever buffered."""

    _OPEN, _KEY, _VALUE, _ITEMS, _DONE = range(5)

    def __init__(self, on_item: Callable[[dict[str, Any]], None]) -> None:
        self.on_item = on_item
        self.top: dict[str, Any] = {}
        self._buf = ""
        self._pos = 0
        self._state = self._OPEN
        self._key = ""

    @property
    def resource_version(self) -> str:
        return str((self.top.get("metadata") or {}).get("resourceVersion") or "")

    def feed(self, text: str, final: bool = False) -> None:
        self._buf = self._buf[self._pos :] + text if self._pos else self._buf + text
        self._pos = 0
        while self._state != self._DONE and self._step():
            pass
        if final and self._state != self._DONE:
            raise ValueError(f"list answer ended early (at {self._buf[self._pos : self._pos + 80]!r})")

    def _skip(self) -> str | None:
        """The next non-blank character (not consumed), or None when the buffer ends first."""
        self._pos = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
        return self._buf[self._pos] if self._pos < len(self._buf) else None

    def _value(self) -> Any:
        """Decode the value at the position, or raise ``_More`` when it has not all arrived."""
        try:
            value, end = _decode(self._buf, self._pos)
        except ValueError:
            raise _More from None
        self._pos = end
        return value

    def _step(self) -> bool:
        """Take one token or value; False when the buffer ends first."""
        char = self._skip()
        if char is None:
            return False
        step = (self._open, self._member, self._member_value, self._item)[self._state]
        try:
            step(char)
        except _More:
            return False
        return True

    def _open(self, char: str) -> None:
        if char != "{":
            raise ValueError(f"a list answer must be an object, not {self._buf[:80]!r}")
        self._pos += 1
        self._state = self._KEY

    def _member(self, char: str) -> None:
        if char in ",}":
            self._pos += 1
            self._state = self._DONE if char == "}" else self._KEY
            return
        start = self._pos
        key = self._value()
        if self._skip() != ":":
            self._pos = start
            raise _More
        self._pos += 1
        self._key = str(key)
        self._state = self._VALUE

    def _member_value(self, char: str) -> None:
        if self._key == "items" and char == "[":
            self._pos += 1
            self._state = self._ITEMS
        else:
            self.top[self._key] = self._value()
            self._state = self._KEY

    def _item(self, char: str) -> None:
        if char in ",]":
            self._pos += 1
            if char == "]":
                self._state = self._KEY
            return
        item = self._value()
        if isinstance(item, dict):
            self.on_item(item)


class _More(Exception):
    """The buffer ends inside a value: wait for more text."""
