"""A pod's network request: where each setting comes from, the pools by ordinal, and the pod admission rules."""

from __future__ import annotations

from typing import Any

import pytest

from hybridlay import names
from hybridlay.model import (
    AddressRange,
    Binding,
    InstanceAddress,
    IPFamily,
    IPInstance,
    Network,
    NetworkType,
    ReferredObject,
    Subnet,
)
from hybridlay.pod_request import (
    IP_FAMILY,
    IP_POOL,
    IP_RETAIN,
    MAC_POOL,
    NETWORK,
    NETWORK_TYPE,
    SUBNET,
    PodNetworkRequest,
    PodSettings,
    ResolvedPodNetwork,
    StatefulRef,
    parse_pod_request,
    resolve_pod_network,
    validate_pod_create,
)
from hybridlay.validation import Violation

TYPE, FAMILY, RETAIN = NETWORK_TYPE, IP_FAMILY, IP_RETAIN

NETWORKS = {
    n.name: n
    for n in [
        Network("underlay-a", NetworkType.UNDERLAY, net_id=100, node_selector={"rack": "r1"}),
        Network("overlay", NetworkType.OVERLAY, net_id=4),
    ]
}
SUBNETS = {
    s.name: s
    for s in [
        Subnet(
            "vlan100",
            "underlay-a",
            AddressRange("4", "192.168.56.0/24", gateway="192.168.56.1", exclude_ips=("192.168.56.30",)),
            net_id=100,
        ),
        Subnet("vlan100-v6", "underlay-a", AddressRange("6", "fd00:56::/120", gateway="fd00:56::1")),
        Subnet("ov4", "overlay", AddressRange("4", "100.10.0.0/24")),
        Subnet("ov6", "overlay", AddressRange("6", "fd00:10::/120")),
    ]
}
SETTINGS = PodSettings()


def pod(
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    name: str = "web-1",
    owner_kind: str | None = "StatefulSet",
    host_network: bool = False,
) -> dict[str, Any]:
    """A pod of StatefulSet ``web`` (ordinal 1 by default), or a bare pod with ``owner_kind=None``."""
    metadata: dict[str, Any] = {"name": name, "namespace": "ns1"}
    if annotations:
        metadata["annotations"] = annotations
    if labels:
        metadata["labels"] = labels
    if owner_kind:
        metadata["ownerReferences"] = [{"kind": owner_kind, "name": "web", "uid": "uid-web", "controller": True}]
    return {"metadata": metadata, "spec": {"hostNetwork": host_network, "containers": []}}


def namespace(annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "ns1", "annotations": annotations or {}, "labels": labels or {}}}


def parsed(pod_obj: dict[str, Any], ns: dict[str, Any] | None = None) -> PodNetworkRequest:
    request, violations = parse_pod_request(pod_obj, ns, SETTINGS)
    assert violations == []
    assert request is not None
    return request


def resolved(pod_obj: dict[str, Any], ns: dict[str, Any] | None = None) -> ResolvedPodNetwork:
    result, violations = resolve_pod_network(parsed(pod_obj, ns), NETWORKS, SUBNETS, SETTINGS)
    assert violations == [], [str(v) for v in violations]
    assert result is not None
    return result


def annotation(key: str) -> str:
    return f"metadata.annotations[{key}]"


# --- where settings come from ------------------------------------------------------------------


def test_defaults_for_a_bare_pod() -> None:
    request = parsed(pod(owner_kind=None, name="curl-7d9c"))
    assert request == PodNetworkRequest(
        network_type=None,
        network=None,
        subnets={},
        family=IPFamily.IPV4,
        retain=True,
        stateful=None,
        ip_pool=(),
        mac=None,
    )
    assert resolved(pod(owner_kind=None)) == ResolvedPodNetwork("overlay", NetworkType.OVERLAY, {}, IPFamily.IPV4)


def test_host_network_pods_make_no_request() -> None:
    assert parse_pod_request(pod({TYPE: "bogus"}, host_network=True), None, SETTINGS) == (None, [])
    assert validate_pod_create(pod({TYPE: "bogus"}, host_network=True), None, {}, {}, SETTINGS) == []


def test_namespace_default_applies_when_the_pod_says_nothing() -> None:
    result = resolved(pod(), namespace({TYPE: "Underlay", FAMILY: "DualStack"}))
    assert result == ResolvedPodNetwork(None, NetworkType.UNDERLAY, {}, IPFamily.DUAL_STACK)
    assert parsed(pod(), namespace({TYPE: "Underlay"})).sources[TYPE] == f"namespace.{annotation(TYPE)}"


def test_namespace_label_is_the_last_resort() -> None:
    assert resolved(pod(), namespace(labels={TYPE: "Underlay"})).type is NetworkType.UNDERLAY


def test_pod_annotation_beats_pod_label() -> None:
    request = parsed(pod({TYPE: "Overlay"}, labels={TYPE: "Underlay"}))
    assert request.network_type is NetworkType.OVERLAY
    assert request.sources[TYPE] == annotation(TYPE)


def test_pod_label_beats_namespace_annotation() -> None:
    assert parsed(pod(labels={TYPE: "Underlay"}), namespace({TYPE: "Overlay"})).network_type is NetworkType.UNDERLAY


def test_namespace_annotation_beats_namespace_label() -> None:
    ns = namespace({TYPE: "Underlay"}, labels={TYPE: "Overlay"})
    assert parsed(pod(), ns).network_type is NetworkType.UNDERLAY


def test_network_choice_is_not_mixed_across_pod_and_namespace() -> None:
    """The pod's network-type overrides its namespace's choice of network whole, instead of clashing with it."""
    result = resolved(pod({TYPE: "overlay"}), namespace({NETWORK: "underlay-a", FAMILY: "IPv6"}))
    assert result == ResolvedPodNetwork("overlay", NetworkType.OVERLAY, {}, IPFamily.IPV6)


@pytest.mark.parametrize("spelling", ["underlay", "UNDERLAY", "Underlay"])
def test_network_type_is_case_insensitive(spelling: str) -> None:
    assert parsed(pod({TYPE: spelling})).network_type is NetworkType.UNDERLAY


def test_network_and_type_follow_a_specified_subnet() -> None:
    result = resolved(pod({SUBNET: "vlan100-v6", FAMILY: "IPv6"}))
    assert result == ResolvedPodNetwork("underlay-a", NetworkType.UNDERLAY, {6: "vlan100-v6"}, IPFamily.IPV6)
    assert result.annotations() == {
        NETWORK: "underlay-a",
        SUBNET: "vlan100-v6",
        TYPE: "Underlay",
        FAMILY: "IPv6",
    }


def test_dual_stack_subnets() -> None:
    result = resolved(pod({NETWORK: "overlay", SUBNET: "ov4/ov6", FAMILY: "DualStack"}))
    assert result.subnets == {4: "ov4", 6: "ov6"}
    assert result.annotations()[SUBNET] == "ov4/ov6"


@pytest.mark.parametrize(
    ("pod_obj", "ns", "retain"),
    [
        (pod(), None, True),
        (pod({RETAIN: "false"}), None, False),
        (pod(), namespace({RETAIN: "False"}), False),
        (pod({RETAIN: "true"}), namespace({RETAIN: "false"}), True),
    ],
)
def test_ip_retain(pod_obj: dict[str, Any], ns: dict[str, Any] | None, retain: bool) -> None:
    assert parsed(pod_obj, ns).retain is retain


def test_custom_stateful_kind() -> None:
    settings = PodSettings(stateful_kinds=("StatefulSet", "AdvancedStatefulSet"))
    request, _ = parse_pod_request(pod(name="web-12", owner_kind="AdvancedStatefulSet"), None, settings)
    assert request is not None
    assert request.stateful == StatefulRef("AdvancedStatefulSet", "web", "uid-web", 12)
    assert parsed(pod(owner_kind="ReplicaSet", name="web-x1")).stateful is None


# --- pools ---------------------------------------------------------------------------------------


def test_ip_pool_with_two_entries_is_accepted_and_indexed_by_ordinal() -> None:
    """Hybridnet split the whole annotation on '/', so it refused exactly this."""
    annotations = {NETWORK: "underlay-a", IP_POOL: "192.168.56.101,192.168.56.102"}
    assert parsed(pod(annotations, name="web-0")).ip_pool == ("192.168.56.101",)
    assert parsed(pod(annotations, name="web-1")).ip_pool == ("192.168.56.102",)
    assert validate_pod_create(pod(annotations), None, NETWORKS, SUBNETS, SETTINGS) == []


def test_dual_stack_ip_pool_entries() -> None:
    annotations = {
        SUBNET: "vlan100/vlan100-v6",
        FAMILY: "DualStack",
        IP_POOL: "192.168.56.101/fd00:56::65, 192.168.56.102/FD00:56:0::66",
        MAC_POOL: "02:12:34:00:00:01,02:12:34:AB:00:02",
    }
    request = parsed(pod(annotations))
    assert request.ip_pool == ("192.168.56.102", "fd00:56::66")
    assert request.mac == "02:12:34:ab:00:02"
    assert validate_pod_create(pod(annotations), None, NETWORKS, SUBNETS, SETTINGS) == []


def pool_violations(annotations: dict[str, str], **pod_args: Any) -> list[Violation]:
    return validate_pod_create(pod(annotations, **pod_args), None, NETWORKS, SUBNETS, SETTINGS)


def assert_one(violations: list[Violation], field: str, shown: str) -> None:
    assert len(violations) == 1, [str(v) for v in violations]
    assert violations[0].field == field
    assert shown in str(violations[0])


U = {NETWORK: "underlay-a"}
DUAL = {SUBNET: "vlan100/vlan100-v6", FAMILY: "DualStack"}


@pytest.mark.parametrize(
    ("annotations", "field", "shown"),
    [
        ({**U, IP_POOL: "192.168.56.101,192.168.56.300"}, annotation(IP_POOL), "192.168.56.300 is not a valid IP"),
        ({**U, IP_POOL: "192.168.56.101,"}, annotation(IP_POOL), '"" is not a valid IP address (entry 1)'),
        ({**U, IP_POOL: "192.168.56.101,fd00:56::5"}, annotation(IP_POOL), "fd00:56::5 is not an IPv4 address"),
        (
            {**U, IP_POOL: "192.168.56.101,192.168.56.102/fd00:56::5"},
            annotation(IP_POOL),
            "must be a single IPv4 address",
        ),
        (
            {**DUAL, IP_POOL: "192.168.56.1/fd00:56::1,fd00:56::2/192.168.56.2"},
            annotation(IP_POOL),
            "fd00:56::2 is not an IPv4",
        ),
        ({**DUAL, IP_POOL: "192.168.56.1/fd00:56::1,192.168.56.2"}, annotation(IP_POOL), "must be v4address/v6address"),
        ({**U, IP_POOL: "192.168.56.101"}, annotation(IP_POOL), "has 1 entries, none for ordinal 1 of StatefulSet web"),
        ({**U, IP_POOL: "192.168.56.101,192.168.56.101"}, annotation(IP_POOL), "192.168.56.101 is listed twice"),
        (
            {**U, IP_POOL: "10.9.9.9,10.9.9.10"},
            annotation(IP_POOL),
            "10.9.9.10 is outside any subnet of network underlay-a",
        ),
        ({IP_POOL: "192.168.56.101,192.168.56.102"}, annotation(IP_POOL), f"needs {NETWORK} or {SUBNET}"),
        (
            {SUBNET: "vlan100", IP_POOL: "192.168.57.1,192.168.57.2"},
            annotation(IP_POOL),
            "192.168.57.2 is outside the specified subnet vlan100 (192.168.56.0/24)",
        ),
        (
            {**U, IP_POOL: "192.168.56.101,192.168.56.1"},
            annotation(IP_POOL),
            "192.168.56.1 is the gateway of subnet vlan100",
        ),
        (
            {**U, IP_POOL: "192.168.56.101,192.168.56.30"},
            annotation(IP_POOL),
            "192.168.56.30 is excluded from subnet vlan100",
        ),
        ({**U, MAC_POOL: "02:12:34:00:00:01,02:12:34:zz:00:02"}, annotation(MAC_POOL), "02:12:34:zz:00:02"),
        (
            {**U, MAC_POOL: "02:12:34:00:00:01,01:00:5e:00:00:01"},
            annotation(MAC_POOL),
            "01:00:5e:00:00:01 is a multicast",
        ),
        (
            {**U, MAC_POOL: "02:12:34:00:00:01,02:12:34:00:00:01"},
            annotation(MAC_POOL),
            "02:12:34:00:00:01 is listed twice",
        ),
    ],
)
def test_invalid_pools(annotations: dict[str, str], field: str, shown: str) -> None:
    assert_one(pool_violations(annotations), field, shown)


def test_pools_on_a_pod_of_no_stateful_workload_are_ignored_with_a_warning() -> None:
    """Hybridnet ignores them, so a Deployment's template may carry them: its pods must start (issue 15)."""
    annotations = {**U, IP_POOL: "192.168.56.101", MAC_POOL: "02:12:34:00:00:01"}
    assert pool_violations(annotations, owner_kind=None) == []
    request = parsed(pod(annotations, owner_kind=None))
    assert request.ip_pool == () and request.mac is None
    assert [w.field for w in request.warnings] == [annotation(IP_POOL), annotation(MAC_POOL)]
    assert "is ignored: only pods of a stateful workload (StatefulSet) take their ordinal's entry" in str(
        request.warnings[0]
    )


def test_stateful_pod_name_needs_an_ordinal() -> None:
    assert_one(
        pool_violations({}, name="web-abc"), "metadata.name", "web-abc is not <name>-<ordinal> of its StatefulSet web"
    )


# --- pod admission ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "field", "shown"),
    [
        ({TYPE: "Vlan"}, annotation(TYPE), "Vlan must be one of Underlay, Overlay, GlobalBGP"),
        ({FAMILY: "IPv5"}, annotation(FAMILY), "IPv5 must be one of IPv4, IPv6, DualStack"),
        ({RETAIN: "maybe"}, annotation(RETAIN), "maybe must be a boolean (1, t, T, TRUE, true, True, 0, f, F"),
        ({NETWORK: "nope"}, annotation(NETWORK), "nope does not exist"),
        ({SUBNET: "nope"}, annotation(SUBNET), "nope does not exist"),
        ({SUBNET: "a//b"}, annotation(SUBNET), "a//b must be a subnet name, or v4subnet/v6subnet"),
        ({SUBNET: "ov4/ov6"}, annotation(SUBNET), "ov4/ov6 must be a single subnet name for ip-family IPv4"),
        ({SUBNET: "ov4", FAMILY: "DualStack"}, annotation(SUBNET), "must be v4subnet/v6subnet for ip-family DualStack"),
        ({SUBNET: "ov6"}, annotation(SUBNET), "ov6 is an IPv6 subnet where an IPv4 one is needed"),
        ({NETWORK: "overlay", SUBNET: "vlan100"}, annotation(SUBNET), "vlan100 belongs to network underlay-a, not"),
        ({NETWORK: "underlay-a", TYPE: "Overlay"}, annotation(TYPE), "Overlay disagrees with network underlay-a"),
        ({SUBNET: "ov4", TYPE: "Underlay"}, annotation(TYPE), "Underlay disagrees with network overlay"),
        ({SUBNET: "vlan100/ov6", FAMILY: "DualStack"}, annotation(SUBNET), "names subnets of different networks"),
        ({TYPE: "GlobalBGP"}, annotation(TYPE), "GlobalBGP is requested, but no such network exists"),
    ],
)
def test_invalid_pod_create(annotations: dict[str, str], field: str, shown: str) -> None:
    assert_one(validate_pod_create(pod(annotations), None, NETWORKS, SUBNETS, SETTINGS), field, shown)


def test_namespace_violations_name_the_namespace_field() -> None:
    violations = validate_pod_create(pod(), namespace(labels={NETWORK: "nope"}), NETWORKS, SUBNETS, SETTINGS)
    assert_one(violations, f"namespace.metadata.labels[{NETWORK}]", "nope does not exist")


def test_default_overlay_needs_an_overlay_network() -> None:
    underlay_only = {"underlay-a": NETWORKS["underlay-a"]}
    violations = validate_pod_create(pod(), None, underlay_only, SUBNETS, SETTINGS)
    assert_one(violations, annotation(TYPE), "Overlay is the default (settings), but no such network exists")
    assert validate_pod_create(pod({TYPE: "Underlay"}), None, underlay_only, SUBNETS, SETTINGS) == []


def test_overlay_capacity_is_checked_when_known() -> None:
    asked: list[tuple[str, IPFamily]] = []

    def has_free(network: str, family: IPFamily) -> bool:
        asked.append((network, family))
        return family is not IPFamily.IPV6

    args = (None, NETWORKS, SUBNETS, SETTINGS)
    assert validate_pod_create(pod(), *args, has_free=has_free) == []
    assert_one(
        validate_pod_create(pod({FAMILY: "IPv6"}), *args, has_free=has_free),
        annotation(TYPE),
        "network overlay has no free IPv6 address",
    )
    # Underlay capacity is a scheduling matter (quota node labels), not an admission one.
    assert validate_pod_create(pod({TYPE: "Underlay", FAMILY: "IPv6"}), *args, has_free=has_free) == []
    assert asked == [("overlay", IPFamily.IPV4), ("overlay", IPFamily.IPV6)]


# --- what the mutating webhook writes ------------------------------------------------------------

ATTACH_U = names.LABEL_UNDERLAY_ATTACHMENT
ATTACH_O = names.LABEL_OVERLAY_ATTACHMENT


@pytest.mark.parametrize(
    ("annotations", "retained", "selector"),
    [
        ({}, False, {ATTACH_O: "true"}),
        ({TYPE: "Underlay"}, False, {ATTACH_U: "true", names.LABEL_IPV4_QUOTA: "nonempty"}),
        ({TYPE: "Underlay", FAMILY: "IPv6"}, False, {ATTACH_U: "true", names.LABEL_IPV6_QUOTA: "nonempty"}),
        ({NETWORK: "underlay-a", FAMILY: "DualStack"}, False, {"rack": "r1", names.LABEL_DUALSTACK_QUOTA: "nonempty"}),
        # A retained address goes with the pod wherever its network reaches; free capacity does not matter.
        ({NETWORK: "underlay-a"}, True, {"rack": "r1"}),
    ],
)
def test_node_selector(annotations: dict[str, str], retained: bool, selector: dict[str, str]) -> None:
    assert resolved(pod(annotations)).node_selector(NETWORKS, has_retained_ip=retained) == selector


# --- Hybridnet's spellings (issue 15) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "family"), [("IPv4Only", IPFamily.IPV4), ("ipv6only", IPFamily.IPV6), ("dualstack", IPFamily.DUAL_STACK)]
)
def test_hybridnets_ip_family_values_are_accepted(value: str, family: IPFamily) -> None:
    assert parsed(pod({FAMILY: value}, owner_kind=None)).family is family


@pytest.mark.parametrize(
    ("value", "retain"),
    [(v, True) for v in ("1", "t", "T", "TRUE", "true", "True")]
    + [(v, False) for v in ("0", "f", "F", "FALSE", "false", "False")],
)
def test_ip_retain_takes_what_gos_parsebool_takes(value: str, retain: bool) -> None:
    assert parsed(pod({RETAIN: value})).retain is retain


def test_hybridnets_keys_are_aliases_of_ours_with_a_warning_naming_ours() -> None:
    alias = names.hybridnet_alias(NETWORK)
    assert alias == "networking.alibaba.com/specified-network"
    request = parsed(pod({alias: "underlay-a"}, owner_kind=None))
    assert request.network == "underlay-a"
    [warning] = request.warnings
    assert str(warning) == f"metadata.annotations[{alias}] is Hybridnet's key: hybridlay reads it, but use {NETWORK}"
    # on a namespace, and as a label
    ns = namespace(labels={names.hybridnet_alias(FAMILY): "IPv6Only"})
    request = parsed(pod(owner_kind=None), ns)
    assert request.family is IPFamily.IPV6
    assert request.warnings[0].field == f"namespace.metadata.labels[{names.hybridnet_alias(FAMILY)}]"


def test_our_key_wins_over_hybridnets_on_the_same_object() -> None:
    request = parsed(pod({NETWORK: "underlay-a", names.hybridnet_alias(NETWORK): "overlay"}, owner_kind=None))
    assert request.network == "underlay-a" and request.warnings == ()


def kept(address: str, network: str, subnet: str) -> IPInstance:
    version = "6" if ":" in address else "4"
    return IPInstance(
        name=address.replace(".", "-"),
        network=network,
        subnet=subnet,
        address=InstanceAddress(version=version, ip=f"{address}/24"),
        binding=Binding(
            pod_name="web-1", pod_namespace="ns1", referred_object=ReferredObject("StatefulSet", "web", "uid-web")
        ),
    )


def test_a_pod_asking_for_another_network_than_its_kept_address_is_refused() -> None:
    """Issue 15: Hybridnet refuses it; the pod would otherwise get the old address back where it no longer belongs."""
    retained = [kept("100.10.0.7", "overlay", "ov4")]
    violations = validate_pod_create(pod(U), None, NETWORKS, SUBNETS, SETTINGS, retained=retained)
    assert [str(v) for v in violations] == [
        f"{annotation(NETWORK)} underlay-a differs from network overlay of the address 100.10.0.7 this pod keeps"
        " (100-10-0-7); delete that IPInstance to move the pod"
    ]
    assert validate_pod_create(pod({SUBNET: "ov4"}), None, NETWORKS, SUBNETS, SETTINGS, retained=retained) == []


def test_a_pod_asking_for_another_subnet_than_its_kept_address_is_refused() -> None:
    retained = [kept("192.168.56.9", "underlay-a", "vlan100")]
    other = {
        **SUBNETS,
        "vlan100-b": Subnet(
            "vlan100-b", "underlay-a", AddressRange("4", "192.168.57.0/24", gateway="192.168.57.1"), net_id=100
        ),
    }
    violations = validate_pod_create(pod({SUBNET: "vlan100-b"}), None, NETWORKS, other, SETTINGS, retained=retained)
    assert len(violations) == 1 and "differs from subnet vlan100 of the address 192.168.56.9" in str(violations[0])
    # Not kept (ip-retain false): the old address is given back, so asking elsewhere is fine.
    no_retain = pod({SUBNET: "vlan100-b", RETAIN: "false"})
    assert validate_pod_create(no_retain, None, NETWORKS, other, SETTINGS, retained=retained) == []
