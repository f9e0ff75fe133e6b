"""BGP underlay planning: what a node's speaker is configured with and which routes it announces.

Pure: from a Network of mode BGP, its subnets, the node's local pod IPInstances and facts about the
node's BGP interface, compute the speaker configuration and the set of announcements, and the
changes that turn what is announced into what is desired. The edge
(``hybridlay_agent.bgp_speaker``) turns these into ExaBGP commands.

Rules (reference §1, §5):

- local ASN = the network's netID; one session per ``config.bgpPeers`` entry, from the node's
  address of the peer's family on the BGP interface (the one whose subnet holds the peer, if any);
- announced to every peer of the prefix's family: each BGP subnet's prefix, and a host route
  (/32, /128) per local pod address of that subnet, tagged NO_EXPORT so the switch keeps it to
  itself; next hop = the node's session address towards that peer;
- at most one peer routes traffic (the others say ``doesNotRouteTraffic``; admission enforces it):
  ``PeerConfig.routes_traffic``. The BGP subnet tables' ``default via <peer>`` itself is the data-plane
  planner's (``hybridlay.dataplane.planner``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from hybridlay.addresses import IPAddress, parse_cidr, parse_interface, parse_ip
from hybridlay.errors import InvalidValue
from hybridlay.model import IPInstance, Network, NetworkMode, SecretKeyRef, Subnet
from hybridlay.validation import validate_network_create

PEERS_FIELD = "spec.config.bgpPeers"


@dataclass(frozen=True)
class BGPNode:
    """What the agent knows about its node's BGP parent interface."""

    name: str
    interface: str
    # The interface's addresses with prefix length, e.g. ("192.168.100.11/24", "fd00:100::11/64").
    addresses: tuple[str, ...]
    # Defaults to the first IPv4 address of the interface; required on an IPv6-only node.
    router_id: str | None = None


@dataclass(frozen=True)
class PeerConfig:
    address: str
    asn: int
    local_address: str
    graceful_restart_seconds: int
    routes_traffic: bool
    allow_not_established: bool
    # Where the TCP MD5 password lives; the agent resolves it and hands the value to the speaker.
    password_secret: SecretKeyRef | None = None

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True)
class SpeakerConfig:
    local_asn: int
    router_id: str
    interface: str
    peers: tuple[PeerConfig, ...]


@dataclass(frozen=True, order=True)
class Announcement:
    """One route to one peer. Keyed by (peer, prefix): a changed next hop or community replaces it."""

    peer: str
    prefix: str
    next_hop: str
    no_export: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.peer, self.prefix)


@dataclass(frozen=True)
class Change:
    action: Literal["announce", "withdraw"]
    announcement: Announcement


def speaker_config(network: Network, node: BGPNode) -> SpeakerConfig:
    """Configuration of the node's speaker for a BGP network; :class:`InvalidValue` names the bad field.

    The network is checked with the admission rules first, so a network that slipped past admission
    (or predates a rule) is refused here rather than half configured.
    """
    if network.effective_mode is not NetworkMode.BGP:
        raise InvalidValue("spec.mode", network.effective_mode.value, "is not BGP")
    if network.net_id is None:
        raise InvalidValue("spec.netID", None, "is required for a BGP network (the nodes' local AS number)")
    violations = validate_network_create(network, (), {})
    if violations:
        first = violations[0]
        raise InvalidValue(first.field, first.value, first.message)
    interfaces = [parse_interface(a, f"node {node.name} interface {node.interface} address") for a in node.addresses]
    peers = tuple(
        PeerConfig(
            address=str(address := ipaddress.ip_address(peer.address)),
            asn=peer.asn,
            local_address=str(_local_address(address, interfaces, node, f"{PEERS_FIELD}[{i}]")),
            graceful_restart_seconds=peer.graceful_restart_seconds,
            routes_traffic=not peer.does_not_route_traffic,
            allow_not_established=peer.allow_not_established,
            password_secret=peer.password_secret,
        )
        for i, peer in enumerate(network.bgp_peers)
    )
    return SpeakerConfig(
        local_asn=network.net_id,
        router_id=_router_id(node, interfaces),
        interface=node.interface,
        peers=peers,
    )


def _local_address(
    peer: IPAddress,
    interfaces: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface],
    node: BGPNode,
    field: str,
) -> IPAddress:
    same_family = [i for i in interfaces if i.version == peer.version and not i.ip.is_link_local]
    if not same_family:
        raise InvalidValue(
            f"{field}.address", str(peer), f"node {node.name} has no IPv{peer.version} address on {node.interface}"
        )
    on_link = [i for i in same_family if peer in i.network]
    return (on_link or same_family)[0].ip


def _router_id(node: BGPNode, interfaces: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]) -> str:
    if node.router_id is not None:
        return str(parse_ip(node.router_id, f"node {node.name} router id", version=4))
    v4 = [i.ip for i in interfaces if i.version == 4]
    if not v4:
        raise InvalidValue(f"node {node.name} router id", None, "needed: the BGP interface has no IPv4 address")
    return str(v4[0])


def desired_announcements(
    network: Network,
    config: SpeakerConfig,
    subnets: Iterable[Subnet],
    instances: Iterable[IPInstance],
    node: BGPNode,
) -> frozenset[Announcement]:
    """Every (peer, prefix) the node should announce: subnet prefixes and its local pods' host routes.

    A prefix only goes to peers of its own family (no IPv6-over-IPv4 next hops).
    """
    subnet_cidrs = {
        s.name: parse_cidr(s.range.cidr, f"subnet {s.name} spec.range.cidr")
        for s in subnets
        if s.network == network.name
    }
    prefixes: dict[str, bool] = {str(cidr): False for cidr in subnet_cidrs.values()}
    for instance in instances:
        if instance.subnet not in subnet_cidrs or instance.terminating or _node_of(instance) != node.name:
            continue
        ip = parse_interface(instance.address.ip, f"ipinstance {instance.name} spec.address.ip").ip
        prefixes[str(ipaddress.ip_network(ip))] = True
    return frozenset(
        Announcement(peer=peer.address, prefix=prefix, next_hop=peer.local_address, no_export=is_pod)
        for prefix, is_pod in prefixes.items()
        for peer in config.peers
        if ipaddress.ip_network(prefix).version == peer.version
    )


def _node_of(instance: IPInstance) -> str | None:
    return instance.binding.node_name or instance.status.node_name


def changes(desired: frozenset[Announcement], announced: frozenset[Announcement]) -> list[Change]:
    """Withdrawals (keys no longer wanted) first, then announcements of new or changed routes.

    A changed route is re-announced, never withdrawn: BGP replaces a route by announcing it again,
    and a withdrawal after that would remove the new one.
    """
    wanted_keys = {a.key for a in desired}
    withdraw = sorted(a for a in announced if a.key not in wanted_keys)
    announce = sorted(desired - announced)
    return [Change("withdraw", a) for a in withdraw] + [Change("announce", a) for a in announce]


def host_prefix(address: str) -> str:
    """The /32 or /128 announced for a pod address (given bare or with its prefix length)."""
    ip = parse_interface(address, "address").ip if "/" in address else parse_ip(address, "address")
    return str(ipaddress.ip_network(ip))
