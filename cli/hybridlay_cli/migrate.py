"""``hybridlay migrate``: a Hybridnet cluster's objects planned as hybridlay's, then created.

The plan (:mod:`hybridlay.migration`) is printed; ``--apply`` creates what it lists, in its order,
and nothing at all when it refuses anything. Running it again plans only what is still missing; an
object that appeared between planning and creating stops the run (run it again to see it). Run it
after installing hybridlay's CRDs and before starting its operator (see docs/migration.md).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, cast

import kubernetes

from hybridlay import migration, names
from hybridlay_cli.kube import REQUEST_TIMEOUT, KubeError, list_cluster_objects, list_objects

OUR_PLURALS = {
    names.KIND_NETWORK: names.PLURAL_NETWORK,
    names.KIND_SUBNET: names.PLURAL_SUBNET,
    names.KIND_NODEINFO: names.PLURAL_NODEINFO,
    names.KIND_IPINSTANCE: names.PLURAL_IPINSTANCE,
}


def read_cluster(client: kubernetes.client.ApiClient, secret_namespace: str) -> migration.Cluster:
    hybridnet = {
        kind: list_objects(client, migration.HYBRIDNET_GROUP, migration.HYBRIDNET_VERSION, plural, "Hybridnet's CRDs")
        for kind, plural in migration.HYBRIDNET_PLURALS.items()
    }
    ours: dict[str, list[dict[str, Any]]] = {kind: list_cluster_objects(client, p) for kind, p in OUR_PLURALS.items()}
    core = kubernetes.client.CoreV1Api(client)
    try:
        nodes = _items(core.list_node(_request_timeout=REQUEST_TIMEOUT, _preload_content=False))
        namespaces = _items(core.list_namespace(_request_timeout=REQUEST_TIMEOUT, _preload_content=False))
        ours[migration.KIND_SECRET] = _items(
            core.list_namespaced_secret(secret_namespace, _request_timeout=REQUEST_TIMEOUT, _preload_content=False)
        )
    except kubernetes.client.ApiException as e:
        raise KubeError(f"reading nodes, namespaces and secrets failed: {e.status} {e.reason}") from None
    return migration.Cluster(
        hybridnet=hybridnet,
        ours=ours,
        node_labels={n["metadata"]["name"]: dict(n["metadata"].get("labels") or {}) for n in nodes},
        namespace_uids={n["metadata"]["name"]: n["metadata"]["uid"] for n in namespaces},
        secret_namespace=secret_namespace,
    )


def _items(response: Any) -> list[dict[str, Any]]:
    """A list answer read as plain dicts (the typed models would only be converted back)."""
    return cast(list[dict[str, Any]], json.loads(response.data).get("items") or [])


def apply(client: kubernetes.client.ApiClient, plan: migration.Plan) -> list[str]:
    """Create the plan's objects in order; the lines of what was done."""
    done = []
    for resource in plan.create:
        kind, name = resource["kind"], resource["metadata"]["name"]
        try:
            _create(client, resource)
        except kubernetes.client.ApiException as e:
            hint = ": it appeared since the plan was made; run hybridlay migrate again" if e.status == 409 else ""
            raise KubeError(f"creating {kind} {name} failed: {e.status} {_message(e)}{hint}") from None
        done.append(f"created {kind} {name}")
    return done


def _create(client: kubernetes.client.ApiClient, resource: dict[str, Any]) -> None:
    if resource["kind"] == migration.KIND_SECRET:
        core = kubernetes.client.CoreV1Api(client)
        namespace = resource["metadata"]["namespace"]
        with contextlib.suppress(kubernetes.client.ApiException):  # the namespace may exist already
            core.create_namespace(cast(Any, {"metadata": {"name": namespace}}), _request_timeout=REQUEST_TIMEOUT)
        core.create_namespaced_secret(namespace, cast(Any, resource), _request_timeout=REQUEST_TIMEOUT)
        return
    custom = kubernetes.client.CustomObjectsApi(client)
    plural = OUR_PLURALS[resource["kind"]]
    custom.create_cluster_custom_object(names.GROUP, names.VERSION, plural, resource, _request_timeout=REQUEST_TIMEOUT)


def _message(error: kubernetes.client.ApiException) -> str:
    try:
        return str(json.loads(error.body or "").get("message", error.reason))
    except (TypeError, ValueError):
        return str(error.reason)
