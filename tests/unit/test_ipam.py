"""IPAM rules of reference §3: counts, next-fit order, reserved and forbidden addresses, subnet
rotation, dual stack all-or-nothing, spec updates, and bad input named by field and value."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from hybridlay.errors import AddressConflict, InvalidValue, NoAddressAvailable
from hybridlay.ipam import IPAM, Allocation, SubnetPool
from hybridlay.model import (
    AddressRange,
    IPFamily,
    Network,
    NetworkStatus,
    Statistics,
    Subnet,
    SubnetConfig,
    SubnetStatus,
)


def subnet(
    name: str,
    cidr: str,
    network: str = "net",
    *,
    private: bool = False,
    net_id: int | None = None,
    last_allocated_ip: str | None = None,
    **range_fields: Any,
) -> Subnet:
    version = "6" if ":" in cidr else "4"
    for key in ("reserved_ips", "exclude_ips"):
        range_fields[key] = tuple(range_fields.get(key, ()))
    return Subnet(
        name=name,
        network=network,
        range=AddressRange(version=version, cidr=cidr, **range_fields),
        net_id=net_id,
        config=SubnetConfig(private=private),
        status=SubnetStatus(last_allocated_ip=last_allocated_ip),
    )


def addresses(allocations: list[Allocation]) -> list[str]:
    return [a.address for a in allocations]


def invalid(field: str, value: str) -> Any:
    """pytest.raises for an InvalidValue naming ``field`` and ``value``, its message included."""
    return pytest.raises(InvalidValue, match=f"^{re.escape(field)} {re.escape(value)}: ")


# --- counts (reference §3 examples) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "total"),
    [
        (subnet("s", "10.0.0.0/24", gateway="10.0.0.1"), 253),
        (subnet("s", "fd00::/120"), 255),
        (subnet("s", "10.0.0.0/24", start="10.0.0.21", end="10.0.0.50", gateway="10.0.0.1"), 30),
        (subnet("s", "10.0.0.0/24", gateway="10.0.0.1", reserved_ips=[f"10.0.0.{i}" for i in range(10, 15)]), 248),
        (subnet("s", "10.0.0.0/24", gateway="10.0.0.1", exclude_ips=[f"10.0.0.{i}" for i in range(10, 15)]), 248),
        # Outside start-end, a reserved or excluded address removes nothing more.
        (subnet("s", "10.0.0.0/24", start="10.0.0.21", end="10.0.0.50", reserved_ips=["10.0.0.60"]), 30),
        (subnet("s", "10.0.0.0/24", gateway="10.0.0.1", exclude_ips=["10.0.0.1"], reserved_ips=["10.0.0.1"]), 253),
    ],
    ids=["v4-gateway", "v6-no-gateway", "start-end", "5-reserved", "5-excluded", "reserved-outside", "overlaps"],
)
def test_total_is_the_allocatable_count(spec: Subnet, total: int) -> None:
    pool = SubnetPool(spec)
    assert (pool.total, pool.used, pool.available) == (total, 0, total)
    assert pool.status() == SubnetStatus(total=total, used=0, available=total, last_allocated_ip=None)


def test_used_counts_addresses_in_use_but_not_reserved_ones() -> None:
    pool = SubnetPool(subnet("s", "10.0.0.0/29", gateway="10.0.0.1", reserved_ips=["10.0.0.6"]))
    assert pool.total == 4  # .2 .. .5
    pool.allocate("ns/a")
    pool.assign("10.0.0.6", "ns/b")
    assert (pool.used, pool.available) == (1, 3)


# --- next-fit order ---------------------------------------------------------------------------


def test_next_fit_resumes_after_the_last_allocated_address_not_at_the_lowest_free() -> None:
    pool = SubnetPool(subnet("s", "10.0.0.0/29", gateway="10.0.0.1"))
    assert [pool.allocate(f"ns/p{i}").address for i in range(3)] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert pool.release("10.0.0.2")
    assert pool.allocate("ns/p3").address == "10.0.0.5"
    assert pool.last_allocated_ip == "10.0.0.5"
    # .6 is the last usable address (.7 is the broadcast); then it wraps to the freed .2.
    assert pool.allocate("ns/p4").address == "10.0.0.6"
    assert pool.allocate("ns/p5").address == "10.0.0.2"
    with pytest.raises(NoAddressAvailable, match="subnet s"):
        pool.allocate("ns/p6")


def test_next_fit_continues_after_the_last_allocated_ip_of_the_status() -> None:
    pool = SubnetPool(subnet("s", "10.0.0.0/24", gateway="10.0.0.1", last_allocated_ip="10.0.0.99"))
    assert pool.last_allocated_ip == "10.0.0.99"
    assert pool.allocate("ns/a").address == "10.0.0.100"


@pytest.mark.parametrize("hint", ["not-an-ip", "10.0.1.5", "fd00::1", "10.0.0.255"])
def test_an_unusable_last_allocated_ip_is_only_a_hint_and_ignored(hint: str) -> None:
    pool = SubnetPool(subnet("s", "10.0.0.0/24", gateway="10.0.0.1", last_allocated_ip=hint))
    assert pool.allocate("ns/a").address == "10.0.0.2"


def test_reserved_gateway_and_excluded_addresses_are_never_handed_out_by_next_fit() -> None:
    spec = subnet(
        "s", "10.0.0.0/28", gateway="10.0.0.1", reserved_ips=["10.0.0.3", "10.0.0.9"], exclude_ips=["10.0.0.4"]
    )
    pool = SubnetPool(spec)
    handed = [pool.allocate(f"ns/p{i}").address for i in range(pool.total)]
    assert sorted(handed, key=lambda a: int(a.rsplit(".", 1)[1])) == [
        f"10.0.0.{i}" for i in (2, 5, 6, 7, 8, 10, 11, 12, 13, 14)
    ]
    with pytest.raises(NoAddressAvailable):
        pool.allocate("ns/more")
    # A reserved address is still there for whoever asks for it by address.
    assert pool.assign("10.0.0.9", "ns/sts-0").address == "10.0.0.9"


def test_ipv6_next_fit_and_allocation_fields() -> None:
    pool = SubnetPool(subnet("v6", "fd00::/120", network="n", gateway="fd00::1"), net_id=7)
    first = pool.allocate("ns/a")
    assert first == Allocation(
        network="n", subnet="v6", version=6, address="fd00::2", prefix_length=120, gateway="fd00::1", net_id=7
    )
    assert first.ip_with_prefix == "fd00::2/120"
    assert first.instance_name == "fd00-0-0-0-0-0-0-2"
    assert pool.allocate("ns/b").address == "fd00::3"


def test_allocation_names_its_ipinstance_and_prefixed_address() -> None:
    allocation = SubnetPool(subnet("s", "10.0.0.0/24", gateway="10.0.0.1", net_id=30)).allocate("ns/a")
    assert (allocation.ip_with_prefix, allocation.instance_name) == ("10.0.0.2/24", "10-0-0-2")
    assert (allocation.gateway, allocation.net_id, allocation.version) == ("10.0.0.1", 30, 4)


# --- assign, release, holder ------------------------------------------------------------------


def test_assign_is_idempotent_for_the_same_owner_and_a_conflict_for_another() -> None:
    pool = SubnetPool(subnet("s", "10.0.0.0/24", gateway="10.0.0.1"))
    assert pool.assign("10.0.0.7", "ns/a").address == "10.0.0.7"
    assert pool.assign("10.0.0.7", "ns/a").address == "10.0.0.7"
    assert pool.used == 1
    with pytest.raises(AddressConflict) as caught:
        pool.assign("10.0.0.7", "ns/b")
    assert caught.value.address == "10.0.0.7"
    assert caught.value.holders == ("ns/b", "IPInstance 10-0-0-7")
    assert pool.holder_is("10.0.0.7", "ns/a")
    assert not pool.holder_is("10.0.0.7", "ns/b")


def test_an_assigned_address_is_skipped_by_next_fit() -> None:
    pool = SubnetPool(subnet("s", "10.0.0.0/24", gateway="10.0.0.1"))
    pool.assign("10.0.0.2", "ns/a")
    assert pool.allocate("ns/b").address == "10.0.0.3"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "is the gateway of subnet s"),
        ("10.0.0.9", r"is excluded \(spec.range.excludeIPs\) of subnet s"),
        ("10.0.0.200", "is outside the range 10.0.0.10-10.0.0.100 of subnet s"),
        ("10.0.1.5", r"is outside subnet s \(10.0.0.0/24\)"),
        ("fd00::5", "is not an IPv4 address"),
        ("10.0.0.300", "is not a valid IP address"),
    ],
)
def test_assign_refuses_addresses_that_are_not_allocatable(address: str, reason: str) -> None:
    spec = subnet("s", "10.0.0.0/24", start="10.0.0.10", end="10.0.0.100", gateway="10.0.0.1", exclude_ips=["10.0.0.9"])
    pool = SubnetPool(spec)
    with pytest.raises(InvalidValue, match=f"^address {address}: {reason}$"):
        pool.assign(address, "ns/a")
    assert pool.used == 0


def test_gateway_inside_start_end_is_refused_too() -> None:
    pool = SubnetPool(subnet("s", "10.0.0.0/24", gateway="10.0.0.50", exclude_ips=["10.0.0.9"]))
    with pytest.raises(InvalidValue, match="is the gateway"):
        pool.assign("10.0.0.50", "ns/a")
    with pytest.raises(InvalidValue, match="is excluded"):
        pool.assign("10.0.0.9", "ns/a")
    assert pool.total == 252


def test_release_checks_the_owner_when_given() -> None:
    pool = SubnetPool(subnet("s", "10.0.0.0/24", gateway="10.0.0.1"))
    address = pool.allocate("ns/a").address
    assert not pool.release(address, "ns/b")
    assert pool.holder_is(address, "ns/a")
    assert pool.release(address, "ns/a")
    assert not pool.release(address, "ns/a")  # already free
    assert not pool.release("10.0.1.1")  # not this pool's
    assert pool.used == 0


def test_releasing_a_reserved_address_keeps_it_out_of_next_fit() -> None:
    pool = SubnetPool(subnet("s", "10.0.0.0/30", reserved_ips=["10.0.0.2"]))
    pool.assign("10.0.0.2", "ns/sts-0")
    assert pool.release("10.0.0.2")
    assert pool.allocate("ns/a").address == "10.0.0.1"
    with pytest.raises(NoAddressAvailable):
        pool.allocate("ns/b")


# --- bad specs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field", "value"),
    [
        (subnet("s", "10.0.0/24"), "spec.range.cidr", "10.0.0/24"),
        (subnet("s", "10.0.0.1/24"), "spec.range.cidr", "10.0.0.1/24"),
        (subnet("s", "10.0.0.0/31"), "spec.range.cidr", "10.0.0.0/31"),
        (subnet("s", "fd00::/127"), "spec.range.cidr", "fd00::/127"),
        (replace(subnet("s", "fd00::/64"), range=AddressRange("4", "fd00::/64")), "spec.range.cidr", "fd00::/64"),
        (replace(subnet("s", "10.0.0.0/24"), range=AddressRange("5", "10.0.0.0/24")), "spec.range.version", "5"),
        (subnet("s", "10.0.0.0/24", start="fd00::1"), "spec.range.start", "fd00::1"),
        (subnet("s", "10.0.0.0/24", start="10.0.1.1"), "spec.range.start", "10.0.1.1"),
        (subnet("s", "10.0.0.0/24", start="10.0.0.0"), "spec.range.start", "10.0.0.0"),
        (subnet("s", "10.0.0.0/24", end="10.0.0.255"), "spec.range.end", "10.0.0.255"),
        (subnet("s", "10.0.0.0/24", start="10.0.0.50", end="10.0.0.40"), "spec.range.start", "10.0.0.50"),
        (subnet("s", "10.0.0.0/24", gateway="10.0.9.1"), "spec.range.gateway", "10.0.9.1"),
        (subnet("s", "10.0.0.0/24", gateway="gw"), "spec.range.gateway", "gw"),
        (subnet("s", "10.0.0.0/24", reserved_ips=["10.0.0.5", "10.0.0.x"]), "spec.range.reservedIPs[1]", "10.0.0.x"),
        (subnet("s", "10.0.0.0/24", exclude_ips=["10.1.0.5"]), "spec.range.excludeIPs[0]", "10.1.0.5"),
        (subnet("s", "fd00::/64"), "spec.range", "fd00::1-fd00::ffff:ffff:ffff:ffff"),
        (subnet("s", "fd00::/64", start="fd00::1", end="fd00::1:1"), "spec.range", "fd00::1-fd00::1:1"),
        (subnet("s", "10.0.0.0/8", start="10.0.0.1"), "spec.range", "10.0.0.1-10.255.255.254"),
    ],
)
def test_a_bad_spec_is_refused_naming_field_and_value(spec: Subnet, field: str, value: str) -> None:
    with invalid(field, value):
        SubnetPool(spec)


def test_capacity_up_to_65536_addresses_is_accepted() -> None:
    pool = SubnetPool(subnet("s", "fd00::/64", start="fd00::1", end="fd00::1:0"))
    assert pool.total == 65_536
    assert pool.allocate("ns/a").address == "fd00::1"


def test_ipam_accepts_only_what_admission_accepts() -> None:
    with invalid("spec.range.version", "None"):
        SubnetPool(replace(subnet("s", "fd00::/120"), range=AddressRange("", "fd00::/120")))


# --- spec updates -----------------------------------------------------------------------------


def test_updating_reserved_ips_keeps_allocations_and_recounts() -> None:
    spec = subnet("s", "10.0.0.0/29", gateway="10.0.0.1")
    pool = SubnetPool(spec)
    a, b = pool.allocate("ns/a").address, pool.allocate("ns/b").address  # .2 .3
    pool.update(replace(spec, range=replace(spec.range, reserved_ips=("10.0.0.3", "10.0.0.4"))))
    assert (pool.total, pool.used) == (3, 1)  # .2 .5 .6 allocatable; .3 now reserved, still held
    assert pool.holder_is(a, "ns/a") and pool.holder_is(b, "ns/b")
    assert pool.allocate("ns/c").address == "10.0.0.5"  # .4 is reserved now
    pool.update(spec)
    assert (pool.total, pool.used) == (5, 3)
    assert pool.allocate("ns/d").address == "10.0.0.6"
    assert pool.allocate("ns/e").address == "10.0.0.4"  # free again after the update


def test_updating_private_and_net_id_is_allowed() -> None:
    spec = subnet("s", "10.0.0.0/24", gateway="10.0.0.1")
    pool = SubnetPool(spec)
    pool.allocate("ns/a")
    pool.update(replace(spec, config=SubnetConfig(private=True), net_id=12))
    assert pool.private
    assert pool.allocate("ns/b").net_id == 12
    assert pool.used == 2


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"gateway": "10.0.0.254"}, "spec.range.gateway"),
        ({"start": "10.0.0.10"}, "spec.range.start"),
        ({"exclude_ips": ("10.0.0.9",)}, "spec.range.excludeIPs"),
        ({"cidr": "10.0.0.0/23"}, "spec.range.cidr"),
    ],
)
def test_updating_the_range_is_refused_and_changes_nothing(changes: dict[str, Any], field: str) -> None:
    spec = subnet("s", "10.0.0.0/24", gateway="10.0.0.1")
    pool = SubnetPool(spec)
    pool.allocate("ns/a")
    changed = replace(spec, range=replace(spec.range, reserved_ips=("10.0.0.2",), **changes))
    with pytest.raises(InvalidValue, match=f"^{field} .*: is immutable"):
        pool.update(changed)
    assert (pool.total, pool.used, pool.subnet) == (253, 1, spec)


def test_a_bad_update_is_refused_before_anything_changes() -> None:
    spec = subnet("s", "10.0.0.0/24", gateway="10.0.0.1")
    pool = SubnetPool(spec)
    with invalid("spec.range.reservedIPs[0]", "nope"):
        pool.update(replace(spec, range=replace(spec.range, reserved_ips=("nope",))))
    with invalid("spec.network", "other"):
        pool.update(replace(spec, network="other"))
    assert pool.total == 253


# --- IPAM: networks, rotation, dual stack ------------------------------------------------------


def cluster(*subnets: Subnet, network: Network | None = None) -> IPAM:
    ipam = IPAM()
    ipam.set_network(network or Network("net", net_id=100))
    for spec in subnets:
        ipam.set_subnet(spec)
    return ipam


def test_subnets_rotate_starting_after_the_last_allocated_subnet() -> None:
    ipam = cluster(
        subnet("b", "10.0.1.0/24", gateway="10.0.1.1"),
        subnet("a", "10.0.0.0/24", gateway="10.0.0.1"),
        subnet("c", "10.0.2.0/24", gateway="10.0.2.1"),
        network=Network("net", status=NetworkStatus(last_allocated_subnet="a")),
    )
    used = [ipam.allocate("net", f"ns/p{i}")[0].subnet for i in range(4)]
    assert used == ["b", "c", "a", "b"]
    assert ipam.network_status("net").last_allocated_subnet == "b"


def test_rotation_skips_private_and_full_subnets_and_uses_a_private_one_when_named() -> None:
    ipam = cluster(
        subnet("a", "10.0.0.0/30"),  # two addresses
        subnet("b", "10.0.1.0/24", private=True),
        subnet("c", "10.0.2.0/30"),
    )
    used = [ipam.allocate("net", f"ns/p{i}")[0].subnet for i in range(4)]
    assert used == ["a", "c", "a", "c"]
    assert not ipam.has_free("net")
    with pytest.raises(NoAddressAvailable, match=r"network net \(IPv4\)"):
        ipam.allocate("net", "ns/p4")
    assert ipam.allocate("net", "ns/p4", subnets={4: "b"})[0].subnet == "b"


def test_rotation_is_kept_per_ip_version() -> None:
    ipam = cluster(
        subnet("a4", "10.0.0.0/24"),
        subnet("b4", "10.0.1.0/24"),
        subnet("a6", "fd00::/120"),
        subnet("b6", "fd00:1::/120"),
        network=Network("net", status=NetworkStatus(last_allocated_subnet="b4", last_allocated_ipv6_subnet="a6")),
    )
    first = ipam.allocate("net", "ns/p0", IPFamily.DUAL_STACK)
    assert [(a.version, a.subnet) for a in first] == [(4, "a4"), (6, "b6")]
    assert ipam.allocate("net", "ns/p1", IPFamily.IPV6)[0].subnet == "a6"
    status = ipam.network_status("net")
    assert (status.last_allocated_subnet, status.last_allocated_ipv6_subnet) == ("a4", "a6")


def test_a_later_network_status_does_not_move_the_rotation_back() -> None:
    ipam = cluster(subnet("a", "10.0.0.0/24"), subnet("b", "10.0.1.0/24"))
    assert ipam.allocate("net", "ns/p0")[0].subnet == "a"
    ipam.set_network(Network("net", status=NetworkStatus(last_allocated_subnet="b")))
    assert ipam.allocate("net", "ns/p1")[0].subnet == "b"


def test_dual_stack_allocates_both_or_neither() -> None:
    ipam = cluster(subnet("v4", "10.0.0.0/24", gateway="10.0.0.1"), subnet("v6", "fd00::/126"))
    allocated = [ipam.allocate("net", f"ns/p{i}", IPFamily.DUAL_STACK) for i in range(3)]
    assert [[a.version for a in pair] for pair in allocated] == [[4, 6]] * 3
    before_v4, before_net = ipam.subnet_status("v4"), ipam.network_status("net")
    with pytest.raises(NoAddressAvailable, match="IPv6"):
        ipam.allocate("net", "ns/p3", IPFamily.DUAL_STACK)
    # The IPv4 half was given back, and next-fit and the rotation are where they were.
    assert ipam.subnet_status("v4") == before_v4
    assert ipam.network_status("net") == before_net
    assert not ipam.holder_is("10.0.0.5", "ns/p3")
    assert ipam.allocate("net", "ns/p3")[0].address == "10.0.0.5"
    assert ipam.has_free("net", IPFamily.IPV4)
    assert not ipam.has_free("net", IPFamily.DUAL_STACK)


def test_named_subnets_are_checked_against_network_and_version() -> None:
    ipam = cluster(subnet("v4", "10.0.0.0/24"), subnet("v6", "fd00::/120"), subnet("other", "10.9.0.0/24", "net2"))
    pair = ipam.allocate("net", "ns/a", IPFamily.DUAL_STACK, subnets={4: "v4", 6: "v6"})
    assert [a.subnet for a in pair] == ["v4", "v6"]
    with invalid("subnets[4]", "v6"):
        ipam.allocate("net", "ns/b", subnets={4: "v6"})
    with invalid("subnets[4]", "other"):
        ipam.allocate("net", "ns/b", subnets={4: "other"})
    with invalid("subnets[6]", "missing"):
        ipam.allocate("net", "ns/b", IPFamily.IPV6, subnets={6: "missing"})
    with invalid("network", "nowhere"):
        ipam.allocate("nowhere", "ns/b")
    assert ipam.subnet_status("v4").used == 1


def test_net_id_is_inherited_from_the_network_unless_the_subnet_sets_one() -> None:
    ipam = IPAM()
    ipam.set_subnet(subnet("own", "10.0.0.0/24", net_id=5))
    ipam.set_subnet(subnet("inherits", "10.0.1.0/24"))
    assert ipam.allocate("net", "ns/a", subnets={4: "inherits"})[0].net_id is None
    ipam.set_network(Network("net", net_id=100))
    assert ipam.allocate("net", "ns/b", subnets={4: "inherits"})[0].net_id == 100
    assert ipam.allocate("net", "ns/c", subnets={4: "own"})[0].net_id == 5


def test_ipam_assign_finds_the_subnet_by_address_or_by_name() -> None:
    ipam = cluster(
        subnet("a", "10.0.0.0/24", gateway="10.0.0.1", reserved_ips=["10.0.0.9"]),
        subnet("other", "10.1.0.0/24", network="net2"),
    )
    assert ipam.assign("net", "10.0.0.9", "ns/sts-0").subnet == "a"
    assert ipam.assign("net", "10.0.0.10", "ns/sts-1", subnet="a").address == "10.0.0.10"
    assert ipam.subnet_status("a").used == 1
    with pytest.raises(InvalidValue, match="is the gateway of subnet a"):
        ipam.assign("net", "10.0.0.1", "ns/x")
    with invalid("address", "10.1.0.5"):
        ipam.assign("net", "10.1.0.5", "ns/x")
    with invalid("subnet", "other"):
        ipam.assign("net", "10.1.0.5", "ns/x", subnet="other")
    with invalid("address", "bad"):
        ipam.assign("net", "bad", "ns/x")


def test_ipam_release_finds_the_pool_by_address() -> None:
    ipam = cluster(subnet("a", "10.0.0.0/24"), subnet("b", "fd00::/120"))
    v4, v6 = ipam.allocate("net", "ns/a", IPFamily.DUAL_STACK)
    assert not ipam.release(v6.address, "ns/other")
    assert ipam.release(v6.address, "ns/a")
    assert ipam.release(v4.address)
    assert not ipam.release("192.168.1.1")
    assert ipam.network_status("net").statistics == Statistics(total=254, used=0, available=254)


def test_same_cidr_with_disjoint_ranges_is_two_pools_and_overlap_is_refused() -> None:
    ipam = cluster(
        subnet("low", "10.0.0.0/24", start="10.0.0.10", end="10.0.0.19"),
        subnet("high", "10.0.0.0/24", start="10.0.0.20", end="10.0.0.29"),
    )
    assert ipam.allocate("net", "ns/a", subnets={4: "high"})[0].address == "10.0.0.20"
    assert ipam.release("10.0.0.20", "ns/a")
    with invalid("spec.range", "10.0.0.15-10.0.0.24"):
        ipam.set_subnet(subnet("mid", "10.0.0.0/24", start="10.0.0.15", end="10.0.0.24"))
    with pytest.raises(InvalidValue, match="subnet mid"):
        ipam.subnet_status("mid")


def test_set_subnet_again_keeps_allocations_and_remove_subnet_drops_them() -> None:
    spec = subnet("a", "10.0.0.0/24", gateway="10.0.0.1")
    ipam = cluster(spec)
    address = ipam.allocate("net", "ns/a")[0].address
    ipam.set_subnet(replace(spec, range=replace(spec.range, reserved_ips=("10.0.0.100",))))
    assert ipam.holder_is(address, "ns/a")
    assert ipam.subnet_status("a") == SubnetStatus(total=252, used=1, available=251, last_allocated_ip=address)
    ipam.remove_subnet("a")
    assert not ipam.release(address)
    assert ipam.network_status("net").subnet_list == ()
    ipam.remove_subnet("a")  # idempotent


def test_network_status_sums_per_family_and_dual_stack_is_the_smaller() -> None:
    ipam = cluster(
        subnet("a", "10.0.0.0/24", gateway="10.0.0.1"),
        subnet("b", "10.0.1.0/28", private=True),
        subnet("c", "fd00::/124"),
        network=Network("net", status=NetworkStatus(node_list=("n1", "n2"))),
    )
    ipam.allocate("net", "ns/a", IPFamily.DUAL_STACK)
    status = ipam.network_status("net")
    assert status == NetworkStatus(
        last_allocated_subnet="a",
        last_allocated_ipv6_subnet="c",
        subnet_list=("a", "b", "c"),
        node_list=("n1", "n2"),
        statistics=Statistics(total=253 + 14, used=1, available=266),
        ipv6_statistics=Statistics(total=15, used=1, available=14),
        dual_stack_statistics=Statistics(available=14),
    )


def test_removing_a_network_keeps_its_subnets() -> None:
    ipam = cluster(subnet("a", "10.0.0.0/24"))
    ipam.remove_network("net")
    assert ipam.allocate("net", "ns/a")[0].net_id is None
