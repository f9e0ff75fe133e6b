"""The model converts to and from resource dicts in one place; bad types name their field."""

from __future__ import annotations

import pytest

from hybridlay import model
from hybridlay.errors import InvalidValue

NETWORK = {
    "apiVersion": "networking.hybridlay.io/v1",
    "kind": "Network",
    "metadata": {"name": "bgp-net"},
    "spec": {
        "type": "Underlay",
        "mode": "BGP",
        "netID": 65001,
        "nodeSelector": {"rack": "r1"},
        "config": {
            "bgpPeers": [
                {"asn": 65000, "address": "10.0.0.1", "gracefulRestartSeconds": 120,
                 "passwordSecretRef": {"name": "bgp", "key": "tor1"}},
                {"asn": 65000, "address": "10.0.0.2", "gracefulRestartSeconds": 300, "doesNotRouteTraffic": True},
            ]
        },
    },
}

SUBNET = {
    "apiVersion": "networking.hybridlay.io/v1",
    "kind": "Subnet",
    "metadata": {"name": "vlan100"},
    "spec": {
        "network": "underlay",
        "netID": 100,
        "range": {"version": "4", "cidr": "192.168.56.0/24", "gateway": "192.168.56.1",
                  "start": "192.168.56.10", "end": "192.168.56.200",
                  "reservedIPs": ["192.168.56.20"], "excludeIPs": ["192.168.56.30"]},
        "config": {"private": True},
    },
}

IPINSTANCE = {
    "apiVersion": "networking.hybridlay.io/v1",
    "kind": "IPInstance",
    "metadata": {"name": "192-168-56-10", "labels": {"networking.hybridlay.io/subnet": "vlan100"}},
    "spec": {
        "network": "underlay",
        "subnet": "vlan100",
        "address": {"version": "4", "ip": "192.168.56.10/24", "gateway": "192.168.56.1", "netID": 100,
                    "mac": "02:12:34:00:00:01"},
        "binding": {"podName": "web-0", "podNamespace": "shop", "podUID": "u1", "nodeName": "node1",
                    "referredObject": {"kind": "StatefulSet", "name": "web", "uid": "s1"},
                    "stateful": {"index": 0}},
    },
}

NODEINFO = {
    "apiVersion": "networking.hybridlay.io/v1",
    "kind": "NodeInfo",
    "metadata": {"name": "node1"},
    "spec": {"vtepInfo": {"ip": "10.1.0.11", "mac": "02:00:00:00:00:11", "localIPs": ["10.1.0.11"]}},
}


@pytest.mark.parametrize(
    ("resource", "parse", "render"),
    [
        (NETWORK, model.network_from_resource, model.network_to_resource),
        (SUBNET, model.subnet_from_resource, model.subnet_to_resource),
        (IPINSTANCE, model.ipinstance_from_resource, model.ipinstance_to_resource),
        (NODEINFO, model.nodeinfo_from_resource, model.nodeinfo_to_resource),
    ],
)
def test_round_trip_keeps_every_spec_field(resource, parse, render):
    assert render(parse(resource)) == resource


def test_defaults_follow_hybridnet():
    overlay = model.network_from_resource({"metadata": {"name": "o"}, "spec": {"type": "Overlay", "netID": 4}})
    underlay = model.network_from_resource({"metadata": {"name": "u"}, "spec": {}})
    assert overlay.effective_mode is model.NetworkMode.VXLAN
    assert underlay.type is model.NetworkType.UNDERLAY
    assert underlay.effective_mode is model.NetworkMode.VLAN
    subnet = model.subnet_from_resource(SUBNET)
    assert subnet.auto_nat_outgoing is True
    assert model.network_from_resource(NETWORK).bgp_peers[1].graceful_restart_seconds == 300


def test_selector_membership():
    net = model.network_from_resource(NETWORK)
    assert net.selects({"rack": "r1", "zone": "a"})
    assert not net.selects({"rack": "r2"})
    assert not model.Network(name="empty").selects({"rack": "r1"})
    assert model.Network(name="o", type=model.NetworkType.OVERLAY).selects({})


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        ({"metadata": {"name": "n"}, "spec": {"netID": "100"}}, "spec.netID"),
        ({"metadata": {"name": "n"}, "spec": {"netID": True}}, "spec.netID"),
        ({"metadata": {"name": "n"}, "spec": {"type": "Bridge"}}, "spec.type"),
        ({"metadata": {"name": "n"}, "spec": {"nodeSelector": {"rack": 1}}}, "spec.nodeSelector.rack"),
        ({"metadata": {"name": "n"}, "spec": {"config": {"bgpPeers": [{"asn": "x"}]}}}, "spec.config.bgpPeers[0].asn"),
        ({"metadata": {}, "spec": {}}, "metadata.name"),
    ],
)
def test_wrong_types_name_the_field(resource, field):
    with pytest.raises(InvalidValue) as caught:
        model.network_from_resource(resource)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_subnet_list_entries_must_be_strings():
    bad = {"metadata": {"name": "s"}, "spec": {"range": {"excludeIPs": ["10.0.0.1", 7]}}}
    with pytest.raises(InvalidValue, match=r"spec.range.excludeIPs\[1\] 7"):
        model.subnet_from_resource(bad)


def test_terminating_and_owner():
    obj = dict(IPINSTANCE, metadata=dict(IPINSTANCE["metadata"], deletionTimestamp="2026-01-01T00:00:00Z"))
    instance = model.ipinstance_from_resource(obj)
    assert instance.terminating
    assert instance.owner_key == "shop/web-0"
