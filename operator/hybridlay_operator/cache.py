"""What the operator keeps in memory of pods and IPInstances: what its decisions read, no more.

An IPInstance as the API sends it is about 1.6 KB of JSON, half of it managedFields; parsed into
dicts it is several KB. The operator keeps the core's :class:`~hybridlay.model.IPInstance` (no
labels, repeated names shared) and a pod's metadata, node and container states.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from hybridlay import model
from hybridlay.errors import InvalidValue
from hybridlay.model import Binding, InstanceAddress, IPInstance

_intern = sys.intern
_NO_LABELS: Mapping[str, str] = MappingProxyType({})
# The printer columns of the IPInstance CRD (manifests/crds) the start-up Table must have.
TABLE_COLUMNS = ("Name", "IP", "PodName", "PodNamespace", "Subnet", "Network")


def _shared(mapping: dict[str, Any], *keys: str) -> None:
    """Intern the string values of ``keys``: thousands of objects name the same subnet or node."""
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str):
            mapping[key] = _intern(value)


def parse_instance(obj: Mapping[str, Any]) -> IPInstance:
    """The core's IPInstance of a resource, without its labels (the operator reads none of them).

    Raises :class:`InvalidValue` for a malformed resource, as the core's conversion does.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec")
    if isinstance(spec, dict):
        _shared(spec, "network", "subnet")
        binding = spec.get("binding")
        if isinstance(binding, dict):
            _shared(binding, "podNamespace", "nodeName")
        address = spec.get("address")
        if isinstance(address, dict):
            _shared(address, "gateway", "version")
    trimmed = {"metadata": {k: meta[k] for k in ("name", "deletionTimestamp") if k in meta}, "spec": spec}
    if "status" in obj:
        trimmed["status"] = obj["status"]
    instance = model.ipinstance_from_resource(trimmed)
    return instance if not instance.labels else _without_labels(instance)


def _without_labels(instance: IPInstance) -> IPInstance:
    return dataclasses.replace(instance, labels=_NO_LABELS)


def table_columns(table: Mapping[str, Any]) -> tuple[int, ...] | None:
    """Positions of the columns :func:`instance_from_row` reads (``ROW_COLUMNS``, -1 for an optional
    one that is absent), or None when the Table lacks one the operator needs."""
    positions = {str(c.get("name")): i for i, c in enumerate(table.get("columnDefinitions") or [])}
    if not all(name in positions for name in TABLE_COLUMNS):
        return None
    return tuple(positions.get(name, -1) for name in ROW_COLUMNS)


ROW_COLUMNS = ("Name", "IP", "Gateway", "PodName", "PodNamespace", "Node", "Subnet", "Network")


def instance_from_row(cells: list[Any], columns: tuple[int, ...]) -> IPInstance:
    """What one Table row tells of an IPInstance: its address, subnet and pod; not the pod's UID,
    the referred object or the MAC, which the full objects bring a moment later."""
    name, ip, gateway, pod, namespace, node, subnet, network = (
        cells[i] if 0 <= i < len(cells) and isinstance(cells[i], str) and cells[i] else None for i in columns
    )
    if name is None or ip is None:
        raise InvalidValue("IPInstance", name or ip, "a Table row without name or address")
    return IPInstance(
        name=name,
        network=_intern(network or ""),
        subnet=_intern(subnet or ""),
        address=InstanceAddress(
            version="6" if ":" in ip else "4", ip=ip, gateway=_intern(gateway) if gateway else None
        ),
        binding=Binding(
            pod_name=pod, pod_namespace=_intern(namespace or ""), node_name=_intern(node) if node else None
        ),
        labels=_NO_LABELS,
    )


_pauses = 0


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a bulk of objects is made: each of the many collections a
    load of 100,000 objects would trigger walks every object made so far (seconds in all). The
    objects made here hold no cycles; collection resumes after."""
    global _pauses  # noqa: PLW0603  # one process-wide switch, counted for overlapping loads
    if _pauses == 0 and not gc.isenabled():
        yield
        return
    _pauses += 1
    gc.disable()
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0:
            gc.enable()


def _states(statuses: Any) -> list[dict[str, Any]]:
    """Container statuses reduced to which state each is in (``running``, ``terminated``, ...)."""
    if not isinstance(statuses, list):
        return []
    return [{"state": {key: {} for key in s.get("state") or {}}} for s in statuses if isinstance(s, Mapping)]


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a pod the operator decides on: metadata (without managedFields), node,
    host networking, phase and whether containers run."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    slim_meta = {k: v for k, v in meta.items() if k != "managedFields"}
    _shared(slim_meta, "namespace")
    slim_spec = {k: spec[k] for k in ("nodeName", "hostNetwork") if k in spec}
    _shared(slim_spec, "nodeName")
    slim_status: dict[str, Any] = {}
    if "phase" in status:
        slim_status["phase"] = _intern(str(status["phase"]))
    for key in ("containerStatuses", "initContainerStatuses"):
        if status.get(key):
            slim_status[key] = _states(status[key])
    return {"metadata": slim_meta, "spec": slim_spec, "status": slim_status}
