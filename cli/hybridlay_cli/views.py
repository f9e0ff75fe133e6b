"""What ``hybridlay status`` and ``hybridlay ipinstances`` show, as plain records and text tables.

Pure functions of model objects: no API access, so every column is tested without a cluster.
A record is a JSON-ready dict (``-o json`` prints it); a table picks columns from the records.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hybridlay.errors import InvalidValue
from hybridlay.ipam import IPAM, parse_range
from hybridlay.model import IPInstance, Network, Statistics, Subnet

NOTE_COMPUTED = "no status yet: used counted from IPInstances"
NONE = "-"

Record = dict[str, Any]


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Record], object]


def _cell(value: object) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render_table(columns: Sequence[Column], records: Iterable[Record]) -> str:
    """Left-aligned columns three spaces apart, as kubectl prints them."""
    rows = [[c.header for c in columns]] + [[_cell(c.value(r)) for c in columns] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


# --- status ------------------------------------------------------------------------------------


def _counts(stats: Statistics | None) -> dict[str, int] | None:
    return None if stats is None else {"total": stats.total, "used": stats.used, "available": stats.available}


def computed_usage(networks: Iterable[Network], subnets: Iterable[Subnet], instances: Iterable[IPInstance]) -> IPAM:
    """The counts the operator would write, rebuilt from the IPInstances (subnets it would refuse left out)."""
    ipam = IPAM()
    for network in networks:
        ipam.set_network(network)
    for subnet in subnets:
        try:
            ipam.set_subnet(subnet)
        except InvalidValue:
            continue  # shown with its own note by subnet_record
    ipam.rebuild(instances)
    return ipam


def network_record(network: Network, computed: IPAM | None = None) -> Record:
    """One network; ``computed`` is given when the object has no status yet."""
    status = computed.network_status(network.name) if computed is not None else network.status
    return {
        "name": network.name,
        "type": network.type.value,
        "mode": network.effective_mode.value,
        "netID": network.net_id,
        "nodes": list(network.status.node_list),
        "ipv4": _counts(status.statistics),
        "ipv6": _counts(status.ipv6_statistics),
        "note": NOTE_COMPUTED if computed is not None else None,
    }


def _range_text(subnet: Subnet) -> str:
    try:
        spec = parse_range(subnet)
    except InvalidValue:
        return f"{subnet.range.start or NONE}-{subnet.range.end or NONE}"
    span = spec.assignable_span()
    return f"{spec.text(span[0])}-{spec.text(span[1])}" if span else NONE


def subnet_record(subnet: Subnet, computed: IPAM | None = None) -> Record:
    """One subnet; ``computed`` is given when the object has no status yet."""
    status, note = subnet.status, None
    if computed is not None:
        try:
            status, note = computed.subnet_status(subnet.name), NOTE_COMPUTED
        except InvalidValue:
            note = "no status yet, and its range is refused: see the operator's events"
    return {
        "name": subnet.name,
        "network": subnet.network,
        "cidr": subnet.range.cidr,
        "gateway": subnet.range.gateway,
        "range": _range_text(subnet),
        "total": status.total,
        "used": status.used,
        "available": status.available,
        "lastAllocatedIP": status.last_allocated_ip,
        "note": note,
    }


def _family(record: Record, key: str, field: str) -> object:
    counts = record[key]
    return None if counts is None else counts[field]


NETWORK_COLUMNS = (
    Column("NAME", lambda r: r["name"]),
    Column("TYPE", lambda r: r["type"]),
    Column("MODE", lambda r: r["mode"]),
    Column("NETID", lambda r: r["netID"]),
    Column("NODES", lambda r: len(r["nodes"])),
    Column("V4-TOTAL", lambda r: _family(r, "ipv4", "total")),
    Column("V4-USED", lambda r: _family(r, "ipv4", "used")),
    Column("V4-AVAILABLE", lambda r: _family(r, "ipv4", "available")),
    Column("V6-TOTAL", lambda r: _family(r, "ipv6", "total")),
    Column("V6-USED", lambda r: _family(r, "ipv6", "used")),
    Column("V6-AVAILABLE", lambda r: _family(r, "ipv6", "available")),
    Column("NOTE", lambda r: r["note"]),
)

SUBNET_COLUMNS = (
    Column("NAME", lambda r: r["name"]),
    Column("NETWORK", lambda r: r["network"]),
    Column("CIDR", lambda r: r["cidr"]),
    Column("GATEWAY", lambda r: r["gateway"]),
    Column("RANGE", lambda r: r["range"]),
    Column("TOTAL", lambda r: r["total"]),
    Column("USED", lambda r: r["used"]),
    Column("AVAILABLE", lambda r: r["available"]),
    Column("LAST-ALLOCATED", lambda r: r["lastAllocatedIP"]),
    Column("NOTE", lambda r: r["note"]),
)


NODE_COLUMNS = (
    Column("NAME", lambda r: r["name"]),
    Column("NETWORKS", lambda r: ",".join(r["networks"]) or None),
    Column("ADDRESSES", lambda r: r["addresses"]),
)


def node_records(networks: Sequence[Network], instances: Sequence[IPInstance]) -> list[Record]:
    """Each node a network lists (its status' nodeList) or an address is bound to: its networks and
    how many addresses it holds."""
    networks_of: dict[str, list[str]] = {}
    for network in sorted(networks, key=lambda n: n.name):
        for node in network.status.node_list:
            networks_of.setdefault(node, []).append(network.name)
    held = Counter(i.binding.node_name for i in instances if i.binding.node_name)
    return [
        {"name": node, "networks": networks_of.get(node, []), "addresses": held[node]}
        for node in sorted(set(networks_of) | set(held))
    ]


def status_records(
    networks: Sequence[Network],
    subnets: Sequence[Subnet],
    instances: Sequence[IPInstance],
    *,
    computed: IPAM | None = None,
    networks_without_status: Collection[str] = (),
    subnets_without_status: Collection[str] = (),
) -> Record:
    """``{"nodes": [...], "networks": [...], "subnets": [...]}``; objects named as without status take
    ``computed`` counts."""

    def usage(name: str, without_status: Collection[str]) -> IPAM | None:
        return computed if name in without_status else None

    ordered_subnets = sorted(subnets, key=lambda s: (s.network, s.name))
    return {
        "nodes": node_records(networks, instances),
        "networks": [
            network_record(n, usage(n.name, networks_without_status)) for n in sorted(networks, key=lambda n: n.name)
        ],
        "subnets": [subnet_record(s, usage(s.name, subnets_without_status)) for s in ordered_subnets],
    }


def render_status(records: Record) -> str:
    return "\n".join(
        [
            "NODES",
            render_table(NODE_COLUMNS, records["nodes"]),
            "",
            "NETWORKS",
            render_table(NETWORK_COLUMNS, records["networks"]),
            "",
            "SUBNETS",
            render_table(SUBNET_COLUMNS, records["subnets"]),
        ]
    )


# --- ipinstances -------------------------------------------------------------------------------


def _address_key(instance: IPInstance) -> tuple[str, str, int, int]:
    try:
        ip = ipaddress.ip_interface(instance.address.ip).ip
    except ValueError:
        return instance.network, instance.subnet, 9, 0
    return instance.network, instance.subnet, ip.version, int(ip)


def select_instances(
    instances: Iterable[IPInstance], network: str | None = None, subnet: str | None = None, node: str | None = None
) -> list[IPInstance]:
    """Those matching every filter given, ordered by network, subnet and address."""
    chosen = [
        i
        for i in instances
        if (network is None or i.network == network)
        and (subnet is None or i.subnet == subnet)
        and (node is None or i.binding.node_name == node)
    ]
    return sorted(chosen, key=_address_key)


def ipinstance_record(instance: IPInstance) -> Record:
    binding, referred = instance.binding, instance.binding.referred_object
    pod = f"{binding.pod_namespace}/{binding.pod_name}" if binding.pod_name else None
    return {
        "name": instance.name,
        "ip": instance.address.ip,
        "pod": pod,
        "podUID": binding.pod_uid,
        "node": binding.node_name,
        "subnet": instance.subnet,
        "network": instance.network,
        "mac": instance.address.mac,
        "gateway": instance.address.gateway,
        "netID": instance.address.net_id,
        "owner": f"{referred.kind}/{referred.name}" if referred is not None else None,
        # Retention is the operator's decision, recorded in the binding, whether a pod is bound or not.
        "retained": instance.binding.retained,
        "terminating": instance.terminating,
    }


IPINSTANCE_COLUMNS = (
    Column("IP", lambda r: r["ip"]),
    Column("POD", lambda r: r["pod"]),
    Column("NODE", lambda r: r["node"]),
    Column("SUBNET", lambda r: r["subnet"]),
    Column("NETWORK", lambda r: r["network"]),
    Column("MAC", lambda r: r["mac"]),
    Column("RETAINED", lambda r: r["retained"]),
)
IPINSTANCE_WIDE_COLUMNS = (
    *IPINSTANCE_COLUMNS,
    Column("GATEWAY", lambda r: r["gateway"]),
    Column("NETID", lambda r: r["netID"]),
    Column("OWNER", lambda r: r["owner"]),
    Column("POD-UID", lambda r: r["podUID"]),
    Column("TERMINATING", lambda r: r["terminating"]),
)
