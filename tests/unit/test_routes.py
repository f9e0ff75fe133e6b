"""Throw-route blocks of a subnet (reference §5): everything of its CIDR that is not a pod address."""

from __future__ import annotations

import ipaddress
import re

import pytest

from hybridlay.errors import InvalidValue
from hybridlay.model import AddressRange, Subnet
from hybridlay.routes import throw_route_blocks


def subnet(cidr: str, **range_fields: object) -> Subnet:
    return Subnet("s", "net", AddressRange("6" if ":" in cidr else "4", cidr, **range_fields))  # type: ignore[arg-type]


def test_reference_example_the_gateway_outside_start_end_gets_no_block_of_its_own() -> None:
    blocks = throw_route_blocks(
        subnet("192.168.3.0/24", gateway="192.168.3.1", start="192.168.3.100", end="192.168.3.200")
    )
    assert blocks == [
        "192.168.3.0/26",
        "192.168.3.64/27",
        "192.168.3.96/30",
        "192.168.3.201/32",
        "192.168.3.202/31",
        "192.168.3.204/30",
        "192.168.3.208/28",
        "192.168.3.224/27",
    ]


def test_without_start_and_end_only_gateway_and_excluded_addresses_are_thrown() -> None:
    blocks = throw_route_blocks(
        subnet("10.0.0.0/24", gateway="10.0.0.1", exclude_ips=("10.0.0.7", "10.0.0.6", "10.0.0.100"))
    )
    assert blocks == ["10.0.0.1/32", "10.0.0.6/31", "10.0.0.100/32"]


def test_excluded_addresses_and_a_gateway_inside_start_end_are_thrown_and_merged() -> None:
    blocks = throw_route_blocks(
        subnet("10.0.0.0/24", start="10.0.0.1", end="10.0.0.127", gateway="10.0.0.127", exclude_ips=("10.0.0.126",))
    )
    # The explicit start .1 leaves the network address .0 outside: thrown as well.
    assert blocks == ["10.0.0.0/32", "10.0.0.126/31", "10.0.0.128/25"]


def test_reserved_addresses_are_pod_addresses_and_never_thrown() -> None:
    assert throw_route_blocks(subnet("10.0.0.0/24", reserved_ips=("10.0.0.9",))) == []


def test_ipv6_blocks() -> None:
    blocks = throw_route_blocks(subnet("fd00::/120", gateway="fd00::1", start="fd00::10", end="fd00::ef"))
    assert blocks == ["fd00::/124", "fd00::f0/124"]


def test_only_one_bound_leaves_the_other_end_of_the_cidr_alone() -> None:
    assert throw_route_blocks(subnet("10.0.0.0/24", start="10.0.0.128")) == ["10.0.0.0/25"]
    assert throw_route_blocks(subnet("10.0.0.0/24", end="10.0.0.127")) == ["10.0.0.128/25"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"start": "10.0.0.50", "end": "10.0.0.10"}, "spec.range.start"),
        ({"gateway": "10.1.0.1"}, "spec.range.gateway"),
        ({"exclude_ips": ("fd00::1",)}, "spec.range.excludeIPs[0]"),
    ],
)
def test_a_bad_range_is_refused_naming_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValue, match=f"^{re.escape(field)} "):
        throw_route_blocks(subnet("10.0.0.0/24", **fields))


def test_blocks_cover_exactly_the_addresses_that_are_not_pod_addresses() -> None:
    spec = subnet(
        "172.16.0.0/22",
        start="172.16.0.77",
        end="172.16.3.3",
        gateway="172.16.3.254",
        exclude_ips=("172.16.1.1", "172.16.1.2", "172.16.2.200"),
    )
    covered = {int(a) for block in throw_route_blocks(spec) for a in ipaddress.ip_network(block)}
    pods = set(range(int(ipaddress.ip_address("172.16.0.77")), int(ipaddress.ip_address("172.16.3.3")) + 1))
    pods -= {int(ipaddress.ip_address(a)) for a in ("172.16.1.1", "172.16.1.2", "172.16.2.200")}
    everything = {int(a) for a in ipaddress.ip_network("172.16.0.0/22")}
    assert covered == everything - pods
