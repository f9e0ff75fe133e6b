"""Switch static routes: the plan's routes through the three vendors' resource modules (state
rendered: the configuration they would send, no device needed) and through FRR for real.

FRR runs (zebra + staticd) in a network namespace of its own; the playbook applies the routes
with vtysh, a second run changes nothing, state deleted removes them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from ansible_collections.hybridlay.fabric.plugins.module_utils import frr_static_routes as frr
from ansible_collections.hybridlay.fabric.plugins.plugin_utils import plan

PLATFORMS = {"ios": "cisco.ios.ios", "eos": "arista.eos.eos", "junos": "junipernetworks.junos.junos"}
NETWORKS = [
    {"name": "init", "type": "Overlay", "netID": 4},
    {
        "name": "vlan20",
        "type": "Underlay",
        "mode": "VLAN",
        "netID": 20,
        "racks": ["rack_ios", "rack_eos", "rack_junos", "rack_frr"],
    },
]
SUBNETS = [
    {"name": "init", "network": "init", "cidr": "172.24.0.0/16"},
    {"name": "v20-a", "network": "vlan20", "cidr": "192.168.20.0/24", "gateway": "192.168.20.1"},
    {"name": "v20-b", "network": "vlan20", "cidr": "192.168.21.0/24", "gateway": "192.168.21.1"},
    {"name": "v20-6", "network": "vlan20", "cidr": "fd00:20::/120", "gateway": "fd00:20::1"},
]


def _inventory(tmp_path: Path, frr_pathspace: str) -> Path:
    racks = {}
    switches = {}
    for platform, network_os in PLATFORMS.items():
        racks[f"rack_{platform}"] = {"hosts": {f"node-{platform}": None, f"tor-{platform}": None}}
        switches[f"tor-{platform}"] = {
            "ansible_connection": "ansible.netcommon.netconf"
            if platform == "junos"
            else "ansible.netcommon.network_cli",
            "ansible_network_os": network_os,
            "ansible_host": "192.0.2.1",  # TEST-NET-1: never reached, rendered needs no device
            "ansible_user": "admin",
            "ansible_password": "sw1tch-Secret",
            "hybridlay_switch": {"rack": f"rack_{platform}", "platform": platform},
        }
    racks["rack_frr"] = {"hosts": {"node-frr": None, "tor-frr": None}}
    switches["tor-frr"] = {
        "ansible_connection": "local",
        "ansible_become": False,  # already root; the test machine has no sudo
        "ansible_python_interpreter": "/usr/bin/python3",  # never a version-manager shim
        "hybridlay_switch": {"rack": "rack_frr", "platform": "frr", "frr_pathspace": frr_pathspace},
    }
    nodes = {
        f"node-{p}": {"hybridlay_node": {"vxlan_parent": "eth0", "vlan_parent": "eth1"}} for p in [*PLATFORMS, "frr"]
    }
    inventory = {
        "all": {
            # The nodes are not reachable here: their interfaces are not checked.
            "vars": {"hybridlay_networks": NETWORKS, "hybridlay_subnets": SUBNETS, "hybridlay_check_interfaces": False},
            "children": {
                "hybridlay_nodes": {"hosts": nodes},
                "hybridlay_switches": {"hosts": switches},
                **racks,
            },
        }
    }
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def _playbook(ansible, inventory: Path, *args: str) -> dict:
    result = ansible(
        ["ansible-playbook", "-i", str(inventory), "playbooks/switch_routes.yml", *args],
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    out = json.loads(result.stdout)
    failed = [
        f"{task['task']['name']} on {host}: {r.get('msg')}"
        for play in out["plays"]
        for task in play["tasks"]
        for host, r in task["hosts"].items()
        if r.get("failed")
    ]
    assert result.returncode == 0, failed or result.stderr
    assert "sw1tch-Secret" not in result.stdout + result.stderr
    return out


def _task_results(out: dict, name_part: str) -> dict:
    """Results by host of the tasks whose name contains ``name_part`` (one task per platform)."""
    results: dict = {}
    for play in out["plays"]:
        for task in play["tasks"]:
            if name_part in task["task"]["name"]:
                results.update(task["hosts"])
    assert results, f"no task {name_part}"
    return results


def test_routes_of_a_rack():
    switch = {"rack": "rack_eos", "platform": "eos"}
    assert plan.switch_routes(NETWORKS, SUBNETS, switch) == [
        {"dest": "192.168.20.0/24", "afi": "ipv4", "interface": "Vlan20", "subnet": "v20-a"},
        {"dest": "192.168.21.0/24", "afi": "ipv4", "interface": "Vlan20", "subnet": "v20-b"},
        {"dest": "fd00:20::/120", "afi": "ipv6", "interface": "Vlan20", "subnet": "v20-6"},
    ]
    assert plan.switch_routes(NETWORKS, SUBNETS, {"rack": "rack_other", "platform": "eos"}) == []
    custom = plan.switch_routes(
        NETWORKS, SUBNETS, {"rack": "rack_ios", "platform": "ios", "vlan_interface": "Vlan{net_id}.1"}
    )
    assert {r["interface"] for r in custom} == {"Vlan20.1"}


def test_frr_parse_and_commands():
    text = (
        "ip route 10.0.0.0/8 192.0.2.1\nip route 192.168.20.0/24 vlan20\nipv6 route fd00:20::/120 vlan20 tag 5\n"
        "ip route 10.9.0.0/16 192.0.2.9 eth0 200\nhostname x\n"
    )
    have = frr.parse(text)
    assert have == [
        {"dest": "10.0.0.0/8", "next_hop": "192.0.2.1", "interface": None},
        {"dest": "192.168.20.0/24", "next_hop": None, "interface": "vlan20"},
        {"dest": "fd00:20::/120", "next_hop": None, "interface": "vlan20"},
        {"dest": "10.9.0.0/16", "next_hop": "192.0.2.9", "interface": "eth0"},
    ]
    want = [
        frr.normalize({"dest": "192.168.20.0/24", "interface": "vlan20"}),
        frr.normalize({"dest": "192.168.21.0/24", "interface": "vlan20"}),
    ]
    assert frr.commands(want, have, "merged") == ["ip route 192.168.21.0/24 vlan20"]
    assert frr.commands(want, have, "overridden") == [
        "no ip route 10.0.0.0/8 192.0.2.1",
        "no ipv6 route fd00:20::/120 vlan20",
        "no ip route 10.9.0.0/16 192.0.2.9 eth0",
        "ip route 192.168.21.0/24 vlan20",
    ]
    assert frr.commands(want, have, "deleted") == ["no ip route 192.168.20.0/24 vlan20"]
    assert len(frr.commands([], have, "deleted")) == 4
    assert frr.after(want, have, "merged")[-1] == want[1]
    with pytest.raises(ValueError, match=r"dest: 192\.168\.20\.1/24 is not a network"):
        frr.normalize({"dest": "192.168.20.1/24", "interface": "vlan20"})


@pytest.fixture
def frr_router():
    """zebra and staticd in a namespace of their own, with a `vlan20` interface; torn down after."""
    name = f"hlafrr-{uuid.uuid4().hex[:8]}"
    run_dir, conf_dir = Path(f"/var/run/frr/{name}"), Path(f"/tmp/{name}")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "add", "vlan20", "type", "veth", "peer", "name", "peer20"], check=True
        )
        for directory in (run_dir, conf_dir):
            directory.mkdir(parents=True)
            shutil.chown(directory, "frr", "frr")
        (conf_dir / "frr.conf").write_text("")
        shutil.chown(conf_dir / "frr.conf", "frr", "frr")
        for daemon in ("zebra", "staticd"):
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    name,
                    f"/usr/lib/frr/{daemon}",
                    "-N",
                    name,
                    "-d",
                    "-f",
                    str(conf_dir / "frr.conf"),
                    "-i",
                    str(run_dir / f"{daemon}.pid"),
                ],
                check=True,
                capture_output=True,
            )
        deadline = time.monotonic() + 10
        while not (run_dir / "staticd.vty").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield name
    finally:
        for daemon in ("staticd", "zebra"):
            pid_file = run_dir / f"{daemon}.pid"
            if pid_file.exists():
                subprocess.run(["kill", pid_file.read_text().strip()], check=False)
        subprocess.run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(conf_dir, ignore_errors=True)


def _frr_static(name: str) -> list[str]:
    out = subprocess.run(
        ["vtysh", "-N", name, "-c", "show running-config staticd"], capture_output=True, text=True, check=True
    ).stdout
    return sorted(line for line in out.splitlines() if " route " in line)


@pytest.mark.slow
@pytest.mark.netns
def test_vendor_rendered_and_frr_applied(ansible, tmp_path, frr_router):
    inventory = _inventory(tmp_path, frr_router)
    out = _playbook(ansible, inventory, "-e", "switch_routes_state=rendered")
    rendered = {host: r["rendered"] for host, r in _task_results(out, "Static routes through").items()}
    assert rendered["tor-ios"] == [
        "ip route 192.168.20.0 255.255.255.0 Vlan20",
        "ip route 192.168.21.0 255.255.255.0 Vlan20",
        "ipv6 route fd00:20::/120 Vlan20",
    ]
    assert rendered["tor-eos"] == [
        "ip route 192.168.20.0/24 Vlan20",
        "ip route 192.168.21.0/24 Vlan20",
        "ipv6 route fd00:20::/120 Vlan20",
    ]
    assert rendered["tor-junos"] == (
        '<nc:routing-options xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><nc:static>'
        "<nc:route><nc:name>192.168.20.0/24</nc:name><nc:next-hop>irb.20</nc:next-hop></nc:route>"
        "<nc:route><nc:name>192.168.21.0/24</nc:name><nc:next-hop>irb.20</nc:next-hop></nc:route></nc:static>"
        "<nc:rib><nc:name>inet6.0</nc:name><nc:static>"
        "<nc:route><nc:name>fd00:20::/120</nc:name><nc:next-hop>irb.20</nc:next-hop></nc:route>"
        "</nc:static></nc:rib></nc:routing-options>"
    )
    assert rendered["tor-frr"] == [
        "ip route 192.168.20.0/24 vlan20",
        "ip route 192.168.21.0/24 vlan20",
        "ipv6 route fd00:20::/120 vlan20",
    ]
    assert _frr_static(frr_router) == []

    frr_only = ["--limit", "localhost,tor-frr", "-e", "switch_routes_frr_save=false"]
    first = _task_results(_playbook(ansible, inventory, *frr_only), "Static routes through")["tor-frr"]
    assert first["changed"] and len(first["commands"]) == 3
    assert _frr_static(frr_router) == [
        "ip route 192.168.20.0/24 vlan20",
        "ip route 192.168.21.0/24 vlan20",
        "ipv6 route fd00:20::/120 vlan20",
    ]
    second = _task_results(_playbook(ansible, inventory, *frr_only), "Static routes through")["tor-frr"]
    assert not second["changed"] and second["commands"] == []
    deleted = _task_results(
        _playbook(ansible, inventory, *frr_only, "-e", "switch_routes_state=deleted"), "Static routes through"
    )["tor-frr"]
    assert deleted["changed"]
    assert _frr_static(frr_router) == []


def test_vendor_config_shapes():
    routes = plan.switch_routes(NETWORKS, SUBNETS, {"rack": "rack_ios", "platform": "ios"})
    assert plan.static_routes_config(routes, "ios") == [{"address_families": [
        {"afi": "ipv4", "routes": [{"dest": "192.168.20.0/24", "next_hops": [{"interface": "Vlan20"}]},
                                   {"dest": "192.168.21.0/24", "next_hops": [{"interface": "Vlan20"}]}]},
        {"afi": "ipv6", "routes": [{"dest": "fd00:20::/120", "next_hops": [{"interface": "Vlan20"}]}]},
    ]}]
    junos_routes = plan.switch_routes(NETWORKS, SUBNETS, {"rack": "rack_junos", "platform": "junos"})
    junos = plan.static_routes_config(junos_routes, "junos")
    assert junos[0]["address_families"][0]["routes"][0] == {"dest": "192.168.20.0/24",
                                                             "next_hop": [{"forward_router_address": "irb.20"}]}
    assert plan.static_routes_config([], "eos") == []
