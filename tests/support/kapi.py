"""A Kubernetes API stand-in for tests: KMock's emulator, made faster and closer to the real API.

No kube-apiserver can be installed on our machines (see shared/reference/test-bed.md), so tests
that need the API run against KMock (PyPI ``kmock``, by kopf's author). KMock 0.8 as published has
measured limits; this one subclass fixes those our code would otherwise have to work around:

- it keeps every request ever served and matches each new one against that history (a request
  "matches" a reaction when it is found in the reaction's filtered view of the history), so it
  slows down quadratically (97 creates/s fresh, 12/s after 200 objects). Nothing here asserts on
  the history, so only the requests in flight are kept;
- create answers 200 where the API answers 201 (the official client then returns None): 201 here;
- label and field selectors are ignored: both are honoured here for list and watch (equality,
  inequality, ``in``/``notin``, existence);
- no ``resourceVersion``, ``uid`` or ``creationTimestamp``: set here, and an update carrying a stale
  ``resourceVersion`` gets 409 Conflict, as on the real API;
- PUT (replace, as the client's ``replace_*`` sends) is not served: served here, whole object or
  ``/status``;
- lists come without ``kind``/``apiVersion`` (the API sends ``<Kind>List``; dynamic clients such
  as kubernetes.core's need them): added;
- the paths of Namespace objects themselves (``/api/v1/namespaces/NAME``) are read as a namespace
  prefix (500): read as the object here;
- ``dryRun=All`` is not honoured: here a dry-run write answers as the real write would and stores
  nothing (and is recorded in ``dry_runs`` for assertions);
- a Secret's ``stringData`` is stored as given: converted into base64 ``data`` here, as the API does;
- a watch sends a snapshot of the objects and only then subscribes to changes, so changes made
  while the snapshot is sent are lost (the real API resumes from a resourceVersion and loses
  nothing): here the subscription is taken under the snapshot's lock.

What it still does not do, and our code must not rely on it doing: schema validation, defaulting,
admission webhooks, garbage collection through ownerReferences, server-side apply, strategic merge
(patches merge recursively, ``None`` deletes a key), watch resumption from a resourceVersion (a new
watch replays every object as ADDED), server-side watch timeouts.

Use it in-process (``RunningAPI`` runs it on its own thread and event loop, with a kubeconfig for
clients), or as a process: ``python tests/support/kapi.py --host 0.0.0.0 --port 6443 --kubeconfig
FILE`` (e.g. inside a network namespace other namespaces can reach).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import datetime
import itertools
import json
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import yaml
from kmock._internal import enums, k8s, parsing, rendering

GROUP = "networking.hybridlay.io"

# (group/version/plural, kind, namespaced, subresources): what the tests' clients discover.
RESOURCES: tuple[tuple[str, str, bool, tuple[str, ...]], ...] = (
    (f"{GROUP}/v1/networks", "Network", False, ("status",)),
    (f"{GROUP}/v1/subnets", "Subnet", False, ("status",)),
    (f"{GROUP}/v1/ipinstances", "IPInstance", False, ("status",)),
    (f"{GROUP}/v1/nodeinfos", "NodeInfo", False, ("status",)),
    ("v1/pods", "Pod", True, ("status",)),
    ("v1/namespaces", "Namespace", False, ("status",)),
    ("v1/nodes", "Node", False, ("status",)),
    ("v1/events", "Event", True, ()),
    ("v1/secrets", "Secret", True, ()),
    ("v1/configmaps", "ConfigMap", True, ()),
    ("v1/services", "Service", True, ("status",)),
    ("v1/serviceaccounts", "ServiceAccount", True, ()),
    ("events.k8s.io/v1/events", "Event", True, ()),
    ("coordination.k8s.io/v1/leases", "Lease", True, ()),
    ("apps/v1/statefulsets", "StatefulSet", True, ("status",)),
    ("apps/v1/deployments", "Deployment", True, ("status",)),
    ("apps/v1/daemonsets", "DaemonSet", True, ("status",)),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False, ("status",)),
    ("admissionregistration.k8s.io/v1/validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False, ()),
    ("admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False, ()),
    ("rbac.authorization.k8s.io/v1/clusterroles", "ClusterRole", False, ()),
    ("rbac.authorization.k8s.io/v1/clusterrolebindings", "ClusterRoleBinding", False, ()),
    ("rbac.authorization.k8s.io/v1/roles", "Role", True, ()),
    ("rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding", True, ()),
)
KINDS = {path: kind for path, kind, _, _ in RESOURCES}
VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


_parse_path = parsing.parse_path


def _parse_namespace_paths(path: str) -> parsing.ParsedPath:
    """KMock reads ``/api/v1/namespaces/NAME`` as a namespace prefix; it is the Namespace object."""
    parts = path.strip("/").split("/")
    subresource = parts[4] if len(parts) == 5 and parts[4] in ("status", "finalize") else None
    if parts[:3] == ["api", "v1", "namespaces"] and (len(parts) <= 4 or subresource):
        return parsing.ParsedPath("", "v1", "namespaces", None, parts[3] if len(parts) > 3 else None, subresource)
    return _parse_path(path)


# KMock's request parser reads this module attribute at every request.
parsing.parse_path = _parse_namespace_paths


class _NoHistory(list[Any]):
    """A reaction's request log that keeps nothing: only assertions on reactions would read it."""

    def append(self, item: Any) -> None:
        pass


# --- selectors -----------------------------------------------------------------------------------

_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses: ``a in (x,y),b=c`` → two terms."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def _term(term: str, lookup: Callable[[Mapping[str, Any], str], str | None]) -> Callable[[Mapping[str, Any]], bool]:
    if match := _SET_TERM.match(term):
        key, values = match.group(1), {v.strip() for v in match.group(3).split(",")}
        wanted = match.group(2) == "in"
        return lambda obj: (lookup(obj, key) in values) is wanted
    if "!=" in term:
        key, value = (s.strip() for s in term.split("!=", 1))
        return lambda obj: lookup(obj, key) != value
    if "=" in term:
        key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
        return lambda obj: lookup(obj, key) == value
    if term.startswith("!"):
        absent = term[1:].strip()
        return lambda obj: lookup(obj, absent) is None
    return lambda obj: lookup(obj, term) is not None


def parse_selector(selector: str, lookup: Callable[[Mapping[str, Any], str], str | None]) -> Callable[[Any], bool]:
    """A predicate for the Kubernetes selector syntax, reading values through ``lookup``."""
    checks = [_term(term, lookup) for term in _split_terms(selector)]
    return lambda obj: isinstance(obj, Mapping) and all(check(obj) for check in checks)


def _label(obj: Mapping[str, Any], key: str) -> str | None:
    value = (obj.get("metadata") or {}).get("labels", {}).get(key)
    return None if value is None else str(value)


def _field(obj: Mapping[str, Any], path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return "" if path.startswith(("spec.", "status.")) else None  # unset fields select as ""
        node = node[part]
    return str(node).lower() if isinstance(node, bool) else str(node)


def selector_of(params: Mapping[str, str]) -> Callable[[Any], bool]:
    labels = parse_selector(params.get("labelSelector", ""), _label)
    fields = parse_selector(params.get("fieldSelector", ""), _field)
    return lambda obj: labels(obj) and fields(obj)


# --- the emulator --------------------------------------------------------------------------------


class KubeAPI(kmock.KubernetesEmulator):  # type: ignore[misc]
    """KMock's emulator without the request history, with 201, selectors, resourceVersion and PUT."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for payload in self._payloads:
            object.__setattr__(payload, "_requests", _NoHistory())  # reactions are frozen attrs
        self._versions = itertools.count(1)
        self.dry_runs: list[tuple[str, str | None]] = []
        for path, kind, namespaced, subresources in RESOURCES:
            self.resources[path] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, singular=kind.lower(), verbs=VERBS, subresources=subresources
            )

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        try:
            return await self._handle_k8s(request)
        finally:
            # The root log must hold the request while it is matched; after that, drop it.
            for index, logged in enumerate(self._requests):
                if logged is request:
                    del self._requests[index]
                    break

    async def _handle_k8s(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and request.params.get("dryRun") == "All":
            return await self._serve_dry_run(request)
        if request.resource is not None and request.method == enums.method.PUT and request.name:
            return await self._serve_put(request)
        if request.resource is not None and isinstance(request.data, dict):
            if request.resource.plural == "secrets":
                _encode_string_data(request.data)
            if request.action == enums.action.CREATE:
                meta = request.data.setdefault("metadata", {})
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                meta["resourceVersion"] = str(next(self._versions))
            elif request.action == enums.action.UPDATE and request.name:
                self._check_version(request)
                request.data.setdefault("metadata", {})["resourceVersion"] = str(next(self._versions))
        response = await super()._handle(request)
        if request.action == enums.action.CREATE and response.status == 200 and not response.prepared:
            response.set_status(201)
        return response

    async def _serve_dry_run(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """Answer a dry-run write as the real one would, storing nothing."""
        self.dry_runs.append((request.method.value, request.name))
        try:
            async with self._lock:
                if request.action == enums.action.CREATE:
                    key = (request.resource, request.namespace or _namespace_of(request.data), _name_of(request.data))
                    if key in self.objects and not self.objects[key].deleted:
                        raise k8s.KubernetesObjectConflictError()
                    return aiohttp.web.json_response(copy.deepcopy(request.data), status=201)
                current = copy.deepcopy(self._stored(request).raw)
            if request.method == enums.method.DELETE:
                return aiohttp.web.json_response(current)
            if request.method == enums.method.PUT:
                return aiohttp.web.json_response(dict(request.data, metadata=current.get("metadata")))
            return aiohttp.web.json_response(_merged(current, request.data))
        except k8s.KubernetesError as e:
            return await self._render_error(e)

    def _stored(self, request: rendering.Request) -> Any:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise k8s.KubernetesObjectNotFoundError()
        return self.objects[key]

    def _check_version(self, request: rendering.Request) -> None:
        wanted = (request.data.get("metadata") or {}).get("resourceVersion")
        if wanted is None:
            return
        current = self._stored(request).raw.get("metadata", {}).get("resourceVersion")
        if wanted != current:
            raise k8s.KubernetesError(
                status=409,
                reason="Conflict",
                message=f"the object has been modified; please apply your changes to the latest version "
                f"(resourceVersion {wanted} is not {current})",
            )

    async def _serve_put(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        try:
            async with self._lock:
                self._check_version(request)
                stored = self._stored(request)
                current = copy.deepcopy(stored.raw)
                if request.subresource == "status":
                    new = dict(current, status=request.data.get("status"))
                else:
                    new = dict(request.data, status=current.get("status"))
                    # Identity and lifecycle fields belong to the server, as on the real API.
                    new["metadata"] = dict(
                        request.data.get("metadata") or {},
                        **{
                            k: v
                            for k, v in current.get("metadata", {}).items()
                            if k in ("uid", "creationTimestamp", "deletionTimestamp", "namespace", "name")
                        },
                    )
                new["metadata"]["resourceVersion"] = str(next(self._versions))
                stored.create({k: v for k, v in new.items() if v is not None})
                raw = stored.raw
                await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
                meta = raw.get("metadata", {})
                if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                    stored.delete()
                    await self._buses[request.resource].put({"type": "DELETED", "object": raw})
            return aiohttp.web.json_response(raw)
        except k8s.KubernetesError as e:
            return await self._render_error(e)

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        result = await super()._serve_list(request)
        resource = request.resource
        api_version = f"{resource.group}/{resource.version}" if resource.group else resource.version
        kind = KINDS.get(f"{api_version}/{resource.plural}")
        if kind:
            result.update(apiVersion=api_version, kind=f"{kind}List")
        matches = selector_of(request.params)
        result["items"] = [obj for obj in result["items"] if matches(obj)]
        result["metadata"]["resourceVersion"] = str(next(self._versions))
        return result

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        yield b""  # sends the headers: the stream is open even when nothing happens
        matches = selector_of(request.params)
        bus = self._buses[request.resource]
        async with self._lock:
            snapshot = [o.raw for o in self._KubernetesEmulator__get_objs(request, strict=False) if not o.deleted]
            marker = await bus.mark()
        try:
            for raw in snapshot:
                if matches(raw):
                    yield {"type": "ADDED", "object": raw}
            async for event in bus.stream(since=marker):
                meta = event.get("object", {}).get("metadata", {})
                in_scope = self._KubernetesEmulator__check(
                    request, request.resource, meta.get("namespace"), meta.get("name"), strict=False
                )
                if in_scope and matches(event.get("object")):
                    yield event
        finally:
            await bus.unmark(marker)


def _name_of(obj: Any) -> str | None:
    return (obj.get("metadata") or {}).get("name") if isinstance(obj, dict) else None


def _namespace_of(obj: Any) -> str | None:
    return (obj.get("metadata") or {}).get("namespace") if isinstance(obj, dict) else None


def _merged(base: dict[str, Any], patch: Any) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386): what KMock's own patching does, without storing it."""
    if not isinstance(patch, dict):
        return base
    result = dict(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


def _encode_string_data(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret's ``stringData`` becomes base64 ``data`` on write, as on the real API."""
    if isinstance(obj.get("stringData"), dict):
        data = dict(obj.get("data") or {})
        data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in obj.pop("stringData").items()})
        obj["data"] = data
    return obj


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kubeconfig(url: str) -> dict[str, Any]:
    """A kubeconfig for a plain-HTTP API at ``url`` (no credentials: the stand-in has none)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kapi", "cluster": {"server": url}}],
        "users": [{"name": "kapi", "user": {"token": "test"}}],
        "contexts": [{"name": "kapi", "context": {"cluster": "kapi", "user": "kapi"}}],
        "current-context": "kapi",
    }


class RunningAPI:
    """KubeAPI served on its own thread and event loop, usable from sync tests and subprocesses."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self._port = port
        self.api = KubeAPI()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kapi", daemon=True)
        self._stack: contextlib.AsyncExitStack | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the API's loop (e.g. to inspect ``self.api.objects`` safely)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def __enter__(self) -> RunningAPI:
        self._thread.start()

        async def start() -> int:
            self._stack = contextlib.AsyncExitStack()
            await self._stack.enter_async_context(self.api)
            server = await self._stack.enter_async_context(kmock.Server(self.api, host=self.host, port=self._port))
            return int(server.port)

        self.port = self.run(start())
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._stack is not None:
                # Watch streams never end by themselves: cancel them so the server can close.
                for task in asyncio.all_tasks():
                    if task is not asyncio.current_task() and "watch" in repr(task.get_coro()):
                        task.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._stack.aclose(), timeout=5)

        with contextlib.suppress(Exception):
            self.run(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def write_kubeconfig(self, path: os.PathLike[str] | str) -> Path:
        target = Path(path)
        target.write_text(yaml.safe_dump(kubeconfig(self.url)))
        target.chmod(0o600)
        return target

    def objects(self, path: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Live objects of one resource (``group/version/plural`` or ``v1/pods``), as dicts."""

        async def read() -> list[dict[str, Any]]:
            resource = kmock.resource(path)
            return [
                copy.deepcopy(obj.raw)
                for (res, ns, _), obj in self.api.objects.items()
                if res == resource and not obj.deleted and (namespace is None or ns == namespace)
            ]

        result: list[dict[str, Any]] = self.run(read())
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", help="write a kubeconfig for clients here")
    args = parser.parse_args()
    with RunningAPI(args.host, args.port or None) as running:
        if args.kubeconfig:
            running.write_kubeconfig(args.kubeconfig)
        print(json.dumps({"url": running.url}), flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
