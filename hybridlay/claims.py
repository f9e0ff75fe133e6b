"""Who holds an address: the pod predicates and the orphan rule the operator acts on and the
admin CLI's consistency check (``hybridlay doctor``) judges by. Pure."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from hybridlay.model import IPInstance

TERMINAL_PHASES = ("Succeeded", "Failed")


def pod_key(namespace: str, name: str) -> str:
    """``namespace/name``: the owner key an IPInstance's binding also yields (``IPInstance.owner_key``)."""
    return f"{namespace}/{name}"


def key_of(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return pod_key(meta.get("namespace") or "", meta.get("name") or "")


def is_host_network(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("hostNetwork"))


def is_terminal(pod: Mapping[str, Any]) -> bool:
    """Completed or evicted (phase Succeeded/Failed): its addresses go back at once."""
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def is_deleting(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def has_running_containers(pod: Mapping[str, Any]) -> bool:
    """Whether any container may still use the address (a retained one waits until none runs)."""
    status = pod.get("status") or {}
    if status.get("phase") in TERMINAL_PHASES:
        return False
    return any(
        "running" in (c.get("state") or {})
        for c in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
    )


def wants_addresses(pod: Mapping[str, Any]) -> bool:
    """Scheduled, not host-network, neither finished nor being deleted."""
    node = (pod.get("spec") or {}).get("nodeName")
    return bool(node) and not is_host_network(pod) and not is_terminal(pod) and not is_deleting(pod)


def is_retained(instance: IPInstance, stateful_kinds: Collection[str]) -> bool:
    """A retained address is referred to its stateful workload rather than to the pod."""
    ref = instance.binding.referred_object
    return ref is not None and ref.kind in stateful_kinds


def is_orphan(
    instance: IPInstance,
    pod_uids: Mapping[str, str],
    live_owner_uids: Collection[str],
    stateful_kinds: Collection[str],
    owner_unknown: bool = False,
) -> bool:
    """An IPInstance nobody holds: its pod is gone and, if retained, so is its workload.

    ``pod_uids`` maps each existing pod's key to its UID; ``live_owner_uids`` holds the UIDs of the
    stateful workloads that exist. A retained address of a live workload is never an orphan (the
    next pod of that ordinal takes it back), nor is one whose pod exists. ``owner_unknown``: a
    workload the retained address may be referred to could not be listed, so the address stays.
    """
    current_uid = pod_uids.get(instance.owner_key)
    if is_retained(instance, stateful_kinds):
        ref = instance.binding.referred_object
        return current_uid is None and ref is not None and not owner_unknown and ref.uid not in live_owner_uids
    if current_uid is None:
        return True
    # A different pod of the same name: the address belonged to its predecessor.
    return bool(instance.binding.pod_uid) and instance.binding.pod_uid != current_uid
