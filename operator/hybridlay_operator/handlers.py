"""kopf handlers, in an explicit registry per operator instance: thin, they only hand over.

Watch handlers feed the controller's caches (of the few, small resources: pods and IPInstances come
through the controller's own informers); admission handlers ask :mod:`.admission` and turn
violations into :class:`kopf.AdmissionError`. The webhook path of each handler is its id
(``/validate-network``, ...), which the webhook configurations in ``manifests/`` name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import kopf

from hybridlay import names
from hybridlay.validation import Violation
from hybridlay_operator import admission
from hybridlay_operator.controller import Controller
from hybridlay_operator.kube import connection_info

CREATE: tuple[Literal["CREATE"], ...] = ("CREATE",)
CRUD: tuple[Literal["CREATE", "UPDATE", "DELETE"], ...] = ("CREATE", "UPDATE", "DELETE")
# 422 Unprocessable Entity: the API server shows the message to whoever sent the object.
DENIED = 422


def deny_if(violations: list[Violation]) -> None:
    if violations:
        raise kopf.AdmissionError("; ".join(str(v) for v in violations), code=DENIED)


def _raw(body: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if body is None else dict(body)


def build_registry(controller: Controller, webhooks: bool) -> kopf.OperatorRegistry:
    """Watch handlers, and the admission handlers when ``webhooks`` (a TLS server is configured)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(controller.kube.client)

    @kopf.on.startup(registry=registry)
    async def start(**_: Any) -> None:
        await controller.start()

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        await controller.stop()

    def watch(group: str, version: str, plural: str, observe: Callable[[str, Mapping[str, Any]], None]) -> None:
        # The group in the id too: two stateful kinds may share a plural (statefulsets of apps and of apps.kruise.io).
        handler_id = f"watch-{plural}" + (f".{group}" if group not in ("", names.GROUP) else "")

        @kopf.on.event(group=group, version=version, plural=plural, registry=registry, id=handler_id)
        async def handler(event: Mapping[str, Any], **_: Any) -> None:
            # kopf's initial listing has no type: the object is simply there.
            observe(event.get("type") or "ADDED", event["object"])

    # Pods and IPInstances are many: the controller lists and watches them itself (.informer).
    watch(names.GROUP, names.VERSION, names.PLURAL_NETWORK, controller.observe_network)
    watch(names.GROUP, names.VERSION, names.PLURAL_SUBNET, controller.observe_subnet)
    watch("", "v1", "namespaces", controller.observe_namespace)
    watch("", "v1", "nodes", controller.observe_node)
    # Each stateful workload kind (STATEFUL_WORKLOAD_KINDS): its deletion frees the addresses it kept.
    # One whose resource the API does not serve (yet) is only warned about by kopf, until its CRD comes.
    for workload in controller.stateful_workloads:
        watch(workload.group, workload.version, workload.plural, controller.observe_workload)
    if webhooks:
        register_webhooks(registry, controller)
    return registry


def register_webhooks(registry: kopf.OperatorRegistry, controller: Controller) -> None:

    def validating(plural: str, kind: str, handler_id: str, review: Callable[..., list[Violation]]) -> None:
        @kopf.on.validate(
            group=names.GROUP, version=names.VERSION, plural=plural, operations=CRUD, id=handler_id, registry=registry
        )
        async def validate(**kwargs: Any) -> None:
            operation = kwargs["operation"]
            view = await admission.cluster_view(controller.kube, kind, operation, kwargs.get("name") or "")
            deny_if(review(view, operation, _raw(kwargs["new"]), _raw(kwargs["old"])))

    validating(names.PLURAL_NETWORK, names.KIND_NETWORK, "validate-network", admission.review_network)
    validating(names.PLURAL_SUBNET, names.KIND_SUBNET, "validate-subnet", admission.review_subnet)

    # Pod creation is never blocked by an unavailable operator (failurePolicy Ignore).
    pods: dict[str, Any] = {"group": "", "version": "v1", "plural": "pods", "operations": CREATE}
    pods.update(ignore_failures=True, registry=registry)

    @kopf.on.validate(id="validate-pod", **pods)
    async def validate_pod(body: Any, namespace: str | None, **_: Any) -> None:
        deny_if(admission.review_pod(controller, dict(body), namespace or ""))

    @kopf.on.mutate(id="mutate-pod", **pods)
    async def mutate_pod(body: Any, namespace: str | None, patch: kopf.Patch, warnings: list[str], **_: Any) -> None:
        # Warned here, where the pod is still as written: the mutation writes our keys over Hybridnet's.
        warnings.extend(admission.pod_warnings(controller, dict(body), namespace or ""))
        patch.update(admission.pod_mutation(controller, dict(body), namespace or ""))
