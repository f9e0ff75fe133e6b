"""The pure planner: cluster state → desired node data plane (no kernel involved)."""

from __future__ import annotations

import pytest

from hybridlay.dataplane import ClusterState, NodeFacts, diff, plan
from hybridlay.dataplane.planner import SET_ALL, SET_NAT_OVERLAY, subnet_tables, vtep_mac
from hybridlay.dataplane.state import (
    BUM_MAC,
    SUBNET_TABLE_MAX,
    SUBNET_TABLE_MIN,
    FdbEntry,
    Neighbour,
    ProxyNeighbour,
    Route,
    Rule,
    VlanLink,
)
from hybridlay.devices import host_veth_name
from hybridlay.model import (
    AddressRange,
    Binding,
    InstanceAddress,
    IPInstance,
    Network,
    NetworkType,
    NodeInfo,
    Subnet,
    SubnetConfig,
    VTEPInfo,
)

OVERLAY = Network("overlay", type=NetworkType.OVERLAY, net_id=4)
UNDERLAY = Network("underlay", type=NetworkType.UNDERLAY, net_id=0, node_selector={"rack": "a"})
TAGGED = Network("tagged", type=NetworkType.UNDERLAY, net_id=100, node_selector={"rack": "a"})
OV4 = Subnet("ov4", "overlay", AddressRange("4", "10.244.0.0/16"))
OV6 = Subnet("ov6", "overlay", AddressRange("6", "fd00:10::/64"))
ROUTED = Subnet("routed", "overlay", AddressRange("4", "10.245.0.0/16"), config=SubnetConfig(auto_nat_outgoing=False))
UN4 = Subnet(
    "un4",
    "underlay",
    AddressRange("4", "192.168.3.0/24", gateway="192.168.3.1", start="192.168.3.100", end="192.168.3.200"),
)
TAG4 = Subnet("tag4", "tagged", AddressRange("4", "172.16.0.0/24", gateway="172.16.0.1"))
NODE = NodeFacts(
    "n1", vxlan_parent="eth0", vlan_parent="eth1", vtep_ip="10.1.0.11", parent_mtu=9000, labels={"rack": "a"}
)
INFOS = (
    NodeInfo("n1", VTEPInfo("10.1.0.11", vtep_mac("n1"))),
    NodeInfo("n2", VTEPInfo("10.1.0.12", "0e:00:00:00:00:02", ("10.1.0.12", "fd00:1::12"))),
    NodeInfo("n6", VTEPInfo("fd00:1::16", "0e:00:00:00:00:06")),
)


def instance(ip: str, subnet: Subnet, node: str, pod: str) -> IPInstance:
    version = "6" if ":" in ip else "4"
    address = InstanceAddress(version, f"{ip}/{subnet.range.cidr.split('/')[1]}")
    return IPInstance(
        ip, subnet.network, subnet.name, address, Binding(pod_name=pod, pod_namespace="ns", node_name=node)
    )


def cluster(*instances: IPInstance, subnets: tuple[Subnet, ...] = (OV4, OV6, ROUTED, UN4)) -> ClusterState:
    return ClusterState((OVERLAY, UNDERLAY, TAGGED), subnets, INFOS, instances)


def test_base_rules_in_both_families_after_local() -> None:
    rules = plan(NODE, cluster()).rules
    for family in (4, 6):
        assert Rule(family, 1000, 39999) in rules
        assert Rule(family, 1001, 40000) in rules
        assert Rule(family, 1002, 40001, fwmark=0x20, fwmask=0x20) in rules


def test_subnet_tables_are_stable_distinct_and_in_range() -> None:
    names = [f"subnet-{i}" for i in range(300)]
    tables = subnet_tables(names)
    assert len(set(tables.values())) == 300
    assert all(SUBNET_TABLE_MIN <= t <= SUBNET_TABLE_MAX for t in tables.values())
    assert subnet_tables(reversed(names)) == tables
    # Another subnet appearing does not renumber the others (barring a hash collision with it).
    with_one_more = subnet_tables([*names, "late-comer"])
    assert sum(with_one_more[n] != tables[n] for n in names) <= 1


def test_per_subnet_rules_underlay_only_on_member_nodes() -> None:
    member = plan(NODE, cluster())
    outsider = plan(NodeFacts("n3", "eth0", "eth1", "10.1.0.13"), cluster())
    sources = {(r.src, r.table) for r in member.rules if r.src}
    assert {src for src, _ in sources} == {"10.244.0.0/16", "fd00:10::/64", "10.245.0.0/16", "192.168.3.0/24"}
    assert all(Rule(4 if ":" not in s else 6, 1010, t, s, 0, 0x4040) in member.rules for s, t in sources)
    assert "192.168.3.0/24" not in {r.src for r in outsider.rules}
    assert member.subnet_tables["ov4"] == outsider.subnet_tables["ov4"]


def test_overlay_table_has_cidr_via_tunnel_and_throw_routes() -> None:
    gapped = Subnet(
        "gapped",
        "overlay",
        AddressRange("4", "192.168.9.0/24", gateway="192.168.9.1", start="192.168.9.100", end="192.168.9.200"),
    )
    routes = plan(NODE, cluster(subnets=(OV4, gapped))).routes
    assert Route(4, 40000, "10.244.0.0/16", dev="eth0.vxlan4") in routes
    assert Route(4, 40000, "192.168.9.0/24", dev="eth0.vxlan4") in routes
    throws = sorted(r.dst for r in routes if r.type == "throw")
    assert throws == sorted(
        ["192.168.9.0/26", "192.168.9.64/27", "192.168.9.96/30", "192.168.9.201/32", "192.168.9.202/31",
         "192.168.9.204/30", "192.168.9.208/28", "192.168.9.224/27"]
    )  # fmt: skip


def test_overlay_subnet_tables_send_only_underlay_cidrs_into_the_tunnel_nat_or_not() -> None:
    desired = plan(NODE, cluster())
    for name in ("ov4", "routed"):
        table = desired.subnet_tables[name]
        assert {r for r in desired.routes if r.table == table} == {Route(4, table, "192.168.3.0/24", dev="eth0.vxlan4")}
    sets = {s.name: s.members for s in desired.ipsets}
    assert sets[SET_NAT_OVERLAY] == {"10.244.0.0/16"}  # "routed" leaves unmasqueraded via the main table
    assert sets[SET_ALL] == {"10.244.0.0/16", "10.245.0.0/16", "192.168.3.0/24"}
    assert sets[SET_ALL + "6"] == {"fd00:10::/64"}


def test_vlan_subnet_untagged_uses_parent_and_gateway() -> None:
    desired = plan(NODE, cluster(instance("192.168.3.120", UN4, "n1", "web")))
    table = desired.subnet_tables["un4"]
    assert {r for r in desired.routes if r.table == table} == {
        Route(4, table, "192.168.3.0/24", dev="eth1", scope="link"),
        Route(4, table, "0.0.0.0/0", dev="eth1", gateway="192.168.3.1"),
    }
    assert not desired.vlan_links
    assert ProxyNeighbour("eth1", "192.168.3.120") in desired.proxy_neighbours
    assert {(a.dev, a.address) for a in desired.addresses} == {("eth1", "192.168.3.120/24")}


def test_vlan_subnet_tagged_plans_the_vlan_device() -> None:
    desired = plan(NODE, cluster(instance("172.16.0.9", TAG4, "n1", "db"), subnets=(TAG4,)))
    assert desired.vlan_links == {VlanLink("eth1.100", "eth1", 100)}
    table = desired.subnet_tables["tag4"]
    assert Route(4, table, "0.0.0.0/0", dev="eth1.100", gateway="172.16.0.1") in desired.routes
    assert ProxyNeighbour("eth1.100", "172.16.0.9") in desired.proxy_neighbours


def test_vxlan_device_and_one_fdb_entry_per_remote_vtep_of_the_same_family() -> None:
    desired = plan(NODE, cluster())
    (link,) = desired.vxlan_links
    assert (link.name, link.vni, link.parent, link.local, link.mtu, link.port, link.learning) == (
        "eth0.vxlan4",
        4,
        "eth0",
        "10.1.0.11",
        8950,
        8472,
        False,
    )
    assert link.mac == vtep_mac("n1") == NODE.vtep_mac
    assert desired.fdb == {
        FdbEntry("eth0.vxlan4", BUM_MAC, "10.1.0.12"),
        FdbEntry("eth0.vxlan4", "0e:00:00:00:00:02", "10.1.0.12"),
    }


def test_vxlan_over_ipv6_underlay() -> None:
    node = NodeFacts("n6", vxlan_parent="eth0", vlan_parent="eth0", vtep_ip="fd00:1::16")
    desired = plan(node, cluster())
    (link,) = desired.vxlan_links
    assert (link.local, link.mtu) == ("fd00:1::16", 1500 - 70)
    assert {e.dst for e in desired.fdb} == set()  # no other IPv6 VTEP in the cluster


def test_local_and_remote_pods_dual_stack() -> None:
    desired = plan(
        NODE,
        cluster(
            instance("10.244.0.5", OV4, "n1", "a"),
            instance("fd00:10::5", OV6, "n1", "a"),
            instance("10.244.0.6", OV4, "n2", "b"),
            instance("fd00:10::6", OV6, "n2", "b"),
            instance("10.244.0.7", OV4, "n9", "nowhere"),  # a node without NodeInfo
        ),
    )
    veth = host_veth_name("ns", "a")
    assert Route(4, 39999, "10.244.0.5/32", dev=veth, scope="link") in desired.routes
    assert Route(6, 39999, "fd00:10::5/128", dev=veth) in desired.routes
    assert ProxyNeighbour("eth0.vxlan4", "fd00:10::5") in desired.proxy_neighbours
    assert ProxyNeighbour(veth, "fe80::1") in desired.proxy_neighbours  # the pod's IPv6 gateway
    assert ProxyNeighbour(host_veth_name("ns", "b"), "fe80::1") not in desired.proxy_neighbours
    assert desired.neighbours == {
        Neighbour("eth0.vxlan4", "10.244.0.6", "0e:00:00:00:00:02"),
        Neighbour("eth0.vxlan4", "fd00:10::6", "0e:00:00:00:00:02"),
    }


def test_bad_objects_are_skipped_not_fatal() -> None:
    broken = Subnet("broken", "overlay", AddressRange("4", "10.300.0.0/16"))
    bad_ip = IPInstance("x", "overlay", "ov4", InstanceAddress("4", "not-an-ip"), Binding(node_name="n1"))
    desired = plan(NODE, cluster(bad_ip, subnets=(OV4, broken)))
    assert "broken" not in desired.subnet_tables
    with pytest.raises(ValueError, match="vtepIP"):
        plan(NodeFacts("n1", "eth0", "eth0", vtep_ip="nope"), cluster())


def test_plan_is_deterministic_and_diff_is_empty_against_itself() -> None:
    state = cluster(instance("10.244.0.5", OV4, "n1", "a"), instance("10.244.0.6", OV4, "n2", "b"))
    first, second = plan(NODE, state), plan(NODE, state)
    assert first == second
    assert diff(first.routes, second.routes).empty
    changed = diff(first.neighbours, {Neighbour("eth0.vxlan4", "10.244.0.6", "0e:00:00:00:00:99")})
    assert changed.change and not changed.add and not changed.remove
