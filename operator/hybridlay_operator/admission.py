"""Admission decisions (reference §4): the core's validation, against the objects it needs.

Each function returns the violations (validating) or the changes (mutating) for one request; the
kopf handlers in :mod:`hybridlay_operator.handlers` only turn them into an answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hybridlay import model, names, validation
from hybridlay.errors import InvalidValue
from hybridlay.model import IPFamily, IPInstance, Network, NetworkType, Subnet
from hybridlay.pod_request import parse_pod_request, resolve_pod_network, validate_pod_create
from hybridlay.validation import Violation
from hybridlay_operator.controller import Controller
from hybridlay_operator.decisions import stateful_view
from hybridlay_operator.kube import Kube, core_path, custom_path

NETWORK_UNAVAILABLE_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}
QUOTA_LABEL = {
    IPFamily.IPV4: names.LABEL_IPV4_QUOTA,
    IPFamily.IPV6: names.LABEL_IPV6_QUOTA,
    IPFamily.DUAL_STACK: names.LABEL_DUALSTACK_QUOTA,
}


def _review(
    kind: str,
    operation: str,
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
    *,
    on_delete: Callable[[Any], list[Violation]],
    on_update: Callable[[Any, Any], list[Violation]],
    on_create: Callable[[Any], list[Violation]],
) -> list[Violation]:
    """Convert (a wrong type is itself a violation), then apply the rules of the operation."""
    if operation == "DELETE":
        obj, violations = validation.validate_resource(kind, old or {})
        return violations or on_delete(obj)
    obj, violations = validation.validate_resource(kind, new or {})
    if violations:
        return violations
    if operation == "UPDATE" and old is not None:
        previous, old_violations = validation.validate_resource(kind, old)
        if not old_violations:
            return on_update(previous, obj)
    return on_create(obj)


@dataclass(frozen=True)
class ClusterView:
    """What the Network and Subnet rules read. Fresh from the API, not from the watch caches: those
    trail a create by moments, so a Subnet made right after its Network was refused ("does not
    exist"), and a delete could be allowed while a just-made Subnet or IPInstance still used it.
    Network and Subnet changes are rare; the reads are few and small."""

    networks: dict[str, Network]
    subnets: dict[str, Subnet]
    node_labels: dict[str, dict[str, str]]
    instances: list[IPInstance]


async def cluster_view(kube: Kube, kind: str, operation: str, name: str) -> ClusterView:
    """The objects the rules for ``operation`` of the ``kind`` named ``name`` read."""
    networks = _models(await kube.list(custom_path(names.PLURAL_NETWORK)), model.network_from_resource)
    subnets = _models(await kube.list(custom_path(names.PLURAL_SUBNET)), model.subnet_from_resource)
    nodes: dict[str, dict[str, str]] = {}
    if kind == names.KIND_NETWORK and operation != "DELETE":
        for node in await kube.list(core_path("nodes")):
            meta = node.get("metadata") or {}
            nodes[meta.get("name", "")] = dict(meta.get("labels") or {})
    instances: list[IPInstance] = []
    if kind == names.KIND_SUBNET and operation == "DELETE":
        selector = f"{names.LABEL_SUBNET}={name}"
        found = await kube.list(custom_path(names.PLURAL_IPINSTANCE), label_selector=selector)
        instances = list(_models(found, model.ipinstance_from_resource).values())
    return ClusterView({n.name: n for n in networks.values()}, subnets, nodes, instances)


def _models(objects: list[dict[str, Any]], convert: Callable[[Mapping[str, Any]], Any]) -> dict[str, Any]:
    """By name, what the model takes; an object it refuses is left out (the operator reports it)."""
    converted = {}
    for obj in objects:
        with contextlib.suppress(InvalidValue):
            item = convert(obj)
            converted[item.name] = item
    return converted


def review_network(
    view: ClusterView, operation: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
) -> list[Violation]:
    existing, nodes = view.networks.values(), view.node_labels
    return _review(
        names.KIND_NETWORK,
        operation,
        new,
        old,
        on_delete=lambda network: validation.validate_network_delete(network, view.subnets.values()),
        on_update=lambda previous, network: validation.validate_network_update(previous, network, existing, nodes),
        on_create=lambda network: validation.validate_network_create(network, existing, nodes),
    )


def review_subnet(
    view: ClusterView, operation: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
) -> list[Violation]:
    return _review(
        names.KIND_SUBNET,
        operation,
        new,
        old,
        on_delete=lambda subnet: validation.validate_subnet_delete(subnet, view.instances),
        on_update=lambda previous, subnet: validation.validate_subnet_update(previous, subnet, view.networks),
        on_create=lambda subnet: validation.validate_subnet_create(subnet, view.networks, view.subnets.values()),
    )


def review_pod(controller: Controller, pod: Mapping[str, Any], namespace_name: str) -> list[Violation]:
    namespace = controller.namespaces.get(namespace_name)
    view = stateful_view(pod, controller.stateful_workloads)
    key = f"{namespace_name}/{(pod.get('metadata') or {}).get('name', '')}"
    kept = [i for i in (controller.instances.get(n) for n in controller.held.get(key, ())) if i and i.binding.retained]
    return validate_pod_create(
        view,
        namespace,
        controller.networks,
        controller.subnets,
        controller.config.pod,
        has_free=controller.has_free,
        retained=kept,
    )


def pod_warnings(controller: Controller, pod: Mapping[str, Any], namespace_name: str) -> list[str]:
    """What the pod asks that is accepted but not done as written (Hybridnet's keys, pools on a pod
    of no stateful workload): the API server shows these to whoever created the pod."""
    view = stateful_view(pod, controller.stateful_workloads)
    request, _ = parse_pod_request(view, controller.namespaces.get(namespace_name), controller.config.pod)
    return [str(w) for w in request.warnings] if request is not None else []


def pod_mutation(controller: Controller, pod: Mapping[str, Any], namespace_name: str) -> dict[str, Any]:
    """Changes to a new pod (a merge into its body): resolved annotations and scheduling constraints.

    A pod whose request cannot be resolved is left as it is: the validating webhook explains why.
    """
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        tolerations = list(spec.get("tolerations") or [])
        if NETWORK_UNAVAILABLE_TOLERATION in tolerations:
            return {}
        return {"spec": {"tolerations": [*tolerations, NETWORK_UNAVAILABLE_TOLERATION]}}
    networks = controller.networks
    view = stateful_view(pod, controller.stateful_workloads)
    request, _ = parse_pod_request(view, controller.namespaces.get(namespace_name), controller.config.pod)
    if request is None:
        return {}
    resolved, _ = resolve_pod_network(request, networks, controller.subnets, controller.config.pod)
    if resolved is None:
        return {}
    selector = dict(spec.get("nodeSelector") or {})
    if resolved.type is NetworkType.OVERLAY:
        selector[names.LABEL_OVERLAY_ATTACHMENT] = "true"
    elif resolved.type is NetworkType.UNDERLAY:
        network = networks.get(resolved.network or "")
        if network is not None and network.node_selector:
            selector.update(network.node_selector)
        else:
            selector[names.LABEL_UNDERLAY_ATTACHMENT] = "true"
        # A pod that comes back to its retained address needs no free one on its node.
        key = f"{namespace_name}/{(pod.get('metadata') or {}).get('name', '')}"
        retained = request.stateful is not None and request.retain and controller.held.get(key)
        if not retained:
            selector[QUOTA_LABEL[resolved.family]] = names.QUOTA_NONEMPTY
    mutation: dict[str, Any] = {"metadata": {"annotations": resolved.annotations()}}
    if selector != (spec.get("nodeSelector") or {}):
        mutation["spec"] = {"nodeSelector": selector}
    return mutation


def with_request_namespace(review: Any) -> Any:
    """Give the reviewed objects the review's ``request.namespace`` when they carry none.

    A pod created through a controller (Deployment, StatefulSet) usually reaches admission without
    ``metadata.namespace``: the API server states it in ``request.namespace`` only, and kopf hands
    handlers the object alone. Without this, namespace defaults would be read from no namespace.
    """
    request = review.get("request") or {}
    namespace = request.get("namespace")
    if namespace:
        for key in ("object", "oldObject"):
            obj = request.get(key)
            if isinstance(obj, dict):
                obj.setdefault("metadata", {}).setdefault("namespace", namespace)
    return review
