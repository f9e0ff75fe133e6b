"""The node's data plane as plain, frozen data: what the planner wants and what the reconciler reads.

Every object has a ``key``: two objects with the same key describe the same kernel object, so a
difference in the other fields is a change (replace), and a key on one side only is an add or a
delete. Devices are named, never indexed: the reconciler resolves names to ifindexes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

# Route protocol number stamped on every route we add (rtnetlink leaves 0-255 to routing daemons;
# 211 is unassigned in iproute2's rt_protos). Tables below are ours whatever the protocol says.
ROUTE_PROTOCOL = 211

TABLE_LOCAL_PODS = 39999
TABLE_OVERLAY = 40000
TABLE_TUNNEL_MARK = 40001
SUBNET_TABLE_MIN = 10000
SUBNET_TABLE_MAX = 39998  # 39999 is the local-pod table
OWNED_TABLES = range(SUBNET_TABLE_MIN, TABLE_TUNNEL_MARK + 1)

# Rule priorities: after `local` (0), before `main` (32766). The whole range is ours.
PRIORITY_LOCAL_PODS = 1000
PRIORITY_OVERLAY = 1001
PRIORITY_TUNNEL_MARK = 1002
PRIORITY_SUBNET = 1010
OWNED_PRIORITIES = range(1000, 1100)

TUNNEL_MARK = 0x20
# Per-subnet rules apply only to packets without these marks (0x4000: kube-proxy's masquerade mark).
SUBNET_RULE_MASK = 0x4040

VXLAN_PORT = 8472
VXLAN_OVERHEAD = 50  # outer Ethernet, IPv4, UDP and VXLAN headers
VXLAN_OVERHEAD_V6 = 70  # the same over an IPv6 underlay (the kernel refuses a larger MTU)
BUM_MAC = "00:00:00:00:00:00"

CHAIN_PREFIX = "HYBRIDLAY-"
SET_PREFIX = "HYBRIDLAY-"


@dataclass(frozen=True)
class Rule:
    family: int  # 4 or 6
    priority: int
    table: int
    src: str | None = None  # CIDR, None = from all
    fwmark: int | None = None
    fwmask: int | None = None

    @property
    def key(self) -> Hashable:
        return self


@dataclass(frozen=True)
class Route:
    family: int
    table: int
    dst: str  # canonical CIDR; "default" is 0.0.0.0/0 or ::/0
    type: str = "unicast"  # unicast | throw
    dev: str | None = None
    gateway: str | None = None
    scope: str = "universe"  # universe | link

    @property
    def key(self) -> Hashable:
        return (self.family, self.table, self.dst)


@dataclass(frozen=True)
class VxlanLink:
    name: str
    vni: int
    parent: str
    local: str  # the VTEP address on the parent (IPv4 or IPv6 underlay)
    mtu: int
    mac: str
    port: int = VXLAN_PORT
    learning: bool = False

    @property
    def key(self) -> Hashable:
        return self.name


@dataclass(frozen=True)
class VlanLink:
    name: str
    parent: str
    vlan_id: int

    @property
    def key(self) -> Hashable:
        return self.name


@dataclass(frozen=True)
class FdbEntry:
    dev: str
    mac: str
    dst: str

    @property
    def key(self) -> Hashable:
        return self


@dataclass(frozen=True)
class Neighbour:
    """A permanent neighbour entry (remote pod IP → remote VTEP MAC on the VXLAN device)."""

    dev: str
    ip: str
    mac: str

    @property
    def key(self) -> Hashable:
        return (self.dev, self.ip)


@dataclass(frozen=True)
class ProxyNeighbour:
    """The node answers ARP/NDP for ``ip`` on ``dev`` (a local pod's address)."""

    dev: str
    ip: str

    @property
    def key(self) -> Hashable:
        return self


@dataclass(frozen=True)
class Address:
    """The VLAN "enhanced address": ``ip/prefix`` with scope link and noprefixroute on ``dev``."""

    dev: str
    address: str  # "192.168.56.100/24"

    @property
    def key(self) -> Hashable:
        return self


@dataclass(frozen=True)
class Sysctl:
    path: str  # below /proc/sys, e.g. "net/ipv4/conf/eth0/rp_filter"
    value: str
    device: str | None = None  # applies only while this device exists

    @property
    def key(self) -> Hashable:
        return self.path


@dataclass(frozen=True)
class IPSet:
    name: str
    family: int
    type: str  # hash:net | hash:ip
    members: frozenset[str] = frozenset()

    @property
    def key(self) -> Hashable:
        return self.name


@dataclass(frozen=True)
class Chain:
    """One of our iptables chains, entered by a jump rule at the top of a built-in chain."""

    family: int
    table: str  # nat | filter | mangle
    name: str  # HYBRIDLAY-...
    hook: str  # the built-in chain that jumps here
    rules: tuple[str, ...] = ()  # iptables-save syntax without "-A <name>"

    @property
    def key(self) -> Hashable:
        return (self.family, self.table, self.name)


@dataclass(frozen=True)
class DesiredState:
    rules: frozenset[Rule] = frozenset()
    routes: frozenset[Route] = frozenset()
    vxlan_links: frozenset[VxlanLink] = frozenset()
    vlan_links: frozenset[VlanLink] = frozenset()
    fdb: frozenset[FdbEntry] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()
    proxy_neighbours: frozenset[ProxyNeighbour] = frozenset()
    addresses: frozenset[Address] = frozenset()
    sysctls: frozenset[Sysctl] = frozenset()
    ipsets: frozenset[IPSet] = frozenset()
    chains: frozenset[Chain] = frozenset()
    subnet_tables: Mapping[str, int] = field(default_factory=dict)
    # Every subnet CIDR in the cluster: proxy entries and addresses inside them on a VLAN device are ours.
    owned_prefixes: frozenset[str] = frozenset()
    # Where enhanced addresses may be: the VLAN parent and our VLAN devices (also when none is planned).
    vlan_devices: frozenset[str] = frozenset()


class Keyed(Protocol):
    @property
    def key(self) -> Hashable: ...


K = TypeVar("K", bound=Keyed)
T = TypeVar("T")


@dataclass(frozen=True)
class Diff(Generic[T]):
    add: tuple[T, ...] = ()
    change: tuple[T, ...] = ()  # desired value of an object that exists with other attributes
    remove: tuple[T, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.remove)


def diff(current: Iterable[K], desired: Iterable[K]) -> Diff[K]:
    """What to add, change and remove so that ``current`` becomes ``desired`` (stable order)."""
    have = {item.key: item for item in current}
    want = {item.key: item for item in desired}
    return Diff(
        add=tuple(sorted((v for k, v in want.items() if k not in have), key=repr)),
        change=tuple(sorted((v for k, v in want.items() if k in have and have[k] != v), key=repr)),
        remove=tuple(sorted((v for k, v in have.items() if k not in want), key=repr)),
    )
