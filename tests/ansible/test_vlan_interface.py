"""vlan_interface: the operations it plans, the files it persists, and the module live in a namespace.

The kernel here has no 802.1Q support, so the tagged device is exercised live only where
`ip link add ... type vlan` works (skipped otherwise, with that reason); VLAN id 0 (the parent
itself) runs live in a network namespace every time.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from ansible_collections.hybridlay.fabric.plugins.module_utils import vlan_interface as vlan


def _want(**overrides):
    params = {"parent": "eth1", "id": 20, "state": "present", "mtu": None, "addresses": []}
    params.update(overrides)
    return vlan.desired_state(params)


HAVE = {
    "name": "eth1.20",
    "kind": "vlan",
    "parent": "eth1",
    "vlan_id": 20,
    "mtu": 1500,
    "up": True,
    "addresses": ["192.168.20.5/24"],
}


def test_create_tagged_interface():
    want = _want(mtu=9000, addresses=["192.168.20.5/24"])
    assert vlan.operations(want, None) == [
        ("add_vlan", "eth1.20", "eth1", 20),
        ("set_mtu", "eth1.20", 9000),
        ("set_up", "eth1.20"),
        ("add_address", "eth1.20", "192.168.20.5/24"),
    ]


def test_idempotent_when_state_matches():
    assert vlan.operations(_want(mtu=1500, addresses=["192.168.20.5/24"]), HAVE) == []


def test_only_missing_address_added_and_others_kept():
    want = _want(addresses=["192.168.20.5/24", "fd00:20::5/64"])
    assert vlan.operations(want, HAVE) == [("add_address", "eth1.20", "fd00:20::5/64")]
    assert vlan.state_after(want, HAVE)["addresses"] == ["192.168.20.5/24", "fd00:20::5/64"]


def test_absent_deletes_tagged_but_never_the_parent():
    assert vlan.operations(_want(state="absent"), HAVE) == [("delete", "eth1.20")]
    assert vlan.operations(_want(state="absent"), None) == []
    parent = dict(HAVE, name="eth1", kind=None, vlan_id=None, parent=None)
    assert vlan.operations(_want(id=0, state="absent", addresses=["192.168.20.5/24"]), parent) == [
        ("del_address", "eth1", "192.168.20.5/24")
    ]
    assert vlan.operations(_want(id=0, state="absent"), parent) == []


def test_missing_parent_for_untagged_and_foreign_device_fail():
    with pytest.raises(LookupError, match="parent interface eth1 does not exist"):
        vlan.operations(_want(id=0), None)
    with pytest.raises(LookupError, match=r"eth1\.20 exists but is not VLAN 20 on eth1"):
        vlan.operations(_want(), dict(HAVE, kind="veth", vlan_id=None))


def test_bad_values():
    with pytest.raises(ValueError, match=r"addresses: 192\.168\.20\.5 is not an address with prefix"):
        _want(addresses=["192.168.20.5"])
    with pytest.raises(ValueError, match="longer than 15"):
        _want(parent="enp129s0f1np1")


def test_networkd_files_use_a_dropin_of_the_parents_network_file(tmp_path):
    directory = tmp_path / "etc/systemd/network"
    directory.mkdir(parents=True)
    (directory / "50-uplink.network").write_text("[Match]\nName=eth0 eth1\n\n[Network]\nDHCP=yes\n")
    files = vlan.persistent_files(_want(mtu=9000, addresses=["192.168.20.5/24"]), "systemd-networkd", str(tmp_path))
    assert files == {
        f"{directory}/20-hybridlay-eth1.20.netdev": vlan.HEADER
        + "[NetDev]\nName=eth1.20\nKind=vlan\nMTUBytes=9000\n\n[VLAN]\nId=20\n",
        f"{directory}/20-hybridlay-eth1.20.network": vlan.HEADER
        + "[Match]\nName=eth1.20\n\n[Network]\nLinkLocalAddressing=no\nConfigureWithoutCarrier=yes\n"
        "Address=192.168.20.5/24\n",
        f"{directory}/50-uplink.network.d/hybridlay-eth1.20.conf": vlan.HEADER + "[Network]\nVLAN=eth1.20\n",
    }
    removed = vlan.persistent_files(_want(state="absent"), "systemd-networkd", str(tmp_path))
    assert set(removed) == set(files) and set(removed.values()) == {None}


def test_networkd_without_a_parent_file_gets_one(tmp_path):
    files = vlan.persistent_files(_want(), "systemd-networkd", str(tmp_path))
    assert files[f"{tmp_path}/etc/systemd/network/10-hybridlay-eth1.network"].endswith(
        "[Match]\nName=eth1\n\n[Network]\nLinkLocalAddressing=no\n"
    )


def test_networkmanager_and_ifupdown_files(tmp_path):
    want = _want(mtu=9000, addresses=["192.168.20.5/24", "fd00:20::5/64"])
    nm = vlan.persistent_files(want, "NetworkManager", str(tmp_path))
    assert nm == {
        f"{tmp_path}/etc/NetworkManager/system-connections/hybridlay-eth1.20.nmconnection": vlan.HEADER
        + "[connection]\nid=hybridlay-eth1.20\ntype=vlan\ninterface-name=eth1.20\nautoconnect=true\n\n"
        "[vlan]\nparent=eth1\nid=20\n\n[ethernet]\nmtu=9000\n\n"
        "[ipv4]\nmethod=manual\naddress1=192.168.20.5/24\n\n[ipv6]\nmethod=manual\naddress1=fd00:20::5/64\n"
    }
    ifupdown = vlan.persistent_files(want, "ifupdown", str(tmp_path))
    assert ifupdown == {
        f"{tmp_path}/etc/network/interfaces.d/hybridlay-eth1.20": vlan.HEADER
        + "auto eth1.20\niface eth1.20 inet manual\n    vlan-raw-device eth1\n    mtu 9000\n"
        "    up ip address add 192.168.20.5/24 dev eth1.20\n"
        "    up ip address add fd00:20::5/64 dev eth1.20\n"
    }


def test_untagged_writes_no_file_and_stack_detection(tmp_path):
    assert vlan.persistent_files(_want(id=0), "ifupdown", str(tmp_path)) == {}
    assert vlan.detect_stack(str(tmp_path)) is None
    (tmp_path / "etc/network").mkdir(parents=True)
    (tmp_path / "etc/network/interfaces").write_text("")
    assert vlan.detect_stack(str(tmp_path)) == "ifupdown"
    (tmp_path / "run/systemd/netif/links").mkdir(parents=True)
    assert vlan.detect_stack(str(tmp_path)) == "systemd-networkd"


def test_file_changes_only_lists_differences(tmp_path):
    path = tmp_path / "f"
    path.write_text("same")
    path.chmod(0o644)
    assert vlan.file_changes({str(path): "same"}) == {}
    path.chmod(0o640)
    assert vlan.file_changes({str(path): "same"}) == {str(path): ("same", "same")}
    path.chmod(0o644)
    assert vlan.file_changes({str(path): None, str(tmp_path / "g"): "new"}) == {
        str(path): ("same", None),
        str(tmp_path / "g"): (None, "new"),
    }


# --- live, in a network namespace ------------------------------------------------------------------


@pytest.fixture
def netns():
    name = f"hlans-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "eth1", "type", "veth", "peer", "name", "peer1"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def module_in_netns(ansible, netns):
    """Run vlan_interface as Ansible does (ad hoc, local connection), inside the namespace."""

    def run(args: dict, *extra: str) -> str:
        command = ["/usr/bin/ip", "netns", "exec", netns, "ansible", "localhost", "-m",
                   "hybridlay.fabric.vlan_interface", "-a", json.dumps(args), *extra]
        result = ansible(command)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    return run


def _eth1(netns: str) -> dict:
    shown = subprocess.run(["ip", "-n", netns, "-j", "addr", "show", "eth1"], capture_output=True, check=True)
    return json.loads(shown.stdout)[0]


@pytest.mark.netns
def test_untagged_live_in_namespace(module_in_netns, netns, tmp_path):
    args = {"parent": "eth1", "id": 0, "mtu": 1400, "addresses": ["192.168.20.5/24"], "config_root": str(tmp_path)}
    assert "CHANGED" in module_in_netns(args, "--diff", "--check")
    assert _eth1(netns)["mtu"] != 1400  # check mode changed nothing
    out = module_in_netns(args, "--diff")
    assert "CHANGED" in out and "set_mtu" in out
    link = _eth1(netns)
    assert link["mtu"] == 1400 and "UP" in link["flags"]
    assert {"192.168.20.5/24"} <= {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]}
    assert "SUCCESS" in module_in_netns(args) and not list(tmp_path.iterdir())  # idempotent; nothing persisted


@pytest.mark.netns
def test_untagged_parent_whose_veth_peer_is_in_another_namespace(module_in_netns, netns, tmp_path):
    """A container's eth1 is a veth whose peer lives on the host: its IFLA_LINK indexes a link the
    container cannot see, which must not make the module fail (errno 19 before)."""
    elsewhere = f"{netns}-peer"
    subprocess.run(["ip", "netns", "add", elsewhere], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "peer1", "netns", elsewhere], check=True)
        args = {"parent": "eth1", "id": 0, "addresses": ["192.168.20.6/24"], "config_root": str(tmp_path)}
        assert "CHANGED" in module_in_netns(args)
        assert "SUCCESS" in module_in_netns(args)
    finally:
        subprocess.run(["ip", "netns", "del", elsewhere], check=False)


def _kernel_has_8021q(netns: str) -> bool:
    probe = subprocess.run(
        ["ip", "-n", netns, "link", "add", "link", "eth1", "name", "probe.7", "type", "vlan", "id", "7"],
        capture_output=True,
        check=False,
    )
    subprocess.run(["ip", "-n", netns, "link", "del", "probe.7"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.netns
def test_tagged_live_in_namespace(module_in_netns, netns, tmp_path):
    if not _kernel_has_8021q(netns):
        pytest.skip("this kernel cannot create 802.1Q VLAN devices (no 8021q module); covered by the unit tests")
    args = {"parent": "eth1", "id": 20, "config_root": str(tmp_path), "persist": "ifupdown"}
    assert "CHANGED" in module_in_netns(args)
    assert "SUCCESS" in module_in_netns(args)
    assert (tmp_path / "etc/network/interfaces.d/hybridlay-eth1.20").exists()
    assert "CHANGED" in module_in_netns(args | {"state": "absent"})
    assert not (tmp_path / "etc/network/interfaces.d/hybridlay-eth1.20").exists()


def test_file_modes():
    assert vlan.file_mode("/etc/NetworkManager/system-connections/hybridlay-eth1.20.nmconnection") == 0o600
    assert vlan.file_mode("/etc/systemd/network/20-hybridlay-eth1.20.network") == 0o644
