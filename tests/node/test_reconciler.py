"""The reconciler against a real kernel in a throwaway namespace: apply, converge, remove, own only ours."""

from __future__ import annotations

import json
import pickle
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodebed import sh

from hybridlay.dataplane import ClusterState, DesiredState, NodeFacts, plan
from hybridlay.dataplane.state import Chain, IPSet
from hybridlay.model import (
    AddressRange,
    Binding,
    InstanceAddress,
    IPInstance,
    Network,
    NetworkType,
    NodeInfo,
    Subnet,
    VTEPInfo,
)
from hybridlay_agent.netfilter import TableState, ipset_restore_script, iptables_restore_script

HELPER = Path(__file__).parent / "reconcile_in_netns.py"
OVERLAY = Network("overlay", type=NetworkType.OVERLAY, net_id=7)
TAGGED = Network("tagged", type=NetworkType.UNDERLAY, net_id=100, node_selector={"rack": "a"})
OV4 = Subnet("ov4", "overlay", AddressRange("4", "10.244.0.0/16"))
TAG4 = Subnet("tag4", "tagged", AddressRange("4", "172.16.0.0/24", gateway="172.16.0.1"))
NODE = NodeFacts("n1", vxlan_parent="eth0", vlan_parent="eth0", vtep_ip="10.1.0.11", labels={"rack": "a"})


def pod(ip: str, node: str) -> IPInstance:
    return IPInstance(
        ip, "overlay", "ov4", InstanceAddress("4", f"{ip}/16"), Binding(pod_name=ip, pod_namespace="t", node_name=node)
    )


def infos(*numbers: int) -> tuple[NodeInfo, ...]:
    return tuple(NodeInfo(f"n{i}", VTEPInfo(f"10.1.0.{10 + i}", f"0e:00:00:00:00:{i:02x}")) for i in numbers)


@pytest.fixture
def netns() -> Iterator[str]:
    name = "hlr" + secrets.token_hex(4)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        sh(name, "ip link set lo up; ip link add eth0 type veth peer name peer0; ip link set eth0 up;"
                 " ip link set peer0 up; ip addr add 10.1.0.11/24 dev eth0")  # fmt: skip
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def reconcile(netns: str, desired: DesiredState) -> dict[str, Any]:
    result = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, str(HELPER)],
        input=pickle.dumps(desired), capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


@pytest.mark.netns
def test_apply_converge_and_remove(netns: str) -> None:
    full = plan(
        NODE, ClusterState((OVERLAY,), (OV4,), infos(1, 2, 3), (pod("10.244.0.2", "n2"), pod("10.244.0.3", "n3")))
    )
    assert reconcile(netns, full)["writes"] > 0
    assert reconcile(netns, full)["writes"] == 0
    assert "10.244.0.3 lladdr 0e:00:00:00:00:03 PERMANENT" in sh(netns, "ip neigh show dev eth0.vxlan7").stdout
    smaller = plan(NODE, ClusterState((OVERLAY,), (OV4,), infos(1, 2), (pod("10.244.0.2", "n2"),)))
    assert reconcile(netns, smaller)["writes"] > 0
    assert "10.244.0.3" not in sh(netns, "ip neigh show dev eth0.vxlan7").stdout
    assert "10.1.0.13" not in sh(netns, "bridge fdb show dev eth0.vxlan7").stdout
    assert reconcile(netns, smaller)["writes"] == 0
    # An underlay pod's enhanced address comes and goes with the pod.
    underlay = Network("underlay", net_id=0, node_selector={"rack": "a"})
    un4 = Subnet("un4", "underlay", AddressRange("4", "192.168.56.0/24", gateway="192.168.56.1"))
    u_pod = IPInstance(
        "u",
        "underlay",
        "un4",
        InstanceAddress("4", "192.168.56.7/24"),
        Binding(pod_name="u", pod_namespace="t", node_name="n1"),
    )
    reconcile(netns, plan(NODE, ClusterState((OVERLAY, underlay), (OV4, un4), infos(1, 2), (u_pod,))))
    assert "192.168.56.7/24 scope link noprefixroute" in sh(netns, "ip -4 addr show eth0").stdout
    reconcile(netns, plan(NODE, ClusterState((OVERLAY, underlay), (OV4, un4), infos(1, 2), ())))
    assert "192.168.56.7" not in sh(netns, "ip -4 addr show eth0").stdout
    # No overlay network left: the device, rules' tables, chains and sets go; the user's things stay.
    sh(netns, "ip rule add from 10.99.0.0/16 lookup 100 priority 1050; iptables -N USER; ipset create USER hash:ip")
    assert reconcile(netns, plan(NODE, ClusterState()))["writes"] > 0
    assert "eth0.vxlan7" not in sh(netns, "ip -o link").stdout
    assert "HYBRIDLAY" not in sh(netns, "iptables-save; ipset list -n").stdout
    assert "lookup 40000" in sh(netns, "ip rule").stdout  # the base rules stay while the agent runs
    assert "from 10.99.0.0/16 lookup 100" in sh(netns, "ip rule").stdout
    assert "USER" in sh(netns, "iptables-save -t filter; ipset list -n").stdout


@pytest.mark.netns
def test_tagged_vlan_device(netns: str) -> None:
    probe = sh(netns, "ip link add link eth0 name probe.9 type vlan id 9", check=False)
    if probe.returncode != 0:
        pytest.skip(f"this kernel cannot create 802.1Q VLAN devices (no 8021q): {probe.stderr.strip()}")
    desired = plan(NODE, ClusterState((TAGGED,), (TAG4,), (), ()))
    reconcile(netns, desired)
    assert "vlan protocol 802.1Q id 100" in sh(netns, "ip -d link show eth0.100").stdout
    assert reconcile(netns, desired)["writes"] == 0


CHAIN = Chain(4, "filter", "HYBRIDLAY-FORWARD", "FORWARD", ("-o x -j ACCEPT",))


def test_iptables_script_changes_only_what_differs() -> None:
    same = {"filter": TableState({"HYBRIDLAY-FORWARD": ["-o x -j ACCEPT"]}, {("FORWARD", "HYBRIDLAY-FORWARD")})}
    assert iptables_restore_script(same, [CHAIN]) == ""
    assert iptables_restore_script({}, [CHAIN]) == (
        "*filter\n:HYBRIDLAY-FORWARD - [0:0]\n-A HYBRIDLAY-FORWARD -o x -j ACCEPT\n"
        "-I FORWARD 1 -j HYBRIDLAY-FORWARD\nCOMMIT\n"
    )
    stale = {"filter": TableState({"HYBRIDLAY-OLD": ["-j DROP"]}, {("FORWARD", "HYBRIDLAY-OLD")})}
    assert iptables_restore_script(stale, []) == (
        "*filter\n-D FORWARD -j HYBRIDLAY-OLD\n:HYBRIDLAY-OLD - [0:0]\n-X HYBRIDLAY-OLD\nCOMMIT\n"
    )


def test_ipset_script_adds_and_deletes_members() -> None:
    have = {
        IPSet("HYBRIDLAY-ALL", 4, "hash:net", frozenset({"10.0.0.0/8", "10.1.0.0/16"})),
        IPSet("HYBRIDLAY-GONE", 4, "hash:ip"),
    }
    want = {IPSet("HYBRIDLAY-ALL", 4, "hash:net", frozenset({"10.0.0.0/8", "10.2.0.0/16"}))}
    script, destroy = ipset_restore_script(have, want)
    assert script == "add HYBRIDLAY-ALL 10.2.0.0/16 -exist\ndel HYBRIDLAY-ALL 10.1.0.0/16 -exist\n"
    assert destroy == ["HYBRIDLAY-GONE"]
    assert ipset_restore_script(want, want) == ("", [])


def test_netlink_attributes_encode_and_parse_back() -> None:
    from hybridlay_agent.netlink import _attrs, _ip, _mac, _mac_of, _nla, _u32, _u32_of  # noqa: PLC0415

    packed = _nla(1, _ip("10.0.0.5")) + _nla(2, _mac("0e:00:00:00:00:02")) + _nla(15, _u32(40000))
    assert len(packed) % 4 == 0 and len(_nla(2, b"\x01" * 6)) == 12  # padded to 4 bytes
    attrs = _attrs(b"HDR!" + packed, 4)
    assert attrs[1] == bytes([10, 0, 0, 5])
    assert _mac_of(attrs[2]) == "0e:00:00:00:00:02"
    assert _u32_of(attrs[15]) == 40000
    assert _u32_of(None) is None
