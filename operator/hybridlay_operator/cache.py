"""What the operator keeps in memory of pods and IPInstances: what its decisions read, no more.

An IPInstance as the API sends it is about 1.6 KB of JSON, half of it managedFields; parsed into
dicts it is several KB. The operator keeps the core's :class:`~hybridlay.model.IPInstance` (no
labels, repeated names shared) and a pod's metadata, node and container states.
"""

from __future__ import annotations

import contextlib
import gc
import operator
import sys
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from hybridlay import model
from hybridlay.errors import InvalidValue
from hybridlay.model import Binding, InstanceAddress, IPInstance, IPInstanceStatus

_intern = sys.intern
_NO_LABELS: Mapping[str, str] = MappingProxyType({})
# The printer columns of the IPInstance CRD (manifests/crds) the start-up Table must have.
TABLE_COLUMNS = ("Name", "IP", "PodName", "PodNamespace", "Subnet", "Network")
# Those a row is read by, in order (Gateway and Node may be missing).
ROW_COLUMNS = ("Name", "IP", "Gateway", "PodName", "PodNamespace", "Node", "Subnet", "Network")
# A row's values, in ROW_COLUMNS' order: name, address, gateway, pod, namespace, node, subnet, network
# (name and address are there; namespace, subnet and network at least empty).
_Row = tuple[str, str, str | None, str | None, str, str | None, str, str]


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
    return model.ipinstance_from_resource(trimmed)


def table_columns(table: Mapping[str, Any]) -> Callable[[list[Any]], _Row] | None:
    """A reader of the rows of a Table answer: each row's cells in ``ROW_COLUMNS``' order (None
    for an empty cell or an optional column that is absent); None when the Table lacks a column the
    operator needs."""
    positions = {str(c.get("name")): i for i, c in enumerate(table.get("columnDefinitions") or [])}
    if not all(name in positions for name in TABLE_COLUMNS):
        return None
    indexes = [positions.get(name, -1) for name in ROW_COLUMNS]
    if min(indexes) >= 0:
        return operator.itemgetter(*indexes)
    return lambda cells: tuple(cells[i] if i >= 0 else None for i in indexes)  # type: ignore[return-value]


def instance_from_row(cells: list[Any], read: Callable[[list[Any]], _Row]) -> IPInstance:
    """What one Table row tells of an IPInstance: its address, subnet and pod; not the pod's UID,
    the referred object or the MAC, which the full objects bring a moment later."""
    try:
        name, ip, gateway, pod, namespace, node, subnet, network = read(cells)
    except IndexError:
        raise InvalidValue("IPInstance", cells, "a Table row with fewer cells than columns") from None
    if not (isinstance(name, str) and name and isinstance(ip, str) and ip):
        raise InvalidValue("IPInstance", name or ip, "a Table row without name or address")
    return _row_instance(
        (name, ip, gateway or None, pod or None, namespace or "", node or None, subnet or "", network or "")
    )


def _row_instance_checked(row: _Row) -> IPInstance:
    name, ip, gateway, pod, namespace, node, subnet, network = row
    return IPInstance(
        name=name,
        network=_intern(network),
        subnet=_intern(subnet),
        address=InstanceAddress(
            version="6" if ":" in ip else "4", ip=ip, gateway=_intern(gateway) if gateway else None
        ),
        binding=Binding(pod_name=pod, pod_namespace=_intern(namespace), node_name=_intern(node) if node else None),
        labels=_NO_LABELS,
    )


_new = object.__new__
_NO_STATUS = IPInstanceStatus()


def _row_instance_quick(row: _Row) -> IPInstance:
    """As :func:`_row_instance_checked`, in a quarter of the time: the frozen dataclasses' own
    ``__init__`` sets field by field (100,000 rows at start). Used only if it makes equal objects."""
    name, ip, gateway, pod, namespace, node, subnet, network = row
    address = _new(InstanceAddress)
    address.__dict__.update(
        version="6" if ":" in ip else "4", ip=ip, gateway=_intern(gateway) if gateway else None, net_id=None, mac=None
    )
    binding = _new(Binding)
    binding.__dict__.update(
        pod_name=pod,
        pod_namespace=_intern(namespace),
        pod_uid=None,
        node_name=_intern(node) if node else None,
        referred_object=None,
        stateful_index=None,
    )
    instance = _new(IPInstance)
    instance.__dict__.update(
        name=name,
        network=_intern(network),
        subnet=_intern(subnet),
        address=address,
        binding=binding,
        labels=_NO_LABELS,
        status=_NO_STATUS,
        terminating=False,
    )
    return instance


def _quick_is_exact() -> bool:
    """Whether the quick construction makes what the core's constructors make (same fields, same
    values): false as soon as the model gains a field or slots, and then the checked one is used."""
    sample: _Row = ("10-0-0-5", "10.0.0.5/24", "10.0.0.1", "p", "ns", "node1", "s", "n")
    try:
        quick, checked = _row_instance_quick(sample), _row_instance_checked(sample)
        parts = ((quick, checked), (quick.address, checked.address), (quick.binding, checked.binding))
        return quick == checked and all(vars(a).keys() == vars(b).keys() for a, b in parts)
    except (AttributeError, TypeError):
        return False


_row_instance = _row_instance_quick if _quick_is_exact() else _row_instance_checked


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
