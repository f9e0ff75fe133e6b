"""Typed model of hybridlay's custom resources and the one place they convert to and from dicts.

The model holds values as the API holds them (addresses are strings), so that an invalid object
can still be represented and then reported field by field by :mod:`hybridlay.validation`.
``*_from_resource`` accepts a resource dict (as the API, KMock or a YAML file gives it) and
raises :class:`~hybridlay.errors.InvalidValue` naming the field when a value has the wrong type;
``*_to_resource`` returns the dict to send to the API.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hybridlay import names
from hybridlay.addresses import label_value
from hybridlay.errors import InvalidValue


class NetworkType(enum.StrEnum):
    UNDERLAY = "Underlay"
    OVERLAY = "Overlay"
    GLOBAL_BGP = "GlobalBGP"


class NetworkMode(enum.StrEnum):
    VLAN = "VLAN"
    VXLAN = "VXLAN"
    BGP = "BGP"
    GLOBAL_BGP = "GlobalBGP"


class IPFamily(enum.StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"
    DUAL_STACK = "DualStack"

    @property
    def versions(self) -> tuple[int, ...]:
        return {IPFamily.IPV4: (4,), IPFamily.IPV6: (6,), IPFamily.DUAL_STACK: (4, 6)}[self]

    @classmethod
    def from_text(cls, text: str) -> IPFamily | None:
        """Case-insensitive; Hybridnet's own spellings ``IPv4Only`` and ``IPv6Only`` too."""
        folded = text.lower()
        found = next((f for f in cls if f.value.lower() == folded), None)
        return found or _HYBRIDNET_FAMILIES.get(folded)

    @classmethod
    def spellings(cls) -> tuple[str, ...]:
        return (*(f.value for f in cls), "IPv4Only", "IPv6Only")


_HYBRIDNET_FAMILIES = {"ipv4only": IPFamily.IPV4, "ipv6only": IPFamily.IPV6}


DEFAULT_MODE = {
    NetworkType.UNDERLAY: NetworkMode.VLAN,
    NetworkType.OVERLAY: NetworkMode.VXLAN,
    NetworkType.GLOBAL_BGP: NetworkMode.GLOBAL_BGP,
}
DEFAULT_GRACEFUL_RESTART_SECONDS = 300


@dataclass(frozen=True)
class SecretKeyRef:
    """Where a secret value lives: never the value itself."""

    name: str
    key: str
    namespace: str | None = None


@dataclass(frozen=True)
class BGPPeer:
    asn: int
    address: str
    graceful_restart_seconds: int = DEFAULT_GRACEFUL_RESTART_SECONDS
    password_secret: SecretKeyRef | None = None
    does_not_route_traffic: bool = False
    allow_not_established: bool = False


@dataclass(frozen=True)
class Statistics:
    total: int = 0
    used: int = 0
    available: int = 0


@dataclass(frozen=True)
class NetworkStatus:
    last_allocated_subnet: str | None = None
    last_allocated_ipv6_subnet: str | None = None
    subnet_list: tuple[str, ...] = ()
    node_list: tuple[str, ...] = ()
    statistics: Statistics | None = None
    ipv6_statistics: Statistics | None = None
    dual_stack_statistics: Statistics | None = None


@dataclass(frozen=True)
class Network:
    name: str
    type: NetworkType = NetworkType.UNDERLAY
    mode: NetworkMode | None = None
    net_id: int | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    bgp_peers: tuple[BGPPeer, ...] = ()
    status: NetworkStatus = field(default_factory=NetworkStatus)

    @property
    def effective_mode(self) -> NetworkMode:
        return self.mode if self.mode is not None else DEFAULT_MODE[self.type]

    def selects(self, node_labels: Mapping[str, str]) -> bool:
        """Whether a node with these labels belongs to this network (overlay: every node)."""
        if self.type is NetworkType.OVERLAY:
            return True
        if not self.node_selector:
            return False
        return all(node_labels.get(k) == v for k, v in self.node_selector.items())


@dataclass(frozen=True)
class AddressRange:
    version: str
    cidr: str
    start: str | None = None
    end: str | None = None
    gateway: str | None = None
    reserved_ips: tuple[str, ...] = ()
    exclude_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubnetConfig:
    auto_nat_outgoing: bool | None = None
    private: bool = False


@dataclass(frozen=True)
class SubnetStatus:
    total: int = 0
    used: int = 0
    available: int = 0
    last_allocated_ip: str | None = None


@dataclass(frozen=True)
class Subnet:
    name: str
    network: str
    range: AddressRange
    net_id: int | None = None
    config: SubnetConfig = field(default_factory=SubnetConfig)
    status: SubnetStatus = field(default_factory=SubnetStatus)

    @property
    def auto_nat_outgoing(self) -> bool:
        """Hybridnet's default: masquerade off-cluster traffic unless told otherwise."""
        return True if self.config.auto_nat_outgoing is None else self.config.auto_nat_outgoing


@dataclass(frozen=True)
class ReferredObject:
    kind: str
    name: str
    uid: str
    # The workload's API version (``apps/v1``): its kind alone may name two (``StatefulSet`` of
    # ``apps`` and of ``apps.kruise.io``). Hybridnet does not record it; None then.
    api_version: str | None = None


@dataclass(frozen=True)
class Binding:
    pod_name: str | None = None
    pod_namespace: str | None = None
    pod_uid: str | None = None
    node_name: str | None = None
    referred_object: ReferredObject | None = None
    stateful_index: int | None = None

    @property
    def retained(self) -> bool:
        """Kept for a stateful workload: the operator refers such an address to the workload rather
        than to the pod (whichever stateful kinds it is configured with)."""
        return self.referred_object is not None and self.referred_object.kind != "Pod"


@dataclass(frozen=True)
class InstanceAddress:
    version: str
    ip: str  # address with the subnet's prefix length: "10.0.0.5/24"
    gateway: str | None = None
    net_id: int | None = None
    mac: str | None = None


@dataclass(frozen=True)
class IPInstanceStatus:
    node_name: str | None = None
    pod_name: str | None = None
    pod_namespace: str | None = None
    sandbox_id: str | None = None
    update_timestamp: str | None = None


@dataclass(frozen=True)
class IPInstance:
    name: str
    network: str
    subnet: str
    address: InstanceAddress
    binding: Binding = field(default_factory=Binding)
    labels: Mapping[str, str] = field(default_factory=dict)
    status: IPInstanceStatus = field(default_factory=IPInstanceStatus)
    terminating: bool = False

    @property
    def owner_key(self) -> str:
        """Who holds the address: the pod as ``namespace/name`` (stable across re-creation)."""
        return f"{self.binding.pod_namespace or ''}/{self.binding.pod_name or ''}"


@dataclass(frozen=True)
class VTEPInfo:
    ip: str
    mac: str
    local_ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeInfo:
    name: str
    vtep: VTEPInfo | None = None
    update_timestamp: str | None = None


# --- conversion -------------------------------------------------------------------------------


def _get(obj: Mapping[str, Any], path: str) -> Any:
    """Value at a field path such as ``spec.config.bgpPeers[0].asn``; ``None`` where a step is missing."""
    node: Any = obj
    for part in path.split("."):
        name, _, index = part.partition("[")
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
        if index:
            position = int(index.rstrip("]"))
            if not isinstance(node, list) or position >= len(node):
                return None
            node = node[position]
    return node


def _typed(obj: Mapping[str, Any], path: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = _get(obj, path)
    if value is None:
        return default
    # bool is an int in Python; an API integer field must not accept true/false.
    if isinstance(value, bool) and kind in (int, (int,)):
        raise InvalidValue(path, value, "must be an integer")
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidValue(path, value, f"must be of type {_API_TYPE.get(expected, expected)}")
    return value


_API_TYPE = {"str": "string", "int": "integer", "bool": "boolean", "dict": "object", "list": "array"}


def _str_list(obj: Mapping[str, Any], path: str) -> tuple[str, ...]:
    values = _typed(obj, path, list, [])
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidValue(f"{path}[{i}]", value, "must be of type string")
    return tuple(values)


def _enum(obj: Mapping[str, Any], path: str, enum_type: type[enum.Enum], default: Any) -> Any:
    value = _typed(obj, path, str)
    if value is None or value == "":
        return default
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum_type)
        raise InvalidValue(path, value, f"must be one of {allowed}") from None


def _name(obj: Mapping[str, Any]) -> str:
    name = _typed(obj, "metadata.name", str)
    if not name:
        raise InvalidValue("metadata.name", name, "is required")
    return str(name)


def _statistics(obj: Mapping[str, Any], path: str) -> Statistics | None:
    if _get(obj, path) is None:
        return None
    return Statistics(
        total=_typed(obj, f"{path}.total", int, 0),
        used=_typed(obj, f"{path}.used", int, 0),
        available=_typed(obj, f"{path}.available", int, 0),
    )


def _secret_ref(obj: Mapping[str, Any], path: str) -> SecretKeyRef | None:
    if _get(obj, path) is None:
        return None
    return SecretKeyRef(
        name=_typed(obj, f"{path}.name", str, ""),
        key=_typed(obj, f"{path}.key", str, ""),
        namespace=_typed(obj, f"{path}.namespace", str),
    )


def network_from_resource(obj: Mapping[str, Any]) -> Network:
    peers = []
    for i, _ in enumerate(_typed(obj, "spec.config.bgpPeers", list, [])):
        base = f"spec.config.bgpPeers[{i}]"
        peers.append(
            BGPPeer(
                asn=_typed(obj, f"{base}.asn", int, 0),
                address=_typed(obj, f"{base}.address", str, ""),
                graceful_restart_seconds=_typed(
                    obj, f"{base}.gracefulRestartSeconds", int, DEFAULT_GRACEFUL_RESTART_SECONDS
                ),
                password_secret=_secret_ref(obj, f"{base}.passwordSecretRef"),
                does_not_route_traffic=_typed(obj, f"{base}.doesNotRouteTraffic", bool, False),
                allow_not_established=_typed(obj, f"{base}.allowNotEstablished", bool, False),
            )
        )
    selector = _typed(obj, "spec.nodeSelector", dict, {})
    for k, v in selector.items():
        if not isinstance(v, str):
            raise InvalidValue(f"spec.nodeSelector.{k}", v, "must be of type string")
    return Network(
        name=_name(obj),
        type=_enum(obj, "spec.type", NetworkType, NetworkType.UNDERLAY),
        mode=_enum(obj, "spec.mode", NetworkMode, None),
        net_id=_typed(obj, "spec.netID", int),
        node_selector=dict(selector),
        bgp_peers=tuple(peers),
        status=NetworkStatus(
            last_allocated_subnet=_typed(obj, "status.lastAllocatedSubnet", str),
            last_allocated_ipv6_subnet=_typed(obj, "status.lastAllocatedIPv6Subnet", str),
            subnet_list=_str_list(obj, "status.subnetList"),
            node_list=_str_list(obj, "status.nodeList"),
            statistics=_statistics(obj, "status.statistics"),
            ipv6_statistics=_statistics(obj, "status.ipv6Statistics"),
            dual_stack_statistics=_statistics(obj, "status.dualStackStatistics"),
        ),
    )


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v not in ({}, [])}


def _statistics_dict(stats: Statistics | None) -> dict[str, int] | None:
    if stats is None:
        return None
    return {"total": stats.total, "used": stats.used, "available": stats.available}


def _secret_ref_dict(ref: SecretKeyRef | None) -> dict[str, str] | None:
    if ref is None:
        return None
    return _drop_none({"name": ref.name, "key": ref.key, "namespace": ref.namespace})


def _metadata(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return _drop_none({"name": name, "labels": dict(labels) if labels else None})


def network_status_to_dict(status: NetworkStatus) -> dict[str, Any]:
    # The lists are written even when empty: status goes out as a merge patch, where a left-out key
    # would keep the last subnet or node listed forever.
    return {
        **_drop_none(
            {
                "lastAllocatedSubnet": status.last_allocated_subnet,
                "lastAllocatedIPv6Subnet": status.last_allocated_ipv6_subnet,
                "statistics": _statistics_dict(status.statistics),
                "ipv6Statistics": _statistics_dict(status.ipv6_statistics),
                "dualStackStatistics": _statistics_dict(status.dual_stack_statistics),
            }
        ),
        "subnetList": list(status.subnet_list),
        "nodeList": list(status.node_list),
    }


def network_to_resource(network: Network, with_status: bool = False) -> dict[str, Any]:
    peers = [
        _drop_none(
            {
                "asn": p.asn,
                "address": p.address,
                "gracefulRestartSeconds": p.graceful_restart_seconds,
                "passwordSecretRef": _secret_ref_dict(p.password_secret),
                "doesNotRouteTraffic": p.does_not_route_traffic or None,
                "allowNotEstablished": p.allow_not_established or None,
            }
        )
        for p in network.bgp_peers
    ]
    resource: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_NETWORK,
        "metadata": _metadata(network.name),
        "spec": _drop_none(
            {
                "type": network.type.value,
                "mode": network.mode.value if network.mode else None,
                "netID": network.net_id,
                "nodeSelector": dict(network.node_selector),
                "config": {"bgpPeers": peers} if peers else None,
            }
        ),
    }
    if with_status:
        resource["status"] = network_status_to_dict(network.status)
    return resource


def subnet_from_resource(obj: Mapping[str, Any]) -> Subnet:
    version = _get(obj, "spec.range.version")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)  # tolerate `version: 4` written unquoted in YAML
    elif version is not None and not isinstance(version, str):
        raise InvalidValue("spec.range.version", version, "must be of type string")
    network = _typed(obj, "spec.network", str, "")
    return Subnet(
        name=_name(obj),
        network=network,
        net_id=_typed(obj, "spec.netID", int),
        range=AddressRange(
            version=version or "",
            cidr=_typed(obj, "spec.range.cidr", str, ""),
            start=_typed(obj, "spec.range.start", str),
            end=_typed(obj, "spec.range.end", str),
            gateway=_typed(obj, "spec.range.gateway", str),
            reserved_ips=_str_list(obj, "spec.range.reservedIPs"),
            exclude_ips=_str_list(obj, "spec.range.excludeIPs"),
        ),
        config=SubnetConfig(
            auto_nat_outgoing=_typed(obj, "spec.config.autoNatOutgoing", bool),
            private=_typed(obj, "spec.config.private", bool, False),
        ),
        status=SubnetStatus(
            total=_typed(obj, "status.total", int, 0),
            used=_typed(obj, "status.used", int, 0),
            available=_typed(obj, "status.available", int, 0),
            last_allocated_ip=_typed(obj, "status.lastAllocatedIP", str),
        ),
    )


def subnet_status_to_dict(status: SubnetStatus) -> dict[str, Any]:
    return _drop_none(
        {
            "total": status.total,
            "used": status.used,
            "available": status.available,
            "lastAllocatedIP": status.last_allocated_ip,
        }
    )


def subnet_to_resource(subnet: Subnet, with_status: bool = False) -> dict[str, Any]:
    r = subnet.range
    resource: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_SUBNET,
        "metadata": _metadata(subnet.name),
        "spec": _drop_none(
            {
                "network": subnet.network,
                "netID": subnet.net_id,
                "range": _drop_none(
                    {
                        "version": r.version,
                        "cidr": r.cidr,
                        "start": r.start,
                        "end": r.end,
                        "gateway": r.gateway,
                        "reservedIPs": list(r.reserved_ips),
                        "excludeIPs": list(r.exclude_ips),
                    }
                ),
                "config": _drop_none(
                    {
                        "autoNatOutgoing": subnet.config.auto_nat_outgoing,
                        "private": subnet.config.private or None,
                    }
                ),
            }
        ),
    }
    if with_status:
        resource["status"] = subnet_status_to_dict(subnet.status)
    return resource


def ipinstance_from_resource(obj: Mapping[str, Any]) -> IPInstance:
    referred = None
    if _get(obj, "spec.binding.referredObject") is not None:
        referred = ReferredObject(
            kind=_typed(obj, "spec.binding.referredObject.kind", str, ""),
            name=_typed(obj, "spec.binding.referredObject.name", str, ""),
            uid=_typed(obj, "spec.binding.referredObject.uid", str, ""),
            api_version=_typed(obj, "spec.binding.referredObject.apiVersion", str, None),
        )
    stateful_index = _get(obj, "spec.binding.stateful.index")
    if stateful_index is not None:
        stateful_index = _typed(obj, "spec.binding.stateful.index", int)
    labels = _typed(obj, "metadata.labels", dict, {})
    return IPInstance(
        name=_name(obj),
        network=_typed(obj, "spec.network", str, ""),
        subnet=_typed(obj, "spec.subnet", str, ""),
        address=InstanceAddress(
            version=str(_typed(obj, "spec.address.version", (str, int), "")),
            ip=_typed(obj, "spec.address.ip", str, ""),
            gateway=_typed(obj, "spec.address.gateway", str),
            net_id=_typed(obj, "spec.address.netID", int),
            mac=_typed(obj, "spec.address.mac", str),
        ),
        binding=Binding(
            pod_name=_typed(obj, "spec.binding.podName", str),
            pod_namespace=_typed(obj, "spec.binding.podNamespace", str),
            pod_uid=_typed(obj, "spec.binding.podUID", str),
            node_name=_typed(obj, "spec.binding.nodeName", str),
            referred_object=referred,
            stateful_index=stateful_index,
        ),
        labels=dict(labels),
        status=IPInstanceStatus(
            node_name=_typed(obj, "status.nodeName", str),
            pod_name=_typed(obj, "status.podName", str),
            pod_namespace=_typed(obj, "status.podNamespace", str),
            sandbox_id=_typed(obj, "status.sandboxID", str),
            update_timestamp=_typed(obj, "status.updateTimestamp", str),
        ),
        terminating=_get(obj, "metadata.deletionTimestamp") is not None,
    )


def ipinstance_labels(instance: IPInstance) -> dict[str, str]:
    """The labels an IPInstance carries, so clients select by network, subnet, node or pod."""
    b = instance.binding
    return {
        names.LABEL_NETWORK: instance.network,
        names.LABEL_SUBNET: instance.subnet,
        names.LABEL_NODE: b.node_name or "",
        names.LABEL_POD: label_value(b.pod_name or ""),
        names.LABEL_POD_NAMESPACE: b.pod_namespace or "",
        names.LABEL_POD_UID: b.pod_uid or "",
    }


def namespace_owner(namespace: str, uid: str) -> dict[str, str]:
    """The ownerReference of an IPInstance: its pod's Namespace. A cluster-scoped object cannot be
    owned by a namespaced one (the garbage collector warns and never follows such a reference); the
    Namespace can, and deleting it frees its addresses even while no operator runs."""
    return {"apiVersion": "v1", "kind": "Namespace", "name": namespace, "uid": uid}


def ipinstance_status_to_dict(status: IPInstanceStatus) -> dict[str, Any]:
    return _drop_none(
        {
            "nodeName": status.node_name,
            "podName": status.pod_name,
            "podNamespace": status.pod_namespace,
            "sandboxID": status.sandbox_id,
            "updateTimestamp": status.update_timestamp,
        }
    )


def ipinstance_to_resource(instance: IPInstance, with_status: bool = False) -> dict[str, Any]:
    a, b = instance.address, instance.binding
    referred = b.referred_object
    resource: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_IPINSTANCE,
        "metadata": _metadata(instance.name, instance.labels),
        "spec": {
            "network": instance.network,
            "subnet": instance.subnet,
            "address": _drop_none(
                {"version": a.version, "ip": a.ip, "gateway": a.gateway, "netID": a.net_id, "mac": a.mac}
            ),
            "binding": _drop_none(
                {
                    "podName": b.pod_name,
                    "podNamespace": b.pod_namespace,
                    "podUID": b.pod_uid,
                    "nodeName": b.node_name,
                    "referredObject": (
                        _drop_none(
                            {
                                "apiVersion": referred.api_version,
                                "kind": referred.kind,
                                "name": referred.name,
                                "uid": referred.uid,
                            }
                        )
                        if referred
                        else None
                    ),
                    "stateful": {"index": b.stateful_index} if b.stateful_index is not None else None,
                }
            ),
        },
    }
    if with_status:
        resource["status"] = ipinstance_status_to_dict(instance.status)
    return resource


def nodeinfo_from_resource(obj: Mapping[str, Any]) -> NodeInfo:
    vtep = None
    if _get(obj, "spec.vtepInfo") is not None:
        vtep = VTEPInfo(
            ip=_typed(obj, "spec.vtepInfo.ip", str, ""),
            mac=_typed(obj, "spec.vtepInfo.mac", str, ""),
            local_ips=_str_list(obj, "spec.vtepInfo.localIPs"),
        )
    return NodeInfo(name=_name(obj), vtep=vtep, update_timestamp=_typed(obj, "status.updateTimestamp", str))


def nodeinfo_to_resource(info: NodeInfo, with_status: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if info.vtep is not None:
        spec["vtepInfo"] = _drop_none({"ip": info.vtep.ip, "mac": info.vtep.mac, "localIPs": list(info.vtep.local_ips)})
    resource: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_NODEINFO,
        "metadata": _metadata(info.name),
        "spec": spec,
    }
    if with_status:
        resource["status"] = _drop_none({"updateTimestamp": info.update_timestamp})
    return resource
