"""The pure BGP planner (hybridlay.bgp) and the ExaBGP configuration rendered from it."""

from __future__ import annotations

import dataclasses

import pytest
from bgp_rack import SUBNET, TOR_ADDRESS, bgp_network, node_facts, pod_instance

from hybridlay.bgp import (
    Announcement,
    BGPNode,
    Change,
    changes,
    desired_announcements,
    host_prefix,
    speaker_config,
)
from hybridlay.errors import InvalidValue
from hybridlay.model import AddressRange, BGPPeer, Subnet
from hybridlay_agent.bgp_speaker import BGPSpeaker, SpeakerError, check_password, render_config

SPARE = BGPPeer(asn=65002, address="192.168.100.2", does_not_route_traffic=True, graceful_restart_seconds=120)


def test_speaker_config_takes_asn_router_id_and_session_addresses():
    network = bgp_network(peers=(BGPPeer(asn=65000, address=TOR_ADDRESS), SPARE))
    node = BGPNode(name="node1", interface="eth0", addresses=("10.9.9.9/24", "192.168.100.11/24"))
    config = speaker_config(network, node)
    assert config.local_asn == 65101
    assert config.router_id == "10.9.9.9"  # first IPv4 address unless the node says otherwise
    assert [(p.address, p.local_address) for p in config.peers] == [
        (TOR_ADDRESS, "192.168.100.11"),  # the address on the peer's subnet, not the first one
        ("192.168.100.2", "192.168.100.11"),
    ]
    assert [p.graceful_restart_seconds for p in config.peers] == [300, 120]
    assert [p.routes_traffic for p in config.peers] == [True, False]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bgp_peers": ()}, "spec.config.bgpPeers"),
        ({"bgp_peers": (BGPPeer(asn=0, address=TOR_ADDRESS),)}, "spec.config.bgpPeers[0].asn"),
        ({"bgp_peers": (BGPPeer(asn=65000, address="tor-1"),)}, "spec.config.bgpPeers[0].address"),
        ({"net_id": None}, "spec.netID"),
        (
            {"bgp_peers": (BGPPeer(asn=65000, address=TOR_ADDRESS), BGPPeer(asn=65002, address="192.168.100.2"))},
            "spec.config.bgpPeers[1].doesNotRouteTraffic",
        ),
    ],
)
def test_speaker_config_refuses_a_bad_network_naming_the_field(change, field):
    with pytest.raises(InvalidValue) as error:
        speaker_config(dataclasses.replace(bgp_network(), **change), node_facts("node1"))
    assert error.value.field == field


def test_speaker_config_needs_an_address_of_the_peer_family():
    network = bgp_network(peers=(BGPPeer(asn=65000, address="fd00:100::1"),))
    v4_only = BGPNode(name="node1", interface="eth0", addresses=("192.168.100.11/24", "fe80::1/64"))
    with pytest.raises(InvalidValue, match="no IPv6 address on eth0") as error:
        speaker_config(network, v4_only)  # a link-local address cannot carry the session
    assert error.value.field == "spec.config.bgpPeers[0].address"


def test_announcements_are_the_subnet_and_local_pods_with_no_export():
    network = bgp_network()
    config = speaker_config(network, node_facts("node1"))
    other_network_subnet = Subnet(name="vlan", network="vlan", range=AddressRange(version="4", cidr="10.5.0.0/24"))
    instances = [
        pod_instance("10.200.0.5", "node1", "a"),
        pod_instance("10.200.0.6", "node2", "b"),  # another node's pod
        dataclasses.replace(pod_instance("10.200.0.7", "node1", "c"), terminating=True),
        dataclasses.replace(pod_instance("10.5.0.9", "node1", "d"), subnet="vlan", network="vlan"),
    ]
    desired = desired_announcements(network, config, [SUBNET, other_network_subnet], instances, node_facts("node1"))
    assert desired == {
        Announcement(peer=TOR_ADDRESS, prefix="10.200.0.0/24", next_hop="192.168.100.11", no_export=False),
        Announcement(peer=TOR_ADDRESS, prefix="10.200.0.5/32", next_hop="192.168.100.11", no_export=True),
    }


def test_prefixes_go_only_to_peers_of_their_family():
    network = bgp_network(peers=(BGPPeer(asn=65000, address=TOR_ADDRESS), BGPPeer(
        asn=65000, address="fd00:100::1", does_not_route_traffic=True)))
    node = BGPNode(name="node1", interface="eth0", addresses=("192.168.100.11/24", "fd00:100::11/64"))
    v6 = Subnet(name="v6", network="bgp", range=AddressRange(version="6", cidr="fd00:200::/120"))
    config = speaker_config(network, node)
    desired = desired_announcements(network, config, [SUBNET, v6], [], node)
    assert {(a.peer, a.prefix, a.next_hop) for a in desired} == {
        (TOR_ADDRESS, "10.200.0.0/24", "192.168.100.11"),
        ("fd00:100::1", "fd00:200::/120", "fd00:100::11"),
    }


def test_changes_withdraw_first_and_replace_changed_routes_without_withdrawing():
    a = Announcement(TOR_ADDRESS, "10.200.0.5/32", "192.168.100.11", True)
    b = Announcement(TOR_ADDRESS, "10.200.0.6/32", "192.168.100.11", True)
    b_moved = dataclasses.replace(b, next_hop="192.168.100.12")
    c = Announcement(TOR_ADDRESS, "10.200.0.7/32", "192.168.100.11", True)
    assert changes(frozenset({b_moved, c}), frozenset({a, b})) == [
        Change("withdraw", a),
        Change("announce", b_moved),
        Change("announce", c),
    ]
    assert changes(frozenset({a}), frozenset({a})) == []


def test_host_prefix():
    assert host_prefix("10.200.0.5") == "10.200.0.5/32"
    assert host_prefix("10.200.0.5/24") == "10.200.0.5/32"
    assert host_prefix("fd00::5/64") == "fd00::5/128"


def test_rendered_config_carries_graceful_restart_md5_and_known_routes():
    network = bgp_network(peers=(BGPPeer(asn=65000, address=TOR_ADDRESS, graceful_restart_seconds=120),))
    config = speaker_config(network, node_facts("node1"))
    route = Announcement(TOR_ADDRESS, "10.200.0.5/32", "192.168.100.11", True)
    text = render_config(config, frozenset({route}), {TOR_ADDRESS: "abc123"}, ["/usr/bin/relay", "/run/x.sock"])
    assert "local-as 65101;" in text and "peer-as 65000;" in text
    assert "capability { graceful-restart 120; }" in text
    assert 'md5-password "abc123";' in text and "md5-base64 false;" in text
    assert "route 10.200.0.5/32 next-hop 192.168.100.11 community [no-export];" in text
    assert "run /usr/bin/relay /run/x.sock;" in text


@pytest.mark.parametrize("password", ['quo"te', "back\\slash", "semi;colon", "", "x" * 81, "new\nline"])
def test_unusable_passwords_are_refused_without_echoing_them(password):
    with pytest.raises(ValueError, match=r"password of BGP peer 192\.168\.100\.1") as error:
        check_password(TOR_ADDRESS, password)
    assert password not in str(error.value) or password == ""


async def test_start_refuses_a_password_for_an_unknown_peer_before_running_anything(tmp_path):
    config = speaker_config(bgp_network(), node_facts("node1"))
    speaker = BGPSpeaker(tmp_path / "speaker")
    with pytest.raises(ValueError, match=r"192\.0\.2\.9, which is not a configured BGP peer"):
        await speaker.start(config, passwords={"192.0.2.9": "x"})
    assert not (tmp_path / "speaker").exists()
    with pytest.raises(SpeakerError, match="not started"):
        await speaker.wait_established(0.1)
