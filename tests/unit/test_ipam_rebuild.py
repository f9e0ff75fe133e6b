"""IPAM state rebuilt from IPInstances (operator restart): every claim is held, nothing is picked
silently, and what does not add up comes back as a report."""

from __future__ import annotations

from typing import Any

import pytest

from hybridlay.errors import AddressConflict, InvalidValue, NoAddressAvailable
from hybridlay.ipam import IPAM, ClaimProblem
from hybridlay.ipam.claims import parse_claim_address
from hybridlay.model import (
    AddressRange,
    Binding,
    InstanceAddress,
    IPFamily,
    IPInstance,
    Network,
    Subnet,
    ipinstance_from_resource,
)


def resource(
    name: str, ip: str, subnet: str = "a", pod: str = "p", namespace: str = "ns", **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.hybridlay.io/v1",
        "kind": "IPInstance",
        "metadata": {"name": name, **meta},
        "spec": {
            "network": "net",
            "subnet": subnet,
            "address": {"version": "6" if ":" in ip else "4", "ip": ip},
            "binding": {"podNamespace": namespace, "podName": pod, "nodeName": "node-1"},
        },
    }


@pytest.fixture
def ipam() -> IPAM:
    ipam = IPAM()
    ipam.set_network(Network("net"))
    ipam.set_subnet(
        Subnet("a", "net", AddressRange("4", "10.0.0.0/24", gateway="10.0.0.1", reserved_ips=("10.0.0.50",)))
    )
    ipam.set_subnet(Subnet("b", "net", AddressRange("4", "10.0.1.0/24", start="10.0.1.10", end="10.0.1.20")))
    ipam.set_subnet(Subnet("v6", "net", AddressRange("6", "fd00::/120")))
    return ipam


def test_rebuild_holds_every_claim_from_dicts_and_model_objects(ipam: IPAM) -> None:
    dicts = [
        resource("10-0-0-5", "10.0.0.5/24", pod="p1"),
        resource("10-0-0-50", "10.0.0.50/24", pod="sts-0"),  # reserved: held, not counted as used
        resource("10-0-1-12", "10.0.1.12/24", subnet="b", pod="p2"),
        resource("fd00-0-0-0-0-0-0-7", "fd00::7/120", subnet="v6", pod="p1"),
    ]
    for instances in (dicts, [ipinstance_from_resource(d) for d in dicts]):
        assert ipam.rebuild(instances) == []
        assert ipam.holder_is("10.0.0.5", "ns/p1")
        assert ipam.holder_is("10.0.0.50", "ns/sts-0")
        assert ipam.holder_is("10.0.1.12", "ns/p2")
        assert ipam.holder_is("fd00::7", "ns/p1")
        assert [ipam.subnet_status(n).used for n in ("a", "b", "v6")] == [1, 1, 1]
        with pytest.raises(AddressConflict):
            ipam.assign("net", "10.0.0.5", "ns/other")
        assert ipam.assign("net", "10.0.0.5", "ns/p1").address == "10.0.0.5"  # same owner again


def test_rebuild_replaces_what_was_held_before(ipam: IPAM) -> None:
    first = ipam.allocate("net", "ns/old")[0].address
    assert ipam.rebuild([resource("10-0-0-9", "10.0.0.9/24")]) == []
    assert not ipam.holder_is(first, "ns/old")
    assert ipam.subnet_status("a").used == 1
    assert ipam.assign("net", first, "ns/new").address == first


def test_terminating_instances_claim_nothing(ipam: IPAM) -> None:
    gone = resource("10-0-0-5", "10.0.0.5/24", deletionTimestamp="2026-01-01T00:00:00Z")
    model = IPInstance(
        name="10-0-0-6",
        network="net",
        subnet="a",
        address=InstanceAddress(version="4", ip="10.0.0.6/24"),
        binding=Binding(pod_name="p", pod_namespace="ns"),
        terminating=True,
    )
    assert ipam.rebuild([gone, model]) == []
    assert ipam.subnet_status("a").used == 0


def test_one_address_in_two_instances_is_reported_and_stays_contested(ipam: IPAM) -> None:
    problems = ipam.rebuild(
        [resource("10-0-0-5", "10.0.0.5/24", pod="p1"), resource("10-0-0-6", "10.0.0.5/24", pod="p2")]
    )
    conflicts = [p for p in problems if not isinstance(p, ClaimProblem)]
    assert [(c.address, c.holders) for c in conflicts] == [("10.0.0.5", ("10-0-0-5", "10-0-0-6"))]
    misnamed = [p for p in problems if isinstance(p, ClaimProblem)]
    assert [(p.address, p.holders) for p in misnamed] == [("10.0.0.5", ("10-0-0-6",))]
    assert "expected 10-0-0-5" in misnamed[0].reason
    # Neither claimant holds it, nobody else can take it.
    assert not ipam.holder_is("10.0.0.5", "ns/p1")
    assert not ipam.holder_is("10.0.0.5", "ns/p2")
    with pytest.raises(AddressConflict):
        ipam.assign("net", "10.0.0.5", "ns/p1")
    # The misnamed instance also blocks the address its name spells.
    assert ipam.holder_is("10.0.0.6", "ns/p2")
    assert ipam.subnet_status("a").used == 2
    # Once one claimant lets go, the other holds it.
    assert ipam.release("10.0.0.5", "ns/p2")
    assert ipam.holder_is("10.0.0.5", "ns/p1")
    assert ipam.subnet_status("a").used == 2


def test_a_contested_address_is_not_handed_out_by_next_fit() -> None:
    ipam = IPAM()
    ipam.set_subnet(Subnet("tiny", "net", AddressRange("4", "10.0.0.0/30")))
    problems = ipam.rebuild(
        [resource("10-0-0-1", "10.0.0.1/30", "tiny", pod="x"), resource("other", "10.0.0.1/30", "tiny", pod="y")]
    )
    assert any(type(p) is AddressConflict for p in problems)
    assert ipam.allocate("net", "ns/z")[0].address == "10.0.0.2"
    with pytest.raises(NoAddressAvailable):
        ipam.allocate("net", "ns/w")
    assert ipam.release("10.0.0.1")  # without an owner: freed for good
    assert ipam.allocate("net", "ns/w")[0].address == "10.0.0.1"


def test_same_owner_twice_is_not_a_conflict_but_the_wrong_name_is_reported(ipam: IPAM) -> None:
    problems = ipam.rebuild([resource("10-0-0-5", "10.0.0.5/24"), resource("10-0-0-7", "10.0.0.5/24")])
    assert [type(p) for p in problems] == [ClaimProblem]
    assert ipam.holder_is("10.0.0.5", "ns/p")
    assert ipam.holder_is("10.0.0.7", "ns/p")


def test_unknown_subnet_and_untracked_addresses_are_reported(ipam: IPAM) -> None:
    problems = ipam.rebuild(
        [
            resource("10-0-0-5", "10.0.0.5/24", subnet="gone"),  # still held: the address is a's
            resource("10-0-0-6", "10.0.0.6/24", subnet="b"),  # wrong subnet named
            resource("10-9-0-1", "10.9.0.1/24"),  # in no subnet
            resource("10-0-0-1", "10.0.0.1/24"),  # the gateway
            resource("10-0-1-30", "10.0.1.30/24", subnet="b"),  # outside b's start-end
            resource("x", "not-an-ip/24"),
            {"metadata": {"name": "broken"}, "spec": {"subnet": "a", "address": {"ip": 5}}},
        ]
    )
    assert all(isinstance(p, ClaimProblem) for p in problems)
    reasons = {p.address: p.reason for p in problems if isinstance(p, ClaimProblem)}
    assert reasons == {
        "10.0.0.5": "spec.subnet gone is not a known subnet (subnet a does)",
        "10.0.0.6": "spec.subnet b does not hold it (subnet a does)",
        "10.9.0.1": "is in no known subnet's start-end",
        "10.0.0.1": "is the gateway of subnet a",
        "10.0.1.30": "is in no known subnet's start-end",
        "not-an-ip": "spec.address.ip is not an IP address",
        "5": "metadata.name, spec.subnet, spec.address.ip or binding not strings",
    }
    assert ipam.holder_is("10.0.0.5", "ns/p")
    assert ipam.holder_is("10.0.0.6", "ns/p")
    assert ipam.subnet_status("a").used == 2
    gone = next(p for p in problems if p.address == "10.0.0.5")
    assert str(gone) == (
        "address 10.0.0.5 of IPInstance 10-0-0-5: spec.subnet gone is not a known subnet (subnet a does)"
    )


def test_rebuild_keeps_next_fit_and_rotation_going(ipam: IPAM) -> None:
    ipam.allocate("net", "ns/p0", IPFamily.DUAL_STACK)  # a: .2, v6: ::1
    ipam.rebuild([resource("10-0-0-3", "10.0.0.3/24")])
    assert ipam.allocate("net", "ns/p1")[0].address == "10.0.1.10"  # rotation moved on to b
    assert ipam.allocate("net", "ns/p2")[0].address == "10.0.0.4"  # after .2, .3 is held


def test_a_bad_instance_type_changes_nothing(ipam: IPAM) -> None:
    address = ipam.allocate("net", "ns/p0")[0].address
    with pytest.raises(AttributeError):
        ipam.rebuild([resource("10-0-0-9", "10.0.0.9/24"), 42])  # type: ignore[list-item]
    assert ipam.holder_is(address, "ns/p0")
    assert not ipam.holder_is("10.0.0.9", "ns/p")


def test_an_empty_ipam_rebuilds_from_nothing_and_knows_no_subnet() -> None:
    ipam = IPAM()
    assert ipam.rebuild([]) == []
    with pytest.raises(InvalidValue, match=r"^subnet nope: is not a known subnet$"):
        ipam.subnet_status("nope")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("10.0.0.5", (4, 0x0A000005, "10-0-0-5")),
        ("255.255.255.255", (4, 0xFFFFFFFF, "255-255-255-255")),
        ("fd00::5", (6, 0xFD00 << 112 | 5, "fd00-0-0-0-0-0-0-5")),
        ("10.0.0.256", None),
        ("010.0.0.5", None),
        ("10.0.0", None),
        ("10.0.0.5 ", None),
        ("\u0661\u0660.0.0.5", None),  # Arabic-Indic digits are digits to str.isdigit, not to an address
        ("", None),
    ],
)
def test_claimed_addresses_parse_strictly(text: str, parsed: tuple[int, int, str] | None) -> None:
    assert parse_claim_address(text) == parsed
