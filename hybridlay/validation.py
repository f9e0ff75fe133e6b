"""Admission rules for Network and Subnet (reference §4): one pure implementation for every caller.

The operator's validating webhooks and the Ansible plan check both call these functions, so a bad
object is refused with the same words wherever it is caught. Each function returns every
:class:`Violation` it finds, not only the first, and never raises on bad input: a value that does not
parse is itself a violation. Objects are compared by name, so ``existing`` may contain the object
being validated (an update, or a plan that lists everything) without it conflicting with itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hybridlay import model, names
from hybridlay.addresses import IPAddress, IPNetwork, parse_cidr, parse_ip
from hybridlay.errors import InvalidValue
from hybridlay.model import IPInstance, Network, NetworkMode, NetworkType, Subnet

MAX_SUBNET_CAPACITY = 1 << 16
# IPAM hands out start..end; a longer prefix leaves nothing once the network (and IPv4 broadcast)
# address is taken away, so it cannot be a pod subnet.
MAX_PREFIX = {4: 30, 6: 126}
VLAN_ID_MAX = 4094
VNI_MAX = (1 << 24) - 1
ASN_MAX = (1 << 32) - 1
# BGP graceful restart carries the restart time in 12 bits (RFC 4724).
GRACEFUL_RESTART_MAX = 4095
# How many names a "still in use" message lists before it only counts.
NAMES_SHOWN = 5


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``str()`` reads ``<field> <value> <message>``, e.g.
    ``spec.range.gateway 10.1.0.1 is outside spec.range.cidr 192.168.0.0/24``.

    ``value`` is ``None`` when the field is missing; the value is then left out of the text.
    """

    field: str
    value: object
    message: str

    def __str__(self) -> str:
        parts = [self.field] if self.field else []
        if self.value is not None:
            parts.append(render(self.value))
        parts.append(self.message)
        return " ".join(parts)

    @classmethod
    def from_error(cls, error: InvalidValue) -> Violation:
        return cls(error.field, error.value, error.reason)


def render(value: object) -> str:
    """A value as a message shows it: strings bare, selectors as ``k=v``, lists comma-separated."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '""'
    return str(value)


def some_names(items: Iterable[str]) -> str:
    """``a, b, c`` or ``a, b, c, d, e and 7 more``: enough to find the culprits, short enough to read."""
    ordered = sorted(items)
    shown = ", ".join(ordered[:NAMES_SHOWN])
    rest = len(ordered) - NAMES_SHOWN
    return f"{shown} and {rest} more" if rest > 0 else shown


def validate_resource(kind: str, obj: Mapping[str, Any]) -> tuple[Any, list[Violation]]:
    """Convert a resource dict to its model object; a value of the wrong type becomes a violation.

    Returns ``(object, [])`` or ``(None, [violation])``. ``kind`` is ``Network``, ``Subnet``,
    ``IPInstance`` or ``NodeInfo``.
    """
    converters: dict[str, Callable[[Mapping[str, Any]], Any]] = {
        names.KIND_NETWORK: model.network_from_resource,
        names.KIND_SUBNET: model.subnet_from_resource,
        names.KIND_IPINSTANCE: model.ipinstance_from_resource,
        names.KIND_NODEINFO: model.nodeinfo_from_resource,
    }
    if kind not in converters:
        return None, [Violation("kind", kind, f"is not one of {', '.join(converters)}")]
    try:
        return converters[kind](obj), []
    except InvalidValue as error:
        return None, [Violation.from_error(error)]


# --- Network --------------------------------------------------------------------------------------


def validate_network_create(
    network: Network, existing: Iterable[Network], node_labels: Mapping[str, Mapping[str, str]]
) -> list[Violation]:
    """Rules for a new Network; ``node_labels`` holds every node's labels by node name."""
    others = [n for n in existing if n.name != network.name]
    mode_violations = _mode_rules(network)
    # Peer rules follow from the mode; with a mode that does not fit the type they would only add noise.
    peer_violations = _bgp_peer_rules(network) if _MODE_TYPE[network.effective_mode] is network.type else []
    return [*_type_rules(network, others, node_labels), *mode_violations, *_net_id_range(network), *peer_violations]


def validate_network_update(
    old: Network, new: Network, existing: Iterable[Network], node_labels: Mapping[str, Mapping[str, str]]
) -> list[Violation]:
    """Type, mode and netID are fixed once created; the new object must also pass the create rules."""
    violations = []
    if old.type is not new.type:
        violations.append(Violation("spec.type", new.type.value, f"must not change (was {old.type.value})"))
    if old.effective_mode is not new.effective_mode:
        violations.append(
            Violation("spec.mode", new.effective_mode.value, f"must not change (was {old.effective_mode.value})")
        )
    if old.net_id != new.net_id:
        violations.append(
            Violation("spec.netID", _or_unset(new.net_id), f"must not change (was {_or_unset(old.net_id)})")
        )
    return violations + validate_network_create(new, existing, node_labels)


def validate_network_delete(network: Network, subnets: Iterable[Subnet]) -> list[Violation]:
    return _still_used(network.name, "subnet(s)", [s.name for s in subnets if s.network == network.name])


def _still_used(name: str, what: str, users: list[str]) -> list[Violation]:
    """Deleting ``name`` is refused while ``users`` refer to it; say which, so they can be found."""
    if not users:
        return []
    return [Violation("metadata.name", name, f"is still used by {len(users)} {what}: {some_names(users)}")]


def _or_unset(value: object) -> object:
    return "<unset>" if value is None else value


def _type_rules(
    network: Network, others: list[Network], node_labels: Mapping[str, Mapping[str, str]]
) -> list[Violation]:
    violations = []
    if network.type is NetworkType.UNDERLAY:
        if not network.node_selector:
            violations.append(Violation("spec.nodeSelector", None, "is required for an Underlay network"))
        else:
            violations.extend(_nodes_taken(network, others, node_labels))
    else:
        # Overlay and GlobalBGP span every node: a single one of each, without a selector.
        same_type = [n.name for n in others if n.type is network.type]
        if same_type:
            violations.append(
                Violation(
                    "spec.type",
                    network.type.value,
                    f"network {same_type[0]} already exists (at most one {network.type.value} network)",
                )
            )
        if network.node_selector:
            violations.append(
                Violation(
                    "spec.nodeSelector",
                    dict(network.node_selector),
                    f"must be empty for an {network.type.value} network (it spans every node)",
                )
            )
    if network.type is NetworkType.OVERLAY and network.net_id is None:
        violations.append(Violation("spec.netID", None, "is required for an Overlay network (the VXLAN VNI)"))
    if network.type is NetworkType.GLOBAL_BGP and network.net_id is not None:
        violations.append(Violation("spec.netID", network.net_id, "must be unset for a GlobalBGP network"))
    return violations


def _nodes_taken(
    network: Network, others: list[Network], node_labels: Mapping[str, Mapping[str, str]]
) -> list[Violation]:
    """A node belongs to one underlay network at most: its pods have one uplink and one gateway."""
    underlays = [n for n in others if n.type is NetworkType.UNDERLAY]
    clashes: dict[str, list[str]] = {}
    for node, labels in node_labels.items():
        if not network.selects(labels):
            continue
        for other in underlays:
            if other.selects(labels):
                clashes.setdefault(other.name, []).append(node)
    return [
        Violation(
            "spec.nodeSelector",
            dict(network.node_selector),
            f"selects node(s) {some_names(nodes)} already in underlay network {other}",
        )
        for other, nodes in sorted(clashes.items())
    ]


# Which network type each mode belongs to.
_MODE_TYPE = {
    NetworkMode.VLAN: NetworkType.UNDERLAY,
    NetworkMode.BGP: NetworkType.UNDERLAY,
    NetworkMode.VXLAN: NetworkType.OVERLAY,
    NetworkMode.GLOBAL_BGP: NetworkType.GLOBAL_BGP,
}


def _mode_rules(network: Network) -> list[Violation]:
    mode = network.effective_mode
    required_type = _MODE_TYPE[mode]
    if network.type is not required_type:
        return [
            Violation("spec.mode", mode.value, f"is only for {required_type.value} networks, not {network.type.value}")
        ]
    if mode is NetworkMode.BGP and network.net_id is None:
        return [Violation("spec.netID", None, "is required for a BGP network (the nodes' local AS number)")]
    return []


def _net_id_range(network: Network) -> list[Violation]:
    if network.net_id is None:
        return []
    low, high, meaning, note = {
        NetworkMode.VLAN: (0, VLAN_ID_MAX, "a VLAN id", ", 0 for untagged"),
        NetworkMode.VXLAN: (0, VNI_MAX, "a VXLAN VNI", ""),
        NetworkMode.BGP: (1, ASN_MAX, "an AS number", ""),
        NetworkMode.GLOBAL_BGP: (1, ASN_MAX, "an AS number", ""),
    }[network.effective_mode]
    if low <= network.net_id <= high:
        return []
    return [Violation("spec.netID", network.net_id, f"is not {meaning} ({low}-{high}{note})")]


def _bgp_peer_rules(network: Network) -> list[Violation]:
    base = "spec.config.bgpPeers"
    if network.effective_mode is not NetworkMode.BGP:
        if network.bgp_peers:
            return [Violation(base, [p.address for p in network.bgp_peers], "are only used by BGP networks")]
        return []
    if not network.bgp_peers:
        return [Violation(base, None, "needs at least one peer in a BGP network")]
    violations = []
    seen: set[IPAddress] = set()
    for i, peer in enumerate(network.bgp_peers):
        field = f"{base}[{i}]"
        try:
            address = parse_ip(peer.address, f"{field}.address")
        except InvalidValue as error:
            violations.append(Violation.from_error(error))
        else:
            if address in seen:
                violations.append(Violation(f"{field}.address", peer.address, "is listed twice"))
            seen.add(address)
        if not 1 <= peer.asn <= ASN_MAX:
            violations.append(Violation(f"{field}.asn", peer.asn, f"is not an AS number (1-{ASN_MAX})"))
        if not 0 <= peer.graceful_restart_seconds <= GRACEFUL_RESTART_MAX:
            violations.append(
                Violation(
                    f"{field}.gracefulRestartSeconds",
                    peer.graceful_restart_seconds,
                    f"is out of range (0-{GRACEFUL_RESTART_MAX})",
                )
            )
    # Pod traffic leaves through one router; further peers may only listen (issue 7).
    routing = [i for i, p in enumerate(network.bgp_peers) if not p.does_not_route_traffic]
    violations.extend(
        Violation(
            f"{base}[{i}].doesNotRouteTraffic",
            False,
            f"must be true: {base}[{routing[0]}] already routes traffic (at most one peer may)",
        )
        for i in routing[1:]
    )
    return violations


# --- Subnet ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """A subnet's parsed CIDR and effective start..end (defaults filled in)."""

    cidr: IPNetwork
    start: IPAddress
    end: IPAddress

    @property
    def capacity(self) -> int:
        return int(self.end) - int(self.start) + 1

    def overlaps(self, other: Bounds) -> bool:
        return int(self.start) <= int(other.end) and int(other.start) <= int(self.end)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


def default_start(cidr: IPNetwork) -> IPAddress:
    return cidr.network_address + 1


def default_end(cidr: IPNetwork) -> IPAddress:
    """Last address of the CIDR; for IPv4 the one before the broadcast address."""
    return cidr.broadcast_address - 1 if cidr.version == 4 else cidr.broadcast_address


def validate_subnet_create(
    subnet: Subnet, networks: Mapping[str, Network], existing: Iterable[Subnet]
) -> list[Violation]:
    violations = _network_rules(subnet, networks)
    found, bounds = range_violations(subnet)
    violations += found
    if bounds is not None:
        violations += _overlap_rules(subnet, bounds, [s for s in existing if s.name != subnet.name])
    return violations


def validate_subnet_update(old: Subnet, new: Subnet, networks: Mapping[str, Network]) -> list[Violation]:
    """Only reservedIPs, private and (overlay) autoNatOutgoing may change; the rest is fixed.

    Overlap is not checked again: the fields it depends on cannot change.
    """
    fixed: list[tuple[str, Callable[[Subnet], object]]] = [
        ("spec.network", lambda s: s.network),
        ("spec.netID", lambda s: s.net_id),
        ("spec.range.version", lambda s: s.range.version),
        ("spec.range.cidr", lambda s: s.range.cidr),
        ("spec.range.start", lambda s: s.range.start),
        ("spec.range.end", lambda s: s.range.end),
        ("spec.range.gateway", lambda s: s.range.gateway),
        ("spec.range.excludeIPs", lambda s: list(s.range.exclude_ips)),
    ]
    violations = [
        Violation(path, _or_unset(get(new)), f"must not change (was {render(_or_unset(get(old)))})")
        for path, get in fixed
        if get(old) != get(new)
    ]
    found, _ = range_violations(new)
    return violations + _network_rules(new, networks) + found


def validate_subnet_delete(subnet: Subnet, instances: Iterable[IPInstance]) -> list[Violation]:
    return _still_used(subnet.name, "IPInstance(s)", [i.name for i in instances if i.subnet == subnet.name])


def _network_rules(subnet: Subnet, networks: Mapping[str, Network]) -> list[Violation]:
    """What the parent network implies for netID, gateway and autoNatOutgoing."""
    if not subnet.network:
        return [Violation("spec.network", None, "is required")]
    network = networks.get(subnet.network)
    if network is None:
        return [Violation("spec.network", subnet.network, "does not exist")]
    violations = []
    mode = network.effective_mode
    if mode is NetworkMode.VLAN:
        if subnet.net_id is None and network.net_id is None:
            violations.append(
                Violation("spec.netID", None, f"is required: network {network.name} sets no VLAN id to inherit")
            )
        elif subnet.net_id is not None and network.net_id is not None and subnet.net_id != network.net_id:
            violations.append(
                Violation("spec.netID", subnet.net_id, f"differs from network {network.name}'s netID {network.net_id}")
            )
        elif subnet.net_id is not None and not 0 <= subnet.net_id <= VLAN_ID_MAX:
            violations.append(Violation("spec.netID", subnet.net_id, f"is not a VLAN id (0-{VLAN_ID_MAX})"))
        if subnet.range.gateway is None:
            violations.append(
                Violation("spec.range.gateway", None, "is required in a VLAN network (the pods' router on the VLAN)")
            )
    elif subnet.net_id is not None:
        violations.append(
            Violation("spec.netID", subnet.net_id, f"must be unset in a {mode.value} network (it has one for all)")
        )
    if network.type is NetworkType.UNDERLAY and subnet.config.auto_nat_outgoing is not None:
        violations.append(
            Violation(
                "spec.config.autoNatOutgoing",
                subnet.config.auto_nat_outgoing,
                "must be unset in an Underlay network (its pods' addresses are routable)",
            )
        )
    return violations


class _Collector:
    """Gathers violations while parsing, so one call reports every bad field."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def parse(self, parse: Callable[[], IPAddress | IPNetwork]) -> Any:
        try:
            return parse()
        except InvalidValue as error:
            self.violations.append(Violation.from_error(error))
            return None

    def add(self, field: str, value: object, message: str) -> None:
        self.violations.append(Violation(field, value, message))


def range_violations(subnet: Subnet) -> tuple[list[Violation], Bounds | None]:
    """Check ``spec.range``; also return the effective bounds when they are sound (for overlap)."""
    r = subnet.range
    out = _Collector()
    version: int | None = None
    if r.version in ("4", "6"):
        version = int(r.version)
    else:
        out.add("spec.range.version", r.version or None, 'must be "4" or "6"')
    cidr: IPNetwork | None = out.parse(lambda: parse_cidr(r.cidr, "spec.range.cidr", version))
    if cidr is None:
        return out.violations, None
    if cidr.prefixlen > MAX_PREFIX[cidr.version]:
        out.add(
            "spec.range.cidr",
            r.cidr,
            f"is too small for pods: the prefix must be at most /{MAX_PREFIX[cidr.version]}",
        )
        return out.violations, None

    def inside(field: str, value: str, host: bool) -> IPAddress | None:
        address: IPAddress | None = out.parse(lambda: parse_ip(value, field, cidr.version))
        if address is None:
            return None
        if address not in cidr:
            out.add(field, value, f"is outside spec.range.cidr {r.cidr}")
            return None
        if host and address == cidr.network_address:
            out.add(field, value, f"is the network address of spec.range.cidr {r.cidr}")
            return None
        if host and cidr.version == 4 and address == cidr.broadcast_address:
            out.add(field, value, f"is the broadcast address of spec.range.cidr {r.cidr}")
            return None
        return address

    start = inside("spec.range.start", r.start, host=True) if r.start is not None else default_start(cidr)
    end = inside("spec.range.end", r.end, host=True) if r.end is not None else default_end(cidr)
    if r.gateway is not None:
        inside("spec.range.gateway", r.gateway, host=True)
    for i, ip in enumerate(r.reserved_ips):
        inside(f"spec.range.reservedIPs[{i}]", ip, host=True)
    for i, ip in enumerate(r.exclude_ips):
        inside(f"spec.range.excludeIPs[{i}]", ip, host=False)
    if start is None or end is None:
        return out.violations, None
    bounds = Bounds(cidr, start, end)
    if int(start) > int(end):
        out.add("spec.range.start", start, f"is after spec.range.end {end}")
        return out.violations, None
    if bounds.capacity > MAX_SUBNET_CAPACITY:
        out.add(
            "spec.range",
            str(bounds),
            f"holds {bounds.capacity} addresses, more than a subnet may ({MAX_SUBNET_CAPACITY}); "
            "narrow it with spec.range.start and spec.range.end",
        )
    return out.violations, bounds


def _bounds_of(subnet: Subnet) -> Bounds | None:
    """Effective bounds of an existing subnet, or None if it does not parse (it cannot clash then)."""
    try:
        cidr = ipaddress.ip_network(subnet.range.cidr)
        start = ipaddress.ip_address(subnet.range.start) if subnet.range.start else default_start(cidr)
        end = ipaddress.ip_address(subnet.range.end) if subnet.range.end else default_end(cidr)
    except ValueError:
        return None
    return Bounds(cidr, start, end)


def _overlap_rules(subnet: Subnet, bounds: Bounds, others: list[Subnet]) -> list[Violation]:
    """Subnets may not overlap, except one CIDR split by disjoint ranges within one network."""
    violations = []
    for other in sorted(others, key=lambda s: s.name):
        theirs = _bounds_of(other)
        if theirs is None or theirs.cidr.version != bounds.cidr.version or not theirs.cidr.overlaps(bounds.cidr):
            continue
        if theirs.cidr != bounds.cidr:
            violations.append(
                Violation("spec.range.cidr", subnet.range.cidr, f"overlaps subnet {other.name} ({other.range.cidr})")
            )
        elif other.network != subnet.network:
            violations.append(
                Violation(
                    "spec.range.cidr",
                    subnet.range.cidr,
                    f"is already used by subnet {other.name} of network {other.network}",
                )
            )
        elif theirs.overlaps(bounds):
            violations.append(
                Violation(
                    "spec.range",
                    str(bounds),
                    f"overlaps the range {theirs} of subnet {other.name} in the same CIDR {other.range.cidr}",
                )
            )
    return violations
