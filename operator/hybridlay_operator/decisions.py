"""Pure decisions of the operator: what a pod, a node or a leftover IPInstance needs.

No I/O here: the controller reads its caches, asks these functions, and performs the answer.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hybridlay import model, names
from hybridlay.claims import (
    has_running_containers,
    is_deleting,
    is_host_network,
    is_orphan,
    is_retained,
    is_terminal,
    key_of,
    pod_key,
    wants_addresses,
)
from hybridlay.ipam import Allocation
from hybridlay.model import Binding, InstanceAddress, IPInstance, ReferredObject
from hybridlay_operator.config import WorkloadKind, api_group

# The claim predicates live in the core (the admin CLI's consistency check judges by them too);
# the controller reads them here with the rest of its decisions.
__all__ = [
    "has_running_containers",
    "is_deleting",
    "is_host_network",
    "is_orphan",
    "is_retained",
    "is_terminal",
    "key_of",
    "pod_key",
    "wants_addresses",
]


def controller_of(pod: Mapping[str, Any]) -> ReferredObject | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ReferredObject(kind=ref.get("kind", ""), name=ref.get("name", ""), uid=ref.get("uid", ""))
    return None


def stateful_view(pod: Mapping[str, Any], workloads: Collection[WorkloadKind]) -> Mapping[str, Any]:
    """The pod as the core's request parsing must see it: its controller is a stateful workload only
    if that workload's API group and kind are both configured.

    The core matches a controller by kind alone; a controller of a configured kind from another group
    (OpenKruise's StatefulSet, ``apps.kruise.io``, when only that of ``apps`` is configured) is shown
    to it as no controller, so its pods are normal pods. Other pods come back unchanged.
    """
    meta = pod.get("metadata") or {}
    kinds = {w.kind for w in workloads}
    references = list(meta.get("ownerReferences") or [])
    foreign = [
        i
        for i, ref in enumerate(references)
        if isinstance(ref, Mapping)
        and ref.get("controller") is True
        and ref.get("kind") in kinds
        and not any(w.matches(ref) for w in workloads)
    ]
    if not foreign:
        return pod
    for i in foreign:
        references[i] = {**references[i], "controller": False}
    return {**pod, "metadata": {**meta, "ownerReferences": references}}


def owner_group(ipinstance: Mapping[str, Any]) -> str | None:
    """The API group of the object an IPInstance is referred to, as :func:`build_ipinstance` records
    it with the referred object; None when not recorded (an IPInstance Hybridnet wrote)."""
    referred = ((ipinstance.get("spec") or {}).get("binding") or {}).get("referredObject") or {}
    api_version = referred.get("apiVersion")
    return api_group(str(api_version)) if isinstance(api_version, str) and api_version else None


def possible_workloads(kind: str, group: str | None, workloads: Iterable[WorkloadKind]) -> list[WorkloadKind]:
    """The configured workloads a retained address's referred object may be. The object records its
    kind alone (``StatefulSet`` may be that of ``apps`` or of ``apps.kruise.io``): its ownerReference's
    group narrows that when known, and the object's UID tells which workload it is."""
    return [w for w in workloads if w.kind == kind and (group is None or w.group == group)]


def owner_unlisted(
    instance: IPInstance, group: str | None, workloads: Iterable[WorkloadKind], unlisted: Collection[WorkloadKind]
) -> bool:
    """Whether a workload a retained address may be referred to (see :func:`possible_workloads`) is
    among those that could not be listed: then nobody can tell whether it still lives."""
    ref = instance.binding.referred_object
    return ref is not None and any(w in unlisted for w in possible_workloads(ref.kind, group, workloads))


def owner_api_version(pod: Mapping[str, Any], referred: ReferredObject) -> str:
    """The apiVersion of the pod's owner ``referred``, as the pod's ownerReference gives it."""
    if referred.kind == "Pod":
        return "v1"
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("uid") == referred.uid and ref.get("apiVersion"):
            return str(ref["apiVersion"])
    return "apps/v1"


def stateful_ordinal(pod_name: str) -> int | None:
    """A StatefulSet pod's ordinal: the number after its last dash."""
    _, _, tail = pod_name.rpartition("-")
    return int(tail) if tail.isdigit() else None


def same_claim(a: IPInstance, b: IPInstance) -> bool:
    """Two versions of one claim: same holder, same pod (a re-created name is a new claim)."""
    return (a.owner_key, a.binding.pod_uid) == (b.owner_key, b.binding.pod_uid)


def random_mac() -> str:
    tail = secrets.token_bytes(3)
    return names.POD_MAC_PREFIX + "".join(f":{b:02x}" for b in tail)


@dataclass(frozen=True)
class PodRelease:
    """What a pod that no longer needs its addresses gives back."""

    delete: tuple[str, ...] = ()  # IPInstances to delete (the address is free again)
    reserve: tuple[str, ...] = ()  # retained IPInstances to unbind (node and pod UID cleared)


def plan_release(
    held: Iterable[IPInstance], stateful_kinds: Collection[str], pod_gone_for_good: bool = False
) -> PodRelease:
    """Normal pods give back everything; retained ones keep their address, unbound.

    ``pod_gone_for_good`` is for a retained pod whose workload no longer exists.
    """
    delete, reserve = [], []
    for instance in held:
        if is_retained(instance, stateful_kinds) and not pod_gone_for_good:
            if instance.binding.pod_uid or instance.binding.node_name:
                reserve.append(instance.name)
        else:
            delete.append(instance.name)
    return PodRelease(tuple(sorted(delete)), tuple(sorted(reserve)))


def stale_for(pod_uid: str, held: Iterable[IPInstance], stateful_kinds: Collection[str]) -> list[str]:
    """A normal pod's instances still bound to an earlier pod of the same name: free them first."""
    return sorted(
        i.name
        for i in held
        if not is_retained(i, stateful_kinds) and i.binding.pod_uid and i.binding.pod_uid != pod_uid
    )


def rebind_patch(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Binding and labels of a retained IPInstance taken over by a (new) pod of the same name."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    node = spec.get("nodeName") or ""
    return {
        "metadata": {"labels": {names.LABEL_NODE: node, names.LABEL_POD_UID: meta.get("uid", "")}},
        "spec": {"binding": {"podUID": meta.get("uid", ""), "nodeName": node}},
    }


def reserve_patch() -> dict[str, Any]:
    """Unbind a retained IPInstance: the address stays, node and pod UID are cleared."""
    return {
        "metadata": {"labels": {names.LABEL_NODE: None, names.LABEL_POD_UID: None}},
        "spec": {"binding": {"podUID": None, "nodeName": None}},
    }


def build_ipinstance(
    claim: Allocation,
    pod: Mapping[str, Any],
    referred: ReferredObject,
    mac: str,
    stateful_index: int | None,
    *,
    namespace_uid: str = "",
) -> dict[str, Any]:
    """The IPInstance resource whose creation claims ``claim`` for ``pod``.

    An IPInstance is cluster-scoped (its name, the address, is unique cluster-wide: the API server
    enforces one claim), so it cannot be owned by the namespaced pod or workload: the garbage
    collector never follows such a reference and warns about each (OwnerRefInvalidNamespace). Its
    owner is the pod's Namespace (cluster-scoped): whatever the operator misses, deleting the
    namespace frees its addresses. The operator frees them per pod and per workload.
    """

    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    pod_name, pod_namespace = meta.get("name", ""), meta.get("namespace", "")
    node = spec.get("nodeName") or ""
    instance = IPInstance(
        name=claim.instance_name,
        network=claim.network,
        subnet=claim.subnet,
        address=InstanceAddress(
            version=str(claim.version), ip=claim.ip_with_prefix, gateway=claim.gateway, net_id=claim.net_id, mac=mac
        ),
        binding=Binding(
            pod_name=pod_name,
            pod_namespace=pod_namespace,
            pod_uid=meta.get("uid"),
            node_name=node or None,
            referred_object=dataclasses.replace(referred, api_version=owner_api_version(pod, referred)),
            stateful_index=stateful_index,
        ),
    )
    resource = model.ipinstance_to_resource(dataclasses.replace(instance, labels=model.ipinstance_labels(instance)))
    if namespace_uid:
        resource["metadata"]["ownerReferences"] = [model.namespace_owner(pod_namespace, namespace_uid)]
    return resource


def finalizer_patch(pod: Mapping[str, Any], present: bool) -> dict[str, Any] | None:
    """Merge patch adding or removing our pod finalizer; None when nothing changes.

    It carries the pod's resourceVersion, so a concurrent change to the list gets a 409 (and a retry)
    instead of being overwritten.
    """
    meta = pod.get("metadata") or {}
    current = list(meta.get("finalizers") or [])
    if (names.FINALIZER_POD in current) == present:
        return None
    wanted = [*current, names.FINALIZER_POD] if present else [f for f in current if f != names.FINALIZER_POD]
    patch: dict[str, Any] = {"metadata": {"finalizers": wanted}}
    if meta.get("resourceVersion"):
        patch["metadata"]["resourceVersion"] = meta["resourceVersion"]
    return patch


OWNED_NODE_LABELS = (
    names.LABEL_UNDERLAY_ATTACHMENT,
    names.LABEL_OVERLAY_ATTACHMENT,
    names.LABEL_BGP_ATTACHMENT,
    names.LABEL_IPV4_QUOTA,
    names.LABEL_IPV6_QUOTA,
    names.LABEL_DUALSTACK_QUOTA,
)


def node_labels(
    labels: Mapping[str, str], networks: Iterable[model.Network], has_free: Mapping[tuple[str, int], bool]
) -> dict[str, str | None]:
    """Desired values of our labels on a node: attachments, and address quotas of its underlay network.

    ``has_free[(network, version)]`` tells whether that network still has an address of that family.
    """
    wanted: dict[str, str | None] = dict.fromkeys(OWNED_NODE_LABELS)
    for network in networks:
        if not network.selects(labels):
            continue
        if network.type is model.NetworkType.OVERLAY:
            wanted[names.LABEL_OVERLAY_ATTACHMENT] = "true"
            continue
        if network.effective_mode is model.NetworkMode.BGP:
            wanted[names.LABEL_BGP_ATTACHMENT] = "true"
        else:
            wanted[names.LABEL_UNDERLAY_ATTACHMENT] = "true"
        v4 = has_free.get((network.name, 4), False)
        v6 = has_free.get((network.name, 6), False)
        wanted[names.LABEL_IPV4_QUOTA] = names.QUOTA_NONEMPTY if v4 else names.QUOTA_EMPTY
        wanted[names.LABEL_IPV6_QUOTA] = names.QUOTA_NONEMPTY if v6 else names.QUOTA_EMPTY
        wanted[names.LABEL_DUALSTACK_QUOTA] = names.QUOTA_NONEMPTY if v4 and v6 else names.QUOTA_EMPTY
    return wanted


def labels_patch(current: Mapping[str, str], wanted: Mapping[str, str | None]) -> dict[str, str | None]:
    """Only the labels that differ (None removes one); empty when the node is up to date."""
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def underlay_network_of(labels: Mapping[str, str], networks: Iterable[model.Network]) -> str | None:
    """The underlay network whose node selector takes this node (admission allows one at most)."""
    for network in sorted(networks, key=lambda n: n.name):
        if network.type is model.NetworkType.UNDERLAY and network.selects(labels):
            return network.name
    return None


def node_list(
    networks_by_name: Mapping[str, model.Network], network: str, nodes: Mapping[str, Mapping[str, str]]
) -> tuple[str, ...]:
    """Names of the nodes a network takes, sorted (Network ``status.nodeList``)."""
    known = networks_by_name.get(network)
    if known is None:
        return ()
    return tuple(sorted(name for name, labels in nodes.items() if known.selects(labels)))


def surplus(held: Iterable[IPInstance]) -> list[str]:
    """Instances beyond one per IP version: two active operators may both have claimed for one pod.

    Every operator keeps the same one (the lowest address), so they agree without talking.
    """
    kept: dict[str, IPInstance] = {}
    extra = []
    for instance in sorted(held, key=lambda i: (i.address.version, _address_key(i))):
        if instance.address.version in kept:
            extra.append(instance.name)
        else:
            kept[instance.address.version] = instance
    return sorted(extra)


def _address_key(instance: IPInstance) -> int:
    return int(ipaddress.ip_interface(instance.address.ip).ip)
