"""``hybridlay doctor``: the cluster's addresses checked against their records (:mod:`hybridlay.doctor`).

Lists IPInstances, Networks, Subnets, pods, namespaces and the stateful workloads retained addresses
are kept for, and reports every disagreement; the command exits 1 when there is any.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import kubernetes

from hybridlay import doctor, names
from hybridlay.errors import InvalidValue
from hybridlay.model import IPInstance, ipinstance_from_resource, network_from_resource, subnet_from_resource
from hybridlay.pod_request import PodSettings
from hybridlay_cli.kube import REQUEST_TIMEOUT, KubeError, list_cluster_objects

APPS_V1 = "apps/v1"
T = TypeVar("T")


def findings(client: kubernetes.client.ApiClient, namespace: str | None, grace_seconds: float) -> list[doctor.Finding]:
    refused: list[doctor.Finding] = []
    instances = _models(list_cluster_objects(client, names.PLURAL_IPINSTANCE), ipinstance_from_resource, refused)
    if namespace is not None:
        instances = [i for i in instances if i.binding.pod_namespace == namespace]
    pods = _list(client, f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods")
    namespaces = {n["metadata"]["name"]: n for n in _list(client, "/api/v1/namespaces")}
    live, unknown = _workloads(client, instances)
    found = refused + doctor.check_addresses(instances, pods, live, unknown_owner_uids=unknown)
    now = datetime.datetime.now(datetime.UTC)
    grace = datetime.timedelta(seconds=grace_seconds)
    found += doctor.check_missing(pods, namespaces, instances, PodSettings(), now=now, grace=grace)
    if namespace is None:  # counts and claims are the whole cluster's
        networks = _models(list_cluster_objects(client, names.PLURAL_NETWORK), network_from_resource, found)
        subnets = _models(list_cluster_objects(client, names.PLURAL_SUBNET), subnet_from_resource, found)
        found += doctor.check_records(networks, subnets, instances)
    return sorted(found)


def _models(
    raw: list[dict[str, Any]], convert: Callable[[Mapping[str, Any]], T], refused: list[doctor.Finding]
) -> list[T]:
    """The objects as the model takes them; one it refuses is a finding of its own."""
    models = []
    for obj in raw:
        try:
            models.append(convert(obj))
        except InvalidValue as e:
            refused.append(doctor.Finding(doctor.INVALID, f"{obj.get('kind')} {obj['metadata']['name']}", str(e)))
    return models


def _workloads(client: kubernetes.client.ApiClient, instances: list[IPInstance]) -> tuple[set[str], set[str]]:
    """UIDs of the stateful workloads that exist, and of those referred to whose kind could not be listed."""
    kinds: dict[tuple[str, str], set[str]] = {}
    for instance in instances:
        ref = instance.binding.referred_object
        if ref is not None and instance.binding.retained:
            kinds.setdefault((ref.api_version or APPS_V1, ref.kind), set()).add(ref.uid)
    kinds.setdefault((APPS_V1, "StatefulSet"), set())
    live: set[str] = set()
    unknown: set[str] = set()
    for (api_version, kind), uids in kinds.items():
        plural = _plural(client, api_version, kind)
        prefix = "/api" if "/" not in api_version else "/apis"
        try:
            if plural is None:
                raise KubeError(f"the API serves no {kind} of {api_version}")
            live.update(w["metadata"]["uid"] for w in _list(client, f"{prefix}/{api_version}/{plural}"))
        except KubeError:
            unknown.update(uids)
    return live, unknown


def _plural(client: kubernetes.client.ApiClient, api_version: str, kind: str) -> str | None:
    prefix = "/api" if "/" not in api_version else "/apis"
    try:
        resources = _get(client, f"{prefix}/{api_version}").get("resources") or []
    except KubeError:
        return None
    return next((r["name"] for r in resources if r.get("kind") == kind and "/" not in r["name"]), None)


def _list(client: kubernetes.client.ApiClient, path: str) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], _get(client, path).get("items") or [])


def _get(client: kubernetes.client.ApiClient, path: str) -> Mapping[str, Any]:
    _, url, headers, _, _ = client.param_serialize(
        method="GET", resource_path=path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    try:
        response = client.call_api("GET", url, header_params=headers, _request_timeout=REQUEST_TIMEOUT)
        data = response.read()  # type: ignore[no-untyped-call]
    except OSError as e:
        raise KubeError(f"cannot reach the Kubernetes API at {client.configuration.host}: {e}") from None
    if response.status != 200:
        raise KubeError(f"GET {path} failed: {response.status} {data[:200].decode(errors='replace')}")
    return cast(Mapping[str, Any], json.loads(data))


def render(found: list[doctor.Finding], output: str) -> str:
    if output == "json":
        return json.dumps([{"kind": f.kind, "subject": f.subject, "detail": f.detail} for f in found], indent=2)
    if not found:
        return "no disagreement: every address is held once, by a live pod or kept workload, and counted"
    counts = ", ".join(f"{sum(f.kind == k for f in found)} {k}" for k in sorted({f.kind for f in found}))
    return "\n".join([*(str(f) for f in found), f"{len(found)} finding(s): {counts}"])
