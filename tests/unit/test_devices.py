"""Device names fit Linux's 15-character limit and are derived the same way by every process."""

from __future__ import annotations

import pytest

from hybridlay.devices import host_veth_name, vlan_interface_name, vxlan_interface_name
from hybridlay.errors import InvalidValue


def test_host_veth_name_is_stable_short_and_distinct():
    name = host_veth_name("default", "web-0")
    assert name == host_veth_name("default", "web-0")
    assert name.startswith("hybr")
    assert len(name) == 15
    assert name != host_veth_name("default", "web-1")
    assert name != host_veth_name("other", "web-0")


@pytest.mark.parametrize(
    ("parent", "net_id", "expected"),
    [("eth0", 0, "eth0"), ("eth0", None, "eth0"), ("eth0", 100, "eth0.100"), ("enp175s0f1", 4094, "enp175s0f1.4094")],
)
def test_vlan_interface_name(parent, net_id, expected):
    assert vlan_interface_name(parent, net_id) == expected


@pytest.mark.parametrize(
    ("parent", "net_id", "field"),
    [("eth0", 4095, "netID"), ("eth0/x", 10, "parent interface"), ("enp175s0f1np1", 1000, "VLAN interface name")],
)
def test_vlan_interface_name_rejects(parent, net_id, field):
    with pytest.raises(InvalidValue) as caught:
        vlan_interface_name(parent, net_id)
    assert caught.value.field == field


def test_vxlan_name_falls_back_when_parent_is_long():
    assert vxlan_interface_name("eth0", 4) == "eth0.vxlan4"
    assert vxlan_interface_name("enp175s0f1", 4) == "vxlan4"
    with pytest.raises(InvalidValue, match="netID 16777216"):
        vxlan_interface_name("eth0", 1 << 24)
