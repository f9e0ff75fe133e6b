"""The network plan check: schema, the webhooks' rules (hybridlay.validation), inventory-only rules.

The plan is the example inventory's (inventories/example), changed one way per test; every error
must name its inventory path.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.hybridlay.fabric.plugins.plugin_utils import plan

from hybridlay import model, validation

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example"


def _load(relative: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLE / relative).read_text())


@pytest.fixture
def example() -> tuple[list[dict[str, Any]], list[dict[str, Any]], plan.Inventory]:
    """The example inventory as Ansible sees it: groups and per-host variables."""
    plan_vars = _load("group_vars/all/network_plan.yml")
    node_vars = _load("group_vars/hybridlay_nodes.yml")
    switch_vars = _load("host_vars/tor-rack1.yml")
    groups = {
        "all": ["node1", "node2", "node3", "tor-rack1"],
        "hybridlay_nodes": ["node1", "node2", "node3"],
        "hybridlay_switches": ["tor-rack1"],
        "rack1": ["node1", "node2"],
        "rack2": ["node3"],
    }
    hostvars: dict[str, dict[str, Any]] = {n: copy.deepcopy(node_vars) for n in groups["hybridlay_nodes"]}
    hostvars["tor-rack1"] = switch_vars
    return plan_vars["hybridlay_networks"], plan_vars["hybridlay_subnets"], plan.Inventory(groups, hostvars)


def _errors(networks: Any, subnets: Any, inventory: plan.Inventory) -> list[str]:
    return [str(e) for e in plan.check_plan(networks, subnets, inventory)]


def test_example_inventory_is_valid(example):
    assert _errors(*example) == []


def test_every_bad_input_of_the_issue_is_reported_at_once(example):
    networks, subnets, inventory = example
    subnets.append(
        {"name": "vlan20-b", "network": "underlay-vlan20", "cidr": "192.168.20.128/25", "gateway": "192.168.20.129"}
    )
    subnets[1]["gateway"] = "10.9.0.1"
    networks.append({"name": "underlay-r2", "type": "Underlay", "netID": 30, "racks": ["rack2"]})
    inventory.hostvars["node1"]["hybridlay_node"]["vlan_parent"] = "bond7"
    inventory.hostvars["node1"]["ansible_facts"] = {"interfaces": ["lo", "eth0", "eth1"]}
    errors = _errors(networks, subnets, inventory)
    assert any(e == "hybridlay_subnets[1].gateway: 10.9.0.1 is outside cidr 192.168.20.0/24" for e in errors), errors
    assert any(e.startswith("hybridlay_subnets[2].") and "overlap" in e for e in errors), errors
    assert any(e.startswith("hybridlay_networks[2].racks[0]: rack2: rack has no switch") for e in errors), errors
    assert (
        "host node1: hybridlay_node.vlan_parent: bond7: no such interface on the node (it has eth0, eth1, lo)" in errors
    )


def test_vlan_id_out_of_range_is_a_schema_error(example):
    networks, subnets, inventory = example
    networks[1]["netID"] = 5000
    assert _errors(networks, subnets, inventory) == [
        "hybridlay_networks[1].netID: 5000 is greater than the maximum of 4094"
    ]


def test_overlay_vni_may_exceed_vlan_range(example):
    networks, subnets, inventory = example
    networks[0]["netID"] = 5000
    assert _errors(networks, subnets, inventory) == []


def test_gateway_outside_cidr_uses_the_webhook_message(example):
    networks, subnets, inventory = example
    subnets[1]["gateway"] = "192.168.21.1"
    resource = plan.subnet_resource(subnets[1])
    network = model.network_from_resource(plan.network_resource(networks[1]))
    webhook = validation.validate_subnet_create(model.subnet_from_resource(resource), {network.name: network}, [])
    assert [str(v) for v in webhook] == ["spec.range.gateway 192.168.21.1 is outside spec.range.cidr 192.168.20.0/24"]
    assert _errors(networks, subnets, inventory) == [
        "hybridlay_subnets[1].gateway: 192.168.21.1 is outside cidr 192.168.20.0/24"
    ]


def test_missing_parent_interface_setting(example):
    networks, subnets, inventory = example
    del inventory.hostvars["node2"]["hybridlay_node"]["vlan_parent"]
    assert _errors(networks, subnets, inventory) == [
        "host node2: hybridlay_node.vlan_parent: is required: the node is in a network that needs it"
    ]


def test_nodes_outside_vlan_racks_need_no_vlan_parent(example):
    networks, subnets, inventory = example
    del inventory.hostvars["node3"]["hybridlay_node"]["vlan_parent"]
    assert _errors(networks, subnets, inventory) == []


def test_unknown_rack_and_overlay_with_racks(example):
    networks, subnets, inventory = example
    networks[1]["racks"] = ["rack9"]
    networks[0]["racks"] = ["rack1"]
    errors = _errors(networks, subnets, inventory)
    assert "hybridlay_networks[0].racks: an overlay network spans every node; list no racks" in errors
    assert "hybridlay_networks[1].racks[0]: rack9: no such inventory group" in errors


def test_node_in_two_underlay_networks_uses_core_rule(example):
    networks, subnets, inventory = example
    inventory.groups["rack2"].append("tor-rack2")  # give rack2 a switch so only the clash remains
    inventory.groups["hybridlay_switches"].append("tor-rack2")
    inventory.hostvars["tor-rack2"] = {"hybridlay_switch": {"rack": "rack2", "platform": "frr"}}
    networks.append({"name": "underlay-b", "type": "Underlay", "netID": 30, "racks": ["rack1", "rack2"]})
    errors = _errors(networks, subnets, inventory)
    assert errors == [
        "hybridlay_networks[2].racks: [rack1, rack2] selects node(s) node1, node2 already in underlay network "
        "underlay-vlan20"
    ]


def test_same_vlan_twice_on_a_rack(example):
    networks, subnets, inventory = example
    inventory.groups["rack1b"] = []
    networks.append({"name": "dup", "type": "Underlay", "netID": 20, "racks": ["rack1"]})
    errors = _errors(networks, subnets, inventory)
    assert "hybridlay_networks[2].racks[0]: rack1: VLAN 20 already carries network underlay-vlan20 there" in errors


def test_switch_schema_and_rack(example):
    networks, subnets, inventory = example
    inventory.hostvars["tor-rack1"]["hybridlay_switch"]["platform"] = "nxos"
    errors = _errors(networks, subnets, inventory)
    assert errors == ["host tor-rack1: hybridlay_switch.platform: 'nxos' is not one of ['ios', 'eos', 'junos', 'frr']"]


def test_bgp_password_never_shown(example):
    networks, subnets, inventory = example
    secret = "s3cr3t-Pa55"
    networks.append(
        {
            "name": "bgp",
            "type": "Underlay",
            "mode": "BGP",
            "netID": 65010,
            "racks": ["rack2"],
            "bgpPeers": [
                {"asn": 0, "address": "not-an-ip", "password": secret},
                {"asn": 65000, "address": "10.0.0.1", "password": 7},
            ],
        }
    )
    errors = _errors(networks, subnets, inventory)
    assert "hybridlay_networks[2].bgpPeers[1].password: invalid value (value hidden)" in errors
    assert secret not in "\n".join(errors)
    networks[2]["bgpPeers"][1]["password"] = "other"
    errors = _errors(networks, subnets, inventory)
    assert any(e.startswith("hybridlay_networks[2].bgpPeers[0].") for e in errors), errors
    assert secret not in "\n".join(errors)
    assert plan.bgp_secrets(networks)[0]["stringData"] == {"peer-0": secret, "peer-1": "other"}
    args = plan.network_module_args(networks)[2]
    assert secret not in json.dumps(args)
    assert args["bgp_peers"][0]["password_secret"] == {
        "name": "hybridlay-bgp-bgp",
        "key": "peer-0",
        "namespace": "kube-system",
    }
    assert plan.network_resource(networks[2])["spec"]["config"]["bgpPeers"][0]["passwordSecretRef"] == {
        "name": "hybridlay-bgp-bgp",
        "key": "peer-0",
        "namespace": "kube-system",
    }


def test_derived_objects(example):
    networks, subnets, _ = example
    assert plan.node_vlan_interfaces(networks, ["rack1", "hybridlay_nodes"], {"vlan_parent": "eth1"}) == [
        {"network": "underlay-vlan20", "parent": "eth1", "id": 20, "name": "eth1.20"}
    ]
    assert plan.node_vlan_interfaces(networks, ["rack2"], {"vlan_parent": "eth1"}) == []
    assert plan.node_network_labels(networks, ["rack1"]) == {"networking.hybridlay.io/network-underlay-vlan20": "true"}
    assert plan.subnet_resource(subnets[1])["spec"] == {
        "network": "underlay-vlan20",
        "range": {
            "version": "4",
            "cidr": "192.168.20.0/24",
            "start": "192.168.20.100",
            "end": "192.168.20.200",
            "gateway": "192.168.20.1",
            "reservedIPs": ["192.168.20.150"],
            "excludeIPs": ["192.168.20.199"],
        },
    }


def test_node_label_patch_adds_wanted_and_removes_only_stale_seed_labels():
    networks = [
        {"name": "underlay-vlan20", "type": "Underlay", "racks": ["rack1"]},
        {"name": "init", "type": "Overlay"},
    ]
    wanted = "networking.hybridlay.io/network-underlay-vlan20"
    stale = "networking.hybridlay.io/network-old"
    operator_kept = "networking.hybridlay.io/underlay-network-attachment"
    current = {stale: "true", operator_kept: "true", "team": "db"}
    assert plan.node_label_patch(networks, ["rack1"], current) == {wanted: "true", stale: None}
    assert plan.node_label_patch(networks, ["rack1"], {wanted: "true", "team": "db"}) == {}
    assert plan.node_label_patch(networks, ["rack2"], {wanted: "true"}) == {wanted: None}  # the rack left
    assert plan.node_label_patch([], [], None) == {}


# --- issue 16: what passed the check and then failed (or did the wrong thing) later --------------------------------


def test_duplicate_network_and_subnet_names_are_refused_naming_both(example):
    networks, subnets, inventory = example
    networks.append(copy.deepcopy(networks[0]))
    subnets.append(copy.deepcopy(subnets[1]))  # even the same name with the same CIDR
    errors = _errors(networks, subnets, inventory)
    name, subnet_name = networks[0]["name"], subnets[1]["name"]
    assert f"hybridlay_networks[2].name: {name}: already the name of hybridlay_networks[0]" in errors
    assert (
        f"hybridlay_subnets[{len(subnets) - 1}].name: {subnet_name}: already the name of hybridlay_subnets[1]" in errors
    )


def test_a_derived_vlan_interface_name_too_long_for_the_kernel_is_refused(example):
    networks, subnets, inventory = example
    inventory.hostvars["node1"]["hybridlay_node"]["vlan_parent"] = "abcdefghijklmn"  # + ".20": 17 characters
    errors = _errors(networks, subnets, inventory)
    assert len(errors) == 1, errors
    assert errors[0].startswith("host node1: hybridlay_node.vlan_parent: network underlay-vlan20: VLAN interface name")
    assert "abcdefghijklmn.20" in errors[0]


def test_a_scoped_ipv6_gateway_is_refused(example):
    networks, subnets, inventory = example
    subnets.append({"name": "v6", "network": networks[1]["name"], "cidr": "fd00:20::/64", "gateway": "fd00:20::1%eth0"})
    errors = _errors(networks, subnets, inventory)
    assert any(
        e.startswith(f"hybridlay_subnets[{len(subnets) - 1}].gateway: fd00:20::1%eth0 has a zone") for e in errors
    ), errors


@pytest.mark.parametrize("pattern", ["Vlan{net_id}{0}", "Vlan{net_id}{vid}", "Vlan{net_id"])
def test_a_switch_vlan_interface_pattern_with_other_placeholders_is_refused(example, pattern):
    networks, subnets, inventory = example
    inventory.hostvars["tor-rack1"]["hybridlay_switch"]["vlan_interface"] = pattern
    errors = _errors(networks, subnets, inventory)
    assert len(errors) == 1 and errors[0].startswith("host tor-rack1: hybridlay_switch.vlan_interface: "), errors
