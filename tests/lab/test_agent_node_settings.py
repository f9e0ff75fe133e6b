"""The agent's settings from its Node's annotations (install_mode kubernetes: the DaemonSet's env is
the same on every node; the install role annotates each Node with the inventory's interfaces)."""

from __future__ import annotations

import pytest

from hybridlay_agent.settings import Settings, with_node_annotations

DAEMONSET = Settings(node_name="node1", vxlan_parent="eth0", vlan_parent="eth0", bgp_parent="eth0")


def test_annotations_override_the_daemonsets_settings():
    settings, changes = with_node_annotations(DAEMONSET, {
        "networking.hybridlay.io/vxlan-parent": "eth1",
        "networking.hybridlay.io/vlan-parent": "eth2",
        "networking.hybridlay.io/bgp-parent": "eth1",
        "other/annotation": "x",
    })  # fmt: skip
    assert (settings.vxlan_parent, settings.vlan_parent, settings.bgp_parent) == ("eth1", "eth2", "eth1")
    assert changes == {"vxlan_parent": "eth1", "vlan_parent": "eth2", "bgp_parent": "eth1"}


def test_vlan_parent_follows_an_annotated_vxlan_parent_when_it_followed_before():
    settings, _ = with_node_annotations(DAEMONSET, {"networking.hybridlay.io/vxlan-parent": "bond0"})
    assert settings.vlan_parent == "bond0" and settings.bgp_parent == "eth0"


def test_no_annotations_change_nothing():
    assert with_node_annotations(DAEMONSET, {}) == (DAEMONSET, {})


def test_a_malformed_interface_name_is_refused_naming_the_annotation():
    with pytest.raises(ValueError, match=r"networking\.hybridlay\.io/vlan-parent"):
        with_node_annotations(DAEMONSET, {"networking.hybridlay.io/vlan-parent": "much-too-long-interface"})
