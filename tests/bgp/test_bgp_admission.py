"""BGP admission rules (reference §4) as the core validation applies them, from resources as users write them."""

from __future__ import annotations

import pytest

from hybridlay.model import network_from_resource, subnet_from_resource
from hybridlay.validation import validate_network_create, validate_subnet_create

NODES = {"node1": {"rack": "r1"}, "node2": {"rack": "r1"}}


def bgp_network_resource(peers: list[dict[str, object]]) -> dict[str, object]:
    return {
        "apiVersion": "networking.hybridlay.io/v1",
        "kind": "Network",
        "metadata": {"name": "bgp"},
        "spec": {"type": "Underlay", "mode": "BGP", "netID": 65101, "nodeSelector": {"rack": "r1"},
                 "config": {"bgpPeers": peers}},
    }


def network_violations(peers: list[dict[str, object]]) -> list[tuple[str, object]]:
    network = network_from_resource(bgp_network_resource(peers))
    return [(v.field, v.value) for v in validate_network_create(network, [], NODES)]


def test_a_good_bgp_network_is_admitted():
    assert network_violations([{"asn": 65000, "address": "192.168.100.1"}]) == []


@pytest.mark.parametrize(
    ("peers", "field", "value"),
    [
        ([], "spec.config.bgpPeers", None),
        ([{"asn": 0, "address": "192.168.100.1"}], "spec.config.bgpPeers[0].asn", 0),
        ([{"asn": 65000, "address": "tor-1.example"}], "spec.config.bgpPeers[0].address", "tor-1.example"),
        (
            [{"asn": 65000, "address": "192.168.100.1"}, {"asn": 65000, "address": "192.168.100.2"}],
            "spec.config.bgpPeers[1].doesNotRouteTraffic",
            False,
        ),
    ],
    ids=["no-peers", "asn-0", "address-not-ip", "two-routing-peers"],
)
def test_bad_bgp_networks_are_rejected_naming_the_field(peers, field, value):
    assert (field, value) in network_violations(peers)


def test_a_bgp_subnet_with_net_id_is_rejected_naming_the_field():
    network = network_from_resource(bgp_network_resource([{"asn": 65000, "address": "192.168.100.1"}]))
    spec = {"network": "bgp", "range": {"version": "4", "cidr": "10.200.0.0/24"}}
    subnet = subnet_from_resource({"metadata": {"name": "bgp-sub"}, "spec": {**spec, "netID": 7}})
    violations = validate_subnet_create(subnet, {"bgp": network}, [])
    assert [(v.field, v.value) for v in violations] == [("spec.netID", 7)]
    assert "spec.netID 7" in str(violations[0])
    without_net_id = subnet_from_resource({"metadata": {"name": "bgp-sub"}, "spec": spec})
    assert validate_subnet_create(without_net_id, {"bgp": network}, []) == []
