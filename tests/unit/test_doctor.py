"""The consistency check's rules (hybridlay.doctor), on objects made here: each finding and its absence."""

from __future__ import annotations

import datetime

from hybridlay import doctor
from hybridlay.model import (
    AddressRange,
    Binding,
    InstanceAddress,
    IPInstance,
    Network,
    NetworkStatus,
    NetworkType,
    ReferredObject,
    Statistics,
    Subnet,
    SubnetStatus,
)
from hybridlay.pod_request import PodSettings

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
OLD = "2026-12-04T11:00:00Z"
NEW = "2026-12-04T11:59:55Z"
GRACE = datetime.timedelta(seconds=30)


def pod(name: str, uid: str, created: str = OLD, **meta: object) -> dict:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": uid, "creationTimestamp": created, **meta},
        "spec": {"nodeName": "node1", "containers": [{"name": "c"}]},
        "status": {"phase": "Running"},
    }


def instance(
    address: str, pod_name: str, pod_uid: str, referred: ReferredObject | None = None, name: str | None = None
) -> IPInstance:
    version = "6" if ":" in address else "4"
    prefix = "120" if version == "6" else "24"
    return IPInstance(
        name=name or address.replace(".", "-"),
        network="overlay",
        subnet="ov6" if version == "6" else "ov4",
        address=InstanceAddress(version=version, ip=f"{address}/{prefix}"),
        binding=Binding(pod_name=pod_name, pod_namespace="ns", pod_uid=pod_uid, referred_object=referred),
    )


STS = ReferredObject("StatefulSet", "web", "sts-1", "apps/v1")


def test_an_address_of_a_gone_pod_or_of_an_earlier_pod_is_leaked() -> None:
    found = doctor.check_addresses(
        [instance("10.0.0.2", "a", "a1"), instance("10.0.0.3", "b", "b-old"), instance("10.0.0.4", "c", "c1")],
        [pod("b", "b-new"), pod("c", "c1")],
        live_workload_uids=set(),
    )
    assert [str(f) for f in found] == [
        "leaked 10-0-0-2: bound to ns/a, which is gone",
        "leaked 10-0-0-3: bound to an earlier pod ns/b (UID b-old, now b-new)",
    ]


def test_a_kept_address_is_leaked_only_when_its_workload_is_gone_and_known_to_be() -> None:
    kept = instance("10.0.0.5", "web-0", "", referred=STS)
    assert doctor.check_addresses([kept], [], live_workload_uids={"sts-1"}) == []
    assert [f.kind for f in doctor.check_addresses([kept], [], live_workload_uids=set())] == ["leaked"]
    assert doctor.check_addresses([kept], [], live_workload_uids=set(), unknown_owner_uids={"sts-1"}) == []


def test_a_pod_holding_two_addresses_of_one_version_is_duplicated() -> None:
    found = doctor.check_addresses(
        [instance("10.0.0.2", "a", "a1"), instance("10.0.0.9", "a", "a1")], [pod("a", "a1")], set()
    )
    assert [str(f) for f in found] == ["duplicated ns/a: holds 2 IPv4 addresses in overlay: 10-0-0-2, 10-0-0-9"]


def test_a_pod_without_the_addresses_it_asks_for_is_missing_after_the_grace_period() -> None:
    dual = pod("d", "d1", annotations={"networking.hybridlay.io/ip-family": "DualStack"})
    pods = [pod("a", "a1"), pod("fresh", "f1", created=NEW), dual, pod("h", "h1")]
    pods[3]["spec"]["hostNetwork"] = True
    found = doctor.check_missing(pods, {}, [instance("10.0.0.7", "d", "d1")], PodSettings(), now=NOW, grace=GRACE)
    assert [str(f) for f in found] == [
        "missing ns/a: has no IPv4 address (IPv4 asked)",
        "missing ns/d: has no IPv6 address (DualStack asked)",
    ]


OVERLAY = Network("overlay", NetworkType.OVERLAY, net_id=4)


def subnet(used: int) -> Subnet:
    return Subnet(
        "ov4",
        "overlay",
        AddressRange("4", "10.0.0.0/24"),
        status=SubnetStatus(total=254, used=used, available=254 - used),
    )


def test_counts_that_disagree_with_the_ipinstances_are_reported() -> None:
    instances = [instance("10.0.0.2", "a", "a1")]
    network = Network(
        "overlay", NetworkType.OVERLAY, net_id=4, status=NetworkStatus(statistics=Statistics(254, 1, 253))
    )
    assert doctor.check_records([network], [subnet(1)], instances) == []
    found = doctor.check_records([network], [subnet(3)], instances)
    assert [str(f) for f in found] == [
        "status Subnet ov4: used 3 (IPInstances give 1), available 251 (IPInstances give 253)"
    ]


def test_claims_ipam_cannot_take_are_reported() -> None:
    misnamed = instance("10.0.0.2", "a", "a1", name="10-0-0-8")
    outside = instance("10.0.1.2", "b", "b1")
    found = doctor.check_records([OVERLAY], [subnet(0)], [misnamed, outside])
    assert {f.kind for f in found} >= {"invalid"}
    text = [str(f) for f in found if f.kind == "invalid"]
    assert any(t.startswith("invalid 10-0-0-8: 10.0.0.2 the name does not match the address") for t in text), text
    assert any(t.startswith("invalid 10-0-1-2: 10.0.1.2 is in no known subnet") for t in text), text


def test_an_operators_view_is_compared_with_the_apis() -> None:
    instances = [instance("10.0.0.2", "a", "a1"), instance("10.0.0.3", "b", "b1")]
    assert doctor.check_view("op-1", {"10-0-0-2": "ns/a", "10-0-0-3": "ns/b"}, instances) == []
    found = doctor.check_view("op-1", {"10-0-0-2": "ns/x", "10-0-0-9": "ns/c"}, instances)
    assert [str(f) for f in found] == [
        "view op-1: does not know 10-0-0-3 (held by ns/b)",
        "view op-1: remembers 10-0-0-2 for ns/x, the API for ns/a",
        "view op-1: remembers 10-0-0-9 for ns/c, which no IPInstance records",
    ]
