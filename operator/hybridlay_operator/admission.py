"""Admission decisions (reference §4): the core's validation, against the operator's caches.

Each function returns the violations (validating) or the changes (mutating) for one request; the
kopf handlers in :mod:`hybridlay_operator.handlers` only turn them into an answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hybridlay import names, validation
from hybridlay.model import IPFamily, NetworkType
from hybridlay.pod_request import parse_pod_request, resolve_pod_network, validate_pod_create
from hybridlay.validation import Violation
from hybridlay_operator.controller import Controller
from hybridlay_operator.decisions import stateful_view

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


def review_network(
    controller: Controller, operation: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
) -> list[Violation]:
    existing, nodes = controller.networks.values(), controller.node_labels_by_name()
    return _review(
        names.KIND_NETWORK,
        operation,
        new,
        old,
        on_delete=lambda network: validation.validate_network_delete(network, controller.subnets.values()),
        on_update=lambda previous, network: validation.validate_network_update(previous, network, existing, nodes),
        on_create=lambda network: validation.validate_network_create(network, existing, nodes),
    )


def review_subnet(
    controller: Controller, operation: str, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
) -> list[Violation]:
    return _review(
        names.KIND_SUBNET,
        operation,
        new,
        old,
        on_delete=lambda subnet: validation.validate_subnet_delete(subnet, controller.instances.values()),
        on_update=lambda previous, subnet: validation.validate_subnet_update(previous, subnet, controller.networks),
        on_create=lambda subnet: validation.validate_subnet_create(
            subnet, controller.networks, controller.subnets.values()
        ),
    )


def review_pod(controller: Controller, pod: Mapping[str, Any], namespace_name: str) -> list[Violation]:
    namespace = controller.namespaces.get(namespace_name)
    view = stateful_view(pod, controller.stateful_workloads)
    return validate_pod_create(
        view, namespace, controller.networks, controller.subnets, controller.config.pod, has_free=controller.has_free
    )


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
