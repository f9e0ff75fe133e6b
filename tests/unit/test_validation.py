"""Admission rules for Network and Subnet (reference §4).

Every invalid case is a valid object with one change, and must produce exactly one violation naming
the field and showing the offending value; the unchanged objects must be accepted.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridlay.model import (
    AddressRange,
    BGPPeer,
    InstanceAddress,
    IPInstance,
    Network,
    NetworkMode,
    NetworkType,
    Subnet,
    SubnetConfig,
)
from hybridlay.validation import (
    MAX_SUBNET_CAPACITY,
    Violation,
    validate_network_create,
    validate_network_delete,
    validate_network_update,
    validate_resource,
    validate_subnet_create,
    validate_subnet_delete,
    validate_subnet_update,
)

UNDERLAY = Network("underlay-a", NetworkType.UNDERLAY, net_id=100, node_selector={"rack": "r1"})
UNDERLAY_NO_ID = Network("underlay-c", NetworkType.UNDERLAY, node_selector={"rack": "r4"})
OVERLAY = Network("overlay", NetworkType.OVERLAY, net_id=4)
PEERS = (
    BGPPeer(asn=65000, address="10.0.0.1"),
    BGPPeer(asn=65000, address="10.0.0.2", does_not_route_traffic=True),
)
BGP = Network("bgp", NetworkType.UNDERLAY, NetworkMode.BGP, net_id=65001, node_selector={"rack": "r2"}, bgp_peers=PEERS)
NETWORKS = [UNDERLAY, UNDERLAY_NO_ID, OVERLAY, BGP]
NETWORKS_BY_NAME = {n.name: n for n in NETWORKS}
NODES = {"n1": {"rack": "r1"}, "n2": {"rack": "r2"}, "n3": {"rack": "r3"}, "n4": {"rack": "r4"}}

# Candidates for creation, valid against NETWORKS.
NEW_UNDERLAY = Network("underlay-b", NetworkType.UNDERLAY, net_id=200, node_selector={"rack": "r3"})
NEW_OVERLAY = Network("overlay-b", NetworkType.OVERLAY, net_id=7)
NEW_BGP = replace(BGP, name="bgp-b", node_selector={"rack": "r3"})

VLAN_SUBNET = Subnet(
    "vlan100",
    "underlay-a",
    AddressRange(
        version="4",
        cidr="192.168.56.0/24",
        gateway="192.168.56.1",
        start="192.168.56.10",
        end="192.168.56.200",
        reserved_ips=("192.168.56.20",),
        exclude_ips=("192.168.56.30",),
    ),
    net_id=100,
)
OVERLAY_SUBNET = Subnet("ov4", "overlay", AddressRange(version="4", cidr="100.10.0.0/24"))
OVERLAY_SUBNET_V6 = Subnet("ov6", "overlay", AddressRange(version="6", cidr="fd00:10::/120"))
BGP_SUBNET = Subnet("bgp4", "bgp", AddressRange(version="4", cidr="172.16.0.0/24"))
SUBNETS = [VLAN_SUBNET, OVERLAY_SUBNET, OVERLAY_SUBNET_V6, BGP_SUBNET]


def with_range(subnet: Subnet, **changes: Any) -> Subnet:
    return replace(subnet, range=replace(subnet.range, **changes))


def assert_one(violations: list[Violation], field: str, shown: str) -> None:
    """Exactly one violation, on ``field``, whose text shows ``shown`` (the offending value or a fact)."""
    assert len(violations) == 1, [str(v) for v in violations]
    assert violations[0].field == field
    assert str(violations[0]).startswith(field)
    assert shown in str(violations[0])


# --- Network create ----------------------------------------------------------------------------


@pytest.mark.parametrize("network", [NEW_UNDERLAY, NEW_OVERLAY, NEW_BGP])
def test_valid_networks_are_accepted(network: Network) -> None:
    existing = NETWORKS if network.type is not NetworkType.OVERLAY else [UNDERLAY, BGP]
    assert validate_network_create(network, existing, NODES) == []


@pytest.mark.parametrize(
    ("network", "field", "shown"),
    [
        (replace(NEW_UNDERLAY, node_selector={}), "spec.nodeSelector", "is required for an Underlay network"),
        (replace(NEW_UNDERLAY, node_selector={"rack": "r1"}), "spec.nodeSelector", "rack=r1"),
        (replace(NEW_UNDERLAY, mode=NetworkMode.VXLAN), "spec.mode", "VXLAN"),
        (replace(NEW_UNDERLAY, net_id=4095), "spec.netID", "4095"),
        (replace(NEW_UNDERLAY, net_id=-1), "spec.netID", "-1"),
        (replace(NEW_UNDERLAY, bgp_peers=PEERS), "spec.config.bgpPeers", "10.0.0.1"),
        (replace(NEW_OVERLAY, name="overlay-2"), "spec.type", "Overlay"),
        (replace(NEW_BGP, net_id=None), "spec.netID", "is required for a BGP network"),
        (replace(NEW_BGP, net_id=0), "spec.netID", "0"),
        (replace(NEW_BGP, net_id=1 << 32), "spec.netID", "4294967296"),
        (replace(NEW_BGP, bgp_peers=()), "spec.config.bgpPeers", "at least one peer"),
        (replace(NEW_BGP, bgp_peers=(replace(PEERS[0], asn=0), PEERS[1])), "spec.config.bgpPeers[0].asn", "0"),
        (
            replace(NEW_BGP, bgp_peers=(PEERS[0], replace(PEERS[1], asn=1 << 32))),
            "spec.config.bgpPeers[1].asn",
            "4294967296",
        ),
        (
            replace(NEW_BGP, bgp_peers=(replace(PEERS[0], address="10.0.0.300"), PEERS[1])),
            "spec.config.bgpPeers[0].address",
            "10.0.0.300",
        ),
        (
            replace(NEW_BGP, bgp_peers=(PEERS[0], replace(PEERS[1], address="10.0.0.1"))),
            "spec.config.bgpPeers[1].address",
            "10.0.0.1",
        ),
        (
            replace(NEW_BGP, bgp_peers=(PEERS[0], replace(PEERS[1], does_not_route_traffic=False))),
            "spec.config.bgpPeers[1].doesNotRouteTraffic",
            "false",
        ),
        (
            replace(NEW_BGP, bgp_peers=(replace(PEERS[0], graceful_restart_seconds=5000), PEERS[1])),
            "spec.config.bgpPeers[0].gracefulRestartSeconds",
            "5000",
        ),
        (Network("gbgp", NetworkType.GLOBAL_BGP, net_id=65009), "spec.netID", "65009"),
    ],
)
def test_invalid_network_create(network: Network, field: str, shown: str) -> None:
    assert_one(validate_network_create(network, NETWORKS, NODES), field, shown)


@pytest.mark.parametrize(
    ("network", "field", "shown"),
    [
        (replace(NEW_OVERLAY, node_selector={"rack": "r1"}), "spec.nodeSelector", "rack=r1"),
        (replace(NEW_OVERLAY, net_id=None), "spec.netID", "is required for an Overlay network"),
        (replace(NEW_OVERLAY, net_id=1 << 24), "spec.netID", "16777216"),
        (replace(NEW_OVERLAY, mode=NetworkMode.VLAN), "spec.mode", "VLAN"),
        (replace(NEW_OVERLAY, mode=NetworkMode.BGP), "spec.mode", "BGP"),
    ],
)
def test_invalid_overlay_create(network: Network, field: str, shown: str) -> None:
    """Against networks holding no overlay yet, so only the changed rule can fail."""
    assert_one(validate_network_create(network, [UNDERLAY, BGP], NODES), field, shown)


def test_node_already_in_another_underlay_names_node_and_network() -> None:
    violations = validate_network_create(replace(NEW_UNDERLAY, node_selector={"rack": "r2"}), NETWORKS, NODES)
    assert [str(v) for v in violations] == [
        "spec.nodeSelector {rack=r2} selects node(s) n2 already in underlay network bgp"
    ]


def test_all_violations_are_reported_not_only_the_first() -> None:
    network = replace(NEW_BGP, net_id=None, bgp_peers=(BGPPeer(asn=0, address="nope"),))
    fields = {v.field for v in validate_network_create(network, NETWORKS, NODES)}
    assert fields == {"spec.netID", "spec.config.bgpPeers[0].address", "spec.config.bgpPeers[0].asn"}


# --- Network update and delete -----------------------------------------------------------------


@pytest.mark.parametrize(
    "new",
    [
        UNDERLAY,
        replace(UNDERLAY, mode=NetworkMode.VLAN),  # the default made explicit is no change
        replace(UNDERLAY, node_selector={"rack": "r1", "zone": "a"}),
        replace(UNDERLAY, node_selector={"rack": "r3"}),
    ],
)
def test_valid_network_update_with_itself_among_existing(new: Network) -> None:
    assert validate_network_update(UNDERLAY, new, NETWORKS, NODES) == []


def test_overlay_update_does_not_conflict_with_itself() -> None:
    assert validate_network_update(OVERLAY, OVERLAY, NETWORKS, NODES) == []


@pytest.mark.parametrize(
    ("old", "new", "field", "shown"),
    [
        (UNDERLAY, replace(UNDERLAY, net_id=101), "spec.netID", "101 must not change (was 100)"),
        (UNDERLAY, replace(UNDERLAY, mode=NetworkMode.BGP, bgp_peers=PEERS), "spec.mode", "BGP must not change"),
        (OVERLAY, replace(OVERLAY, net_id=5), "spec.netID", "5 must not change (was 4)"),
        (UNDERLAY, replace(UNDERLAY, node_selector={"rack": "r2"}), "spec.nodeSelector", "rack=r2"),
        (BGP, replace(BGP, bgp_peers=()), "spec.config.bgpPeers", "at least one peer"),
    ],
)
def test_invalid_network_update(old: Network, new: Network, field: str, shown: str) -> None:
    assert_one(validate_network_update(old, new, NETWORKS, NODES), field, shown)


def test_network_type_change_is_refused() -> None:
    new = Network("underlay-a", NetworkType.OVERLAY, net_id=100)
    violations = validate_network_update(UNDERLAY, new, [UNDERLAY], NODES)
    assert "spec.type Overlay must not change (was Underlay)" in [str(v) for v in violations]


def test_network_delete_refused_while_subnets_reference_it() -> None:
    assert validate_network_delete(OVERLAY, [VLAN_SUBNET, BGP_SUBNET]) == []
    assert_one(
        validate_network_delete(OVERLAY, SUBNETS), "metadata.name", "overlay is still used by 2 subnet(s): ov4, ov6"
    )


def test_network_delete_lists_a_few_children_and_counts_the_rest() -> None:
    many = [replace(OVERLAY_SUBNET, name=f"s{i:02}") for i in range(8)]
    assert_one(
        validate_network_delete(OVERLAY, many), "metadata.name", "8 subnet(s): s00, s01, s02, s03, s04 and 3 more"
    )


# --- Subnet create -----------------------------------------------------------------------------


def test_issue_message_example() -> None:
    subnet = Subnet("s", "underlay-a", AddressRange(version="4", cidr="192.168.0.0/24", gateway="10.1.0.1"))
    violations = validate_subnet_create(subnet, NETWORKS_BY_NAME, SUBNETS)
    assert [str(v) for v in violations] == ["spec.range.gateway 10.1.0.1 is outside spec.range.cidr 192.168.0.0/24"]


@pytest.mark.parametrize(
    "subnet",
    [
        VLAN_SUBNET,
        replace(VLAN_SUBNET, net_id=None),  # inherited from the network
        replace(VLAN_SUBNET, network="underlay-c", net_id=0),  # untagged
        replace(VLAN_SUBNET, network="underlay-c", net_id=5),
        OVERLAY_SUBNET,
        replace(OVERLAY_SUBNET, config=SubnetConfig(auto_nat_outgoing=False, private=True)),
        OVERLAY_SUBNET_V6,
        with_range(OVERLAY_SUBNET, cidr="10.0.0.0/16"),  # 65534 addresses
        with_range(OVERLAY_SUBNET_V6, cidr="fd00:20::/64", start="fd00:20::1", end="fd00:20::1:0"),  # 65536
        with_range(OVERLAY_SUBNET, cidr="100.20.0.0/30"),
        with_range(OVERLAY_SUBNET_V6, cidr="fd00:20::/126"),
        BGP_SUBNET,
        # One CIDR shared by two subnets of one network, with disjoint ranges.
        replace(with_range(VLAN_SUBNET, start="192.168.56.201", end="192.168.56.250"), name="vlan100-b"),
    ],
)
def test_valid_subnets_are_accepted(subnet: Subnet) -> None:
    assert validate_subnet_create(subnet, NETWORKS_BY_NAME, SUBNETS) == []


@pytest.mark.parametrize(
    ("subnet", "field", "shown"),
    [
        (replace(VLAN_SUBNET, network=""), "spec.network", "is required"),
        (replace(VLAN_SUBNET, network="nope"), "spec.network", "nope does not exist"),
        (replace(VLAN_SUBNET, net_id=200), "spec.netID", "200 differs from network underlay-a's netID 100"),
        (replace(VLAN_SUBNET, network="underlay-c", net_id=None), "spec.netID", "is required"),
        (replace(VLAN_SUBNET, network="underlay-c", net_id=5000), "spec.netID", "5000"),
        (with_range(VLAN_SUBNET, gateway=None), "spec.range.gateway", "is required in a VLAN network"),
        (replace(VLAN_SUBNET, config=SubnetConfig(auto_nat_outgoing=False)), "spec.config.autoNatOutgoing", "false"),
        (replace(BGP_SUBNET, config=SubnetConfig(auto_nat_outgoing=True)), "spec.config.autoNatOutgoing", "true"),
        (replace(OVERLAY_SUBNET, net_id=4), "spec.netID", "4 must be unset"),
        (replace(BGP_SUBNET, net_id=65001), "spec.netID", "65001"),
        (with_range(VLAN_SUBNET, version="5"), "spec.range.version", "5"),
        (with_range(VLAN_SUBNET, version=""), "spec.range.version", 'must be "4" or "6"'),
        (with_range(VLAN_SUBNET, version="6"), "spec.range.cidr", "192.168.56.0/24 is not an IPv6 CIDR"),
        (with_range(VLAN_SUBNET, cidr="192.168.56.1/24"), "spec.range.cidr", "192.168.56.1/24"),
        (with_range(VLAN_SUBNET, cidr="192.168.56.0/33"), "spec.range.cidr", "192.168.56.0/33"),
        (with_range(VLAN_SUBNET, cidr="192.168.56.0/31"), "spec.range.cidr", "192.168.56.0/31"),
        (with_range(OVERLAY_SUBNET_V6, cidr="fd00:10::/128"), "spec.range.cidr", "fd00:10::/128"),
        (with_range(OVERLAY_SUBNET_V6, cidr="fd00:10::/127"), "spec.range.cidr", "fd00:10::/127"),
        (with_range(VLAN_SUBNET, start="192.168.57.10"), "spec.range.start", "192.168.57.10"),
        (with_range(VLAN_SUBNET, end="fd00::1"), "spec.range.end", "fd00::1 is not an IPv4 address"),
        (with_range(VLAN_SUBNET, start="192.168.56.201"), "spec.range.start", "192.168.56.201 is after"),
        (with_range(VLAN_SUBNET, end="192.168.56.255"), "spec.range.end", "192.168.56.255 is the broadcast"),
        (with_range(VLAN_SUBNET, gateway="192.168.56.0"), "spec.range.gateway", "192.168.56.0 is the network"),
        (with_range(VLAN_SUBNET, gateway="gw"), "spec.range.gateway", "gw is not a valid IP address"),
        (with_range(VLAN_SUBNET, reserved_ips=("192.168.56.300",)), "spec.range.reservedIPs[0]", "192.168.56.300"),
        (with_range(VLAN_SUBNET, exclude_ips=("192.168.56.30", "10.0.0.1")), "spec.range.excludeIPs[1]", "10.0.0.1"),
        (with_range(OVERLAY_SUBNET, cidr="10.0.0.0/15"), "spec.range", "10.0.0.1-10.1.255.254 holds 131070"),
        (with_range(OVERLAY_SUBNET_V6, cidr="fd00:20::/64"), "spec.range", "fd00:20::1-fd00:20::ffff:ffff:ffff:ffff"),
        (with_range(OVERLAY_SUBNET, cidr="192.168.56.0/25"), "spec.range.cidr", "overlaps subnet vlan100"),
        (with_range(OVERLAY_SUBNET, cidr="192.168.56.0/24"), "spec.range.cidr", "of network underlay-a"),
        (
            replace(with_range(VLAN_SUBNET, start="192.168.56.150", end="192.168.56.250"), name="vlan100-b"),
            "spec.range",
            "192.168.56.150-192.168.56.250 overlaps the range 192.168.56.10-192.168.56.200 of subnet vlan100",
        ),
        (
            replace(OVERLAY_SUBNET_V6, name="ov6-b"),
            "spec.range",
            "overlaps the range fd00:10::1-fd00:10::ff of subnet ov6",
        ),
    ],
)
def test_invalid_subnet_create(subnet: Subnet, field: str, shown: str) -> None:
    assert_one(validate_subnet_create(subnet, NETWORKS_BY_NAME, SUBNETS), field, shown)


def test_subnet_every_bad_address_is_reported() -> None:
    subnet = with_range(VLAN_SUBNET, start="x", end="192.168.99.1", reserved_ips=("fd00::1",))
    fields = [v.field for v in validate_subnet_create(subnet, NETWORKS_BY_NAME, SUBNETS)]
    assert fields == ["spec.range.start", "spec.range.end", "spec.range.reservedIPs[0]"]


@given(prefix=st.integers(16, 30), data=st.data())
def test_any_start_end_inside_the_hosts_is_accepted_and_one_past_is_not(prefix: int, data: st.DataObject) -> None:
    """Bounds: the first and last host are allowed; the network and broadcast addresses, or start > end, are not."""
    network = ipaddress.IPv4Network(f"10.0.0.0/{prefix}")
    first, last = int(network.network_address) + 1, int(network.broadcast_address) - 1
    start = data.draw(st.integers(first, min(last, first + MAX_SUBNET_CAPACITY - 1)))
    end = data.draw(st.integers(start, min(last, start + MAX_SUBNET_CAPACITY - 1)))
    base = with_range(OVERLAY_SUBNET, cidr=str(network), start=str(ipaddress.IPv4Address(start)))
    subnet = with_range(base, end=str(ipaddress.IPv4Address(end)))
    assert validate_subnet_create(subnet, NETWORKS_BY_NAME, []) == []
    before = str(network.network_address)
    assert_one(
        validate_subnet_create(with_range(subnet, start=before), NETWORKS_BY_NAME, []), "spec.range.start", before
    )
    after = str(network.broadcast_address)
    assert_one(validate_subnet_create(with_range(subnet, end=after), NETWORKS_BY_NAME, []), "spec.range.end", after)
    if start < end:
        swapped = with_range(subnet, start=subnet.range.end, end=subnet.range.start)
        assert_one(validate_subnet_create(swapped, NETWORKS_BY_NAME, []), "spec.range.start", "is after spec.range.end")


# --- Subnet update and delete ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (VLAN_SUBNET, with_range(VLAN_SUBNET, reserved_ips=("192.168.56.20", "192.168.56.21"))),
        (VLAN_SUBNET, replace(VLAN_SUBNET, config=SubnetConfig(private=True))),
        (OVERLAY_SUBNET, replace(OVERLAY_SUBNET, config=SubnetConfig(auto_nat_outgoing=False))),
    ],
)
def test_valid_subnet_update(old: Subnet, new: Subnet) -> None:
    assert validate_subnet_update(old, new, NETWORKS_BY_NAME) == []


@pytest.mark.parametrize(
    ("new", "field", "shown"),
    [
        (replace(VLAN_SUBNET, network="underlay-c"), "spec.network", "underlay-c must not change (was underlay-a)"),
        (replace(VLAN_SUBNET, net_id=None), "spec.netID", "must not change (was 100)"),
        (with_range(VLAN_SUBNET, cidr="192.168.56.0/23"), "spec.range.cidr", "192.168.56.0/23 must not change"),
        (with_range(VLAN_SUBNET, start="192.168.56.11"), "spec.range.start", "192.168.56.11 must not change"),
        (with_range(VLAN_SUBNET, end="192.168.56.100"), "spec.range.end", "192.168.56.100 must not change"),
        (with_range(VLAN_SUBNET, gateway="192.168.56.254"), "spec.range.gateway", "192.168.56.254 must not change"),
        (with_range(VLAN_SUBNET, exclude_ips=()), "spec.range.excludeIPs", "(was [192.168.56.30])"),
        (
            with_range(VLAN_SUBNET, reserved_ips=("192.168.56.20", "192.168.60.1")),
            "spec.range.reservedIPs[1]",
            "192.168.60.1 is outside",
        ),
        (replace(VLAN_SUBNET, config=SubnetConfig(auto_nat_outgoing=True)), "spec.config.autoNatOutgoing", "true"),
    ],
)
def test_invalid_subnet_update(new: Subnet, field: str, shown: str) -> None:
    assert_one(validate_subnet_update(VLAN_SUBNET, new, NETWORKS_BY_NAME), field, shown)


def instance(name: str, subnet: str) -> IPInstance:
    address = name.replace("-", ".")
    return IPInstance(name, "underlay-a", subnet, InstanceAddress(version="4", ip=f"{address}/24"))


def test_subnet_delete_refused_while_addresses_are_in_use() -> None:
    others = [instance("100-10-0-5", "ov4")]
    assert validate_subnet_delete(VLAN_SUBNET, others) == []
    using = [*others, instance("192-168-56-11", "vlan100"), instance("192-168-56-10", "vlan100")]
    assert_one(
        validate_subnet_delete(VLAN_SUBNET, using),
        "metadata.name",
        "vlan100 is still used by 2 IPInstance(s): 192-168-56-10, 192-168-56-11",
    )


# --- Resource conversion -----------------------------------------------------------------------


def test_validate_resource_turns_type_errors_into_violations() -> None:
    good = {"metadata": {"name": "overlay"}, "spec": {"type": "Overlay", "netID": 4}}
    assert validate_resource("Network", good) == (OVERLAY, [])
    obj, violations = validate_resource("Network", {"metadata": {"name": "x"}, "spec": {"netID": "100"}})
    assert obj is None
    assert_one(violations, "spec.netID", "100 must be of type integer")
    _, violations = validate_resource("Pod", good)
    assert_one(violations, "kind", "Pod")
