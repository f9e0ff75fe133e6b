"""The pure planner: cluster state as the agent sees it → the node's desired data plane (reference §5).

Differences from Hybridnet, on purpose:

- Remote pods are resolved without flooding by static state: one permanent neighbour entry per
  remote pod address (→ its node's VTEP MAC) and one FDB entry per remote VTEP, computed from
  IPInstances and NodeInfos. Nothing is left to ARP across the tunnel.
- ``autoNatOutgoing: false`` really routes: an overlay subnet's own table only sends the cluster's
  underlay CIDRs into the tunnel, so traffic to anything outside the cluster falls through to the
  node's main table and leaves unmasqueraded (the MASQUERADE rule only matches the NAT subnets'
  set). Hybridnet instead routes such a subnet's traffic ``default dev <vxlan>`` and REJECTs it.
- Table numbers for subnets are derived from the subnet's name (hash into 10000-39998, probing
  upwards in name order), so they are the same on every node and across restarts.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hybridlay import devices, names
from hybridlay.addresses import IPNetwork, parse_cidr, parse_interface, parse_ip
from hybridlay.dataplane.state import (
    BUM_MAC,
    PRIORITY_LOCAL_PODS,
    PRIORITY_OVERLAY,
    PRIORITY_SUBNET,
    PRIORITY_TUNNEL_MARK,
    SUBNET_RULE_MASK,
    SUBNET_TABLE_MAX,
    SUBNET_TABLE_MIN,
    TABLE_LOCAL_PODS,
    TABLE_OVERLAY,
    TABLE_TUNNEL_MARK,
    TUNNEL_MARK,
    VXLAN_OVERHEAD,
    VXLAN_OVERHEAD_V6,
    Address,
    Chain,
    DesiredState,
    FdbEntry,
    IPSet,
    Neighbour,
    ProxyNeighbour,
    Route,
    Rule,
    Sysctl,
    VlanLink,
    VxlanLink,
)
from hybridlay.errors import InvalidValue
from hybridlay.model import IPInstance, Network, NetworkMode, NetworkType, NodeInfo, Subnet
from hybridlay.routes import throw_route_blocks

FAMILIES = (4, 6)

# ipset names (31 characters at most); IPv6 sets carry a "6" suffix.
SET_OVERLAY_NET = "HYBRIDLAY-OVERLAY-NET"
SET_NAT_OVERLAY = "HYBRIDLAY-NAT-OVERLAY"
SET_ALL = "HYBRIDLAY-ALL"
SET_NODE_IP = "HYBRIDLAY-NODE-IP"


def set_name(base: str, family: int) -> str:
    return base if family == 4 else base + "6"


@dataclass(frozen=True)
class NodeFacts:
    """What the agent knows about its own node (settings and what it read from the kernel)."""

    name: str
    vxlan_parent: str
    vlan_parent: str
    vtep_ip: str
    parent_mtu: int = 1500
    bgp_parent: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # The agent answers neighbour misses on the tunnel: the kernel asks it instead of broadcasting.
    answer_neighbour_misses: bool = True

    @property
    def vtep_mac(self) -> str:
        return vtep_mac(self.name)


@dataclass(frozen=True)
class ClusterState:
    networks: tuple[Network, ...] = ()
    subnets: tuple[Subnet, ...] = ()
    nodeinfos: tuple[NodeInfo, ...] = ()
    ipinstances: tuple[IPInstance, ...] = ()


def vtep_mac(node_name: str) -> str:
    """A stable, locally administered unicast MAC for the node's VXLAN devices (survives re-creation)."""
    digest = hashlib.sha1(node_name.encode(), usedforsecurity=False).digest()
    return ":".join(f"{b:02x}" for b in (0x0E, *digest[:5]))


def subnet_tables(subnet_names: Iterable[str]) -> dict[str, int]:
    """A table number in 10000-39998 for each subnet: its name's hash, probing upwards on collision."""
    span = SUBNET_TABLE_MAX - SUBNET_TABLE_MIN + 1
    taken: dict[int, str] = {}
    for name in sorted(set(subnet_names)):
        slot = int.from_bytes(hashlib.sha1(name.encode(), usedforsecurity=False).digest()[:4], "big") % span
        while SUBNET_TABLE_MIN + slot in taken:
            slot = (slot + 1) % span
        taken[SUBNET_TABLE_MIN + slot] = name
    return {name: table for table, name in taken.items()}


def instance_node(instance: IPInstance) -> str | None:
    return instance.binding.node_name or instance.status.node_name


def instance_pod(instance: IPInstance) -> tuple[str, str] | None:
    namespace = instance.binding.pod_namespace or instance.status.pod_namespace
    name = instance.binding.pod_name or instance.status.pod_name
    return (namespace, name) if namespace and name else None


def _default(family: int) -> str:
    return "0.0.0.0/0" if family == 4 else "::/0"


def _link_scope(family: int) -> str:
    """IPv6 routes have no scope: the kernel reports every one as universe."""
    return "link" if family == 4 else "universe"


def _host(ip: str) -> str:
    address = ipaddress.ip_address(ip)
    return f"{address}/{address.max_prefixlen}"


@dataclass
class _Plan:
    """Accumulates the desired objects; frozen into a DesiredState at the end."""

    rules: set[Rule] = field(default_factory=set)
    routes: set[Route] = field(default_factory=set)
    vxlan_links: set[VxlanLink] = field(default_factory=set)
    vlan_links: set[VlanLink] = field(default_factory=set)
    fdb: set[FdbEntry] = field(default_factory=set)
    neighbours: set[Neighbour] = field(default_factory=set)
    proxy_neighbours: set[ProxyNeighbour] = field(default_factory=set)
    addresses: set[Address] = field(default_factory=set)
    sysctls: set[Sysctl] = field(default_factory=set)
    chains: set[Chain] = field(default_factory=set)

    def device_sysctls(self, dev: str, **values: str) -> None:
        for name, value in values.items():
            family, key = name.split("_", 1)
            self.sysctls.add(Sysctl(f"net/{family}/conf/{dev}/{key}", value, device=dev))

    def neigh_sysctl(self, dev: str, family: str, key: str, value: str) -> None:
        self.sysctls.add(Sysctl(f"net/{family}/neigh/{dev}/{key}", value, device=dev))


@dataclass(frozen=True)
class _Subnet:
    """A subnet with its network and parsed CIDR."""

    subnet: Subnet
    network: Network
    cidr: IPNetwork

    @property
    def family(self) -> int:
        return self.cidr.version


def plan(node: NodeFacts, cluster: ClusterState) -> DesiredState:
    """The desired data plane of ``node``. Raises InvalidValue only for the node's own settings."""
    vtep = parse_ip(node.vtep_ip, "vtepIP")
    networks = {n.name: n for n in cluster.networks}
    subnets = _valid_subnets(cluster.subnets, networks)
    by_name = {s.subnet.name: s for s in subnets}
    infos = {i.name: i for i in cluster.nodeinfos}
    p = _Plan()

    # One tunnel device, of the first overlay network by name: like Hybridnet, one overlay network per
    # cluster (pods of another one would be routed through it too, but get no proxy entries).
    vxlans = {
        n.name: _vxlan_link(node, n.net_id, vtep)
        for n in sorted(networks.values(), key=lambda n: n.name)
        if n.type is NetworkType.OVERLAY and n.net_id is not None
    }
    vxlans = dict(list(vxlans.items())[:1])
    p.vxlan_links.update(vxlans.values())
    tunnel = next(iter(vxlans.values())).name if vxlans else None

    member_subnets = [s for s in subnets if _is_member(node, s.network)]
    tables = subnet_tables(s.subnet.name for s in member_subnets)
    underlay_cidrs = [s.cidr for s in subnets if s.network.type is not NetworkType.OVERLAY]

    for family in FAMILIES:
        p.rules.add(Rule(family, PRIORITY_LOCAL_PODS, TABLE_LOCAL_PODS))
        p.rules.add(Rule(family, PRIORITY_OVERLAY, TABLE_OVERLAY))
        p.rules.add(Rule(family, PRIORITY_TUNNEL_MARK, TABLE_TUNNEL_MARK, fwmark=TUNNEL_MARK, fwmask=TUNNEL_MARK))
        if tunnel:
            p.routes.add(Route(family, TABLE_TUNNEL_MARK, _default(family), dev=tunnel))
    p.sysctls.update(
        {
            Sysctl("net/ipv4/ip_forward", "1"),
            Sysctl("net/ipv6/conf/all/forwarding", "1"),
            Sysctl("net/ipv4/conf/all/rp_filter", "0"),
            Sysctl("net/ipv4/conf/default/rp_filter", "0"),
        }
    )

    for s in member_subnets:
        table = tables[s.subnet.name]
        p.rules.add(Rule(s.family, PRIORITY_SUBNET, table, src=str(s.cidr), fwmark=0, fwmask=SUBNET_RULE_MASK))
        _subnet_routes(p, s, node=node, table=table, tunnel=tunnel, underlay_cidrs=underlay_cidrs)
    for s in subnets:
        if s.network.type is NetworkType.OVERLAY and tunnel:
            p.routes.add(Route(s.family, TABLE_OVERLAY, str(s.cidr), dev=tunnel))
            for block in _throw_blocks(s.subnet):
                p.routes.add(Route(s.family, TABLE_OVERLAY, block, type="throw"))

    _pods(p, node=node, instances=cluster.ipinstances, subnets=by_name, infos=infos, tunnel=tunnel, vxlans=vxlans)
    if tunnel:
        _tunnel_peers(p, node, vtep, infos.values(), tunnel)
        p.device_sysctls(tunnel, ipv4_rp_filter="0", ipv6_proxy_ndp="1")
        if node.answer_neighbour_misses:
            for protocol in ("ipv4", "ipv6"):
                p.neigh_sysctl(tunnel, protocol, "app_solicit", "1")
                p.neigh_sysctl(tunnel, protocol, "mcast_solicit", "0")
        p.chains.update(_chains(tunnel))
    return DesiredState(
        rules=frozenset(p.rules),
        routes=frozenset(p.routes),
        vxlan_links=frozenset(p.vxlan_links),
        vlan_links=frozenset(p.vlan_links),
        fdb=frozenset(p.fdb),
        neighbours=frozenset(p.neighbours),
        proxy_neighbours=frozenset(p.proxy_neighbours),
        addresses=frozenset(p.addresses),
        sysctls=frozenset(p.sysctls),
        ipsets=frozenset(_ipsets(subnets, cluster.nodeinfos)) if tunnel else frozenset(),
        chains=frozenset(p.chains),
        subnet_tables=tables,
        owned_prefixes=frozenset(str(s.cidr) for s in subnets),
        vlan_devices=frozenset({node.vlan_parent, *(v.name for v in p.vlan_links)}),
    )


def _valid_subnets(subnets: Iterable[Subnet], networks: Mapping[str, Network]) -> list[_Subnet]:
    """Subnets of known networks with a valid CIDR; the operator's admission rejects the others, and
    one bad object must not stop the whole node."""
    valid = []
    for s in sorted(subnets, key=lambda s: s.name):
        if s.network not in networks:
            continue
        try:
            valid.append(_Subnet(s, networks[s.network], parse_cidr(s.range.cidr, "spec.range.cidr")))
        except InvalidValue:
            continue
    return valid


def _throw_blocks(subnet: Subnet) -> list[str]:
    try:
        return throw_route_blocks(subnet)
    except InvalidValue:
        return []


def _is_member(node: NodeFacts, network: Network) -> bool:
    return network.selects(node.labels) or node.name in network.status.node_list


def _vxlan_link(node: NodeFacts, vni: int, vtep: ipaddress.IPv4Address | ipaddress.IPv6Address) -> VxlanLink:
    return VxlanLink(
        name=devices.vxlan_interface_name(node.vxlan_parent, vni),
        vni=vni,
        parent=node.vxlan_parent,
        local=str(vtep),
        mtu=node.parent_mtu - (VXLAN_OVERHEAD if vtep.version == 4 else VXLAN_OVERHEAD_V6),
        mac=node.vtep_mac,
    )


def vlan_device(node: NodeFacts, s: Subnet, network: Network) -> str:
    net_id = s.net_id if s.net_id is not None else network.net_id
    return devices.vlan_interface_name(node.vlan_parent, net_id)


def _subnet_routes(
    p: _Plan, s: _Subnet, *, node: NodeFacts, table: int, tunnel: str | None, underlay_cidrs: list[IPNetwork]
) -> None:
    mode = s.network.effective_mode
    if s.network.type is NetworkType.OVERLAY:
        # Only the cluster's underlay pods go through the tunnel; everything else uses the main table.
        if tunnel:
            for cidr in underlay_cidrs:
                if cidr.version == s.family:
                    p.routes.add(Route(s.family, table, str(cidr), dev=tunnel))
        return
    if mode is NetworkMode.VLAN:
        dev = vlan_device(node, s.subnet, s.network)
        net_id = s.subnet.net_id if s.subnet.net_id is not None else s.network.net_id
        if net_id:
            p.vlan_links.add(VlanLink(dev, node.vlan_parent, net_id))
        p.routes.add(Route(s.family, table, str(s.cidr), dev=dev, scope=_link_scope(s.family)))
        if s.subnet.range.gateway:
            p.routes.add(Route(s.family, table, _default(s.family), dev=dev, gateway=s.subnet.range.gateway))
        p.device_sysctls(dev, ipv4_rp_filter="0", ipv6_proxy_ndp="1")
        # Proxy replies are otherwise delayed by up to 0.8 s for broadcast requests.
        p.neigh_sysctl(dev, "ipv4", "proxy_delay", "0")
        p.neigh_sysctl(dev, "ipv6", "proxy_delay", "0")
    elif mode is NetworkMode.BGP and node.bgp_parent:
        peer = next(
            (
                peer.address
                for peer in s.network.bgp_peers
                if not peer.does_not_route_traffic and ipaddress.ip_address(peer.address).version == s.family
            ),
            None,
        )
        if peer:
            p.routes.add(Route(s.family, table, _default(s.family), dev=node.bgp_parent, gateway=peer))


def _pods(
    p: _Plan,
    *,
    node: NodeFacts,
    instances: Iterable[IPInstance],
    subnets: Mapping[str, _Subnet],
    infos: Mapping[str, NodeInfo],
    tunnel: str | None,
    vxlans: Mapping[str, VxlanLink],
) -> None:
    enhanced: dict[str, tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, str]] = {}
    for instance in instances:
        s = subnets.get(instance.subnet)
        owner = instance_node(instance)
        if s is None or owner is None:
            continue
        try:
            address = parse_interface(instance.address.ip, f"IPInstance {instance.name} spec.address.ip")
        except InvalidValue:
            continue  # the operator validates IPInstances; a bad one must not stop the node
        ip = str(address.ip)
        if owner != node.name:
            info = infos.get(owner)
            if tunnel and info is not None and info.vtep is not None and info.vtep.mac:
                p.neighbours.add(Neighbour(tunnel, ip, info.vtep.mac.lower()))
            continue
        pod = instance_pod(instance)
        if pod is None:
            continue
        veth = devices.host_veth_name(*pod)
        p.routes.add(Route(address.version, TABLE_LOCAL_PODS, _host(ip), dev=veth, scope=_link_scope(address.version)))
        p.device_sysctls(veth, ipv4_rp_filter="0", ipv4_proxy_arp="1")
        if address.version == 6:
            # The pod's IPv6 default gateway, answered by the host veth. CNI ADD writes it first; owning
            # it here brings it back after the veth was set down (which drops every proxy entry on it).
            p.proxy_neighbours.add(ProxyNeighbour(veth, names.POD_GATEWAY_V6))
        if s.network.type is NetworkType.OVERLAY:
            vxlan = vxlans.get(s.network.name)
            if vxlan:
                p.proxy_neighbours.add(ProxyNeighbour(vxlan.name, ip))
        elif s.network.effective_mode is NetworkMode.VLAN and _is_member(node, s.network):
            dev = vlan_device(node, s.subnet, s.network)
            p.proxy_neighbours.add(ProxyNeighbour(dev, ip))
            # The enhanced address gives the node's ARP requests a sender in the subnet; NDP solicitations
            # are sent from link-local addresses, so IPv6 needs none.
            best = enhanced.get(s.subnet.name)
            if address.version == 4 and (best is None or int(address.ip) < int(best[0].ip)):
                enhanced[s.subnet.name] = (ipaddress.ip_interface(f"{ip}/{s.cidr.prefixlen}"), dev)
    for interface, dev in enhanced.values():
        p.addresses.add(Address(dev, str(interface)))


def _tunnel_peers(
    p: _Plan,
    node: NodeFacts,
    vtep: ipaddress.IPv4Address | ipaddress.IPv6Address,
    infos: Iterable[NodeInfo],
    tunnel: str,
) -> None:
    for info in infos:
        if info.name == node.name or info.vtep is None or not info.vtep.ip:
            continue
        try:
            remote = parse_ip(info.vtep.ip, f"NodeInfo {info.name} spec.vtepInfo.ip")
        except InvalidValue:
            continue
        if remote.version != vtep.version or remote == vtep:
            continue  # a VXLAN device tunnels over one underlay family
        p.fdb.add(FdbEntry(tunnel, BUM_MAC, str(remote)))
        if info.vtep.mac:
            p.fdb.add(FdbEntry(tunnel, info.vtep.mac.lower(), str(remote)))


def _ipsets(subnets: Iterable[_Subnet], infos: Iterable[NodeInfo]) -> list[IPSet]:
    members: dict[tuple[str, int], set[str]] = {
        (base, f): set() for base in (SET_OVERLAY_NET, SET_NAT_OVERLAY, SET_ALL, SET_NODE_IP) for f in FAMILIES
    }
    for s in subnets:
        members[(SET_ALL, s.family)].add(str(s.cidr))
        if s.network.type is NetworkType.OVERLAY:
            members[(SET_OVERLAY_NET, s.family)].add(str(s.cidr))
            if s.subnet.auto_nat_outgoing:
                members[(SET_NAT_OVERLAY, s.family)].add(str(s.cidr))
    for info in infos:
        if info.vtep is None:
            continue
        for value in (info.vtep.ip, *info.vtep.local_ips):
            try:
                address = ipaddress.ip_address(value.split("/")[0])
            except ValueError:
                continue
            members[(SET_NODE_IP, address.version)].add(str(address))
    return [
        IPSet(set_name(base, family), family, "hash:ip" if base == SET_NODE_IP else "hash:net", frozenset(values))
        for (base, family), values in members.items()
    ]


def _chains(tunnel: str) -> list[Chain]:
    """iptables rules, written exactly as iptables-save prints them so that a no-op resync compares equal."""
    chains = []
    for family in FAMILIES:
        nat, all_nets, node_ips = (set_name(b, family) for b in (SET_NAT_OVERLAY, SET_ALL, SET_NODE_IP))
        reject = "icmp-port-unreachable" if family == 4 else "icmp6-port-unreachable"
        mark = f"{TUNNEL_MARK:#x}/{TUNNEL_MARK:#x}"
        chains += [
            Chain(
                family,
                "nat",
                "HYBRIDLAY-POSTROUTING",
                "POSTROUTING",
                (f"! -o {tunnel} -m set --match-set {nat} src -m set ! --match-set {all_nets} dst -j MASQUERADE",),
            ),
            Chain(
                family,
                "filter",
                "HYBRIDLAY-FORWARD",
                "FORWARD",
                (
                    # Nothing but cluster addresses goes into the tunnel. The conntrack state comes
                    # first in both rules: a field test, where a set lookup is a hash probe per prefix
                    # length, and established traffic (nearly every packet) then skips the lookups.
                    f"-o {tunnel} -m conntrack ! --ctstate ESTABLISHED -m set ! --match-set {all_nets} dst"
                    f" -j REJECT --reject-with {reject}",
                    # Masqueraded overlay subnets are not reachable from outside the cluster.
                    f"-m conntrack --ctstate NEW -m set --match-set {nat} dst -m set ! --match-set {all_nets} src"
                    f" -m set ! --match-set {node_ips} src -j REJECT --reject-with {reject}",
                    # No ACCEPT here: the chain only refuses, so that network policies further down FORWARD
                    # still apply to pod traffic.
                ),
            ),
            Chain(
                family,
                "mangle",
                "HYBRIDLAY-PREROUTING",
                "PREROUTING",
                # A connection is marked once, by its first packet; addrtype costs a route lookup.
                (
                    f"-i {tunnel} -m conntrack --ctstate NEW -m addrtype --dst-type LOCAL"
                    f" -j CONNMARK --set-xmark {mark}",
                ),
            ),
            Chain(
                family,
                "mangle",
                "HYBRIDLAY-OUTPUT",
                "OUTPUT",
                (
                    f"-m connmark --mark {TUNNEL_MARK:#x}/{TUNNEL_MARK:#x}"
                    f" -j CONNMARK --restore-mark --nfmask {TUNNEL_MARK:#x} --ctmask {TUNNEL_MARK:#x}",
                ),
            ),
        ]
    return chains
