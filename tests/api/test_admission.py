"""Every admission rule through a real AdmissionReview: objects are created, updated and deleted
through the API server, which calls the operator's webhooks as ``manifests/30-webhooks.yaml``
registers them; each rule has a denied case (a 422 naming the field, in the core's words) and an
allowed case.

The rules themselves are ``hybridlay.validation`` (Network, Subnet) and ``hybridlay.pod_request``
(pods), unit-tested in tests/unit; here is what a user of the API meets. What need not stay is
created in a dry run (``dryRun=All``: the webhooks are called, nothing is stored).

The webhooks answer from the operator's watch caches: a test that has just created something a
rule depends on waits until the operator has seen it (see :class:`Objects`).
"""

from __future__ import annotations

import copy
import http.client
import ipaddress
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
from apitopo import OVERLAY, OVERLAY_SUBNET, OVERLAY_SUBNET6, UNDERLAY, UNDERLAY_SUBNET, Api, unique, until
from kubernetes.client.exceptions import ApiException
from podlife import PodLifecycle
from realcluster import SYSTEM_NAMESPACE, OperatorProcess

from hybridlay import names

WEBHOOK = {
    "networks": "networks.validate.networking.hybridlay.io",
    "subnets": "subnets.validate.networking.hybridlay.io",
    "pods": "pods.validate.networking.hybridlay.io",
}
NET, SUB, TYPE = names.ANNOTATION_SPECIFIED_NETWORK, names.ANNOTATION_SPECIFIED_SUBNET, names.ANNOTATION_NETWORK_TYPE
FAM, RETAIN, POOL, MAC = (
    names.ANNOTATION_IP_FAMILY,
    names.ANNOTATION_IP_RETAIN,
    names.ANNOTATION_IP_POOL,
    names.ANNOTATION_MAC_POOL,
)
NETWORK_UNAVAILABLE = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}
TEST_LABEL = "hybridlay-test/rack"


def annotation(key: str) -> str:
    """The field a pod's annotation is named by in a denial."""
    return f"metadata.annotations[{key}]"


def denial(plural: str, call: Callable[[], Any]) -> str:
    """The words of our webhook's denial of ``call``: a 422 whose message the API server prefixes
    with the webhook's name."""
    with pytest.raises(ApiException) as caught:
        call()
    body = json.loads(caught.value.body)
    prefix = f'admission webhook "{WEBHOOK[plural]}" denied the request: '
    assert caught.value.status == 422, body
    assert body["message"].startswith(prefix), body["message"]
    return str(body["message"][len(prefix) :])


def network(
    name: str,
    type_: str = "Underlay",
    *,
    net_id: int | None = None,
    selector: dict[str, str] | None = None,
    mode: str | None = None,
    peers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_}
    for key, value in (("mode", mode), ("netID", net_id), ("nodeSelector", selector)):
        if value is not None:
            spec[key] = value
    if peers is not None:
        spec["config"] = {"bgpPeers": peers}
    return {"apiVersion": names.API_VERSION, "kind": "Network", "metadata": {"name": name}, "spec": spec}


def subnet(name: str, network_name: str, cidr: str, version: str = "4", **fields: Any) -> dict[str, Any]:
    """A Subnet; ``fields`` go into ``spec.range``, but ``netID`` and ``config`` into ``spec``."""
    spec: dict[str, Any] = {"network": network_name, "range": {"version": version, "cidr": cidr}}
    for key in ("netID", "config"):
        if key in fields:
            spec[key] = fields.pop(key)
    spec["range"].update(fields)
    return {"apiVersion": names.API_VERSION, "kind": "Subnet", "metadata": {"name": name}, "spec": spec}


def free_cidr(api: Api, avoid: tuple[ipaddress.IPv4Network, ...] = ()) -> ipaddress.IPv4Network:
    """A /24 no existing subnet overlaps (10.150.0.0/16 first, a range the shared topology leaves alone)."""
    taken = [
        ipaddress.ip_network(s["spec"]["range"]["cidr"], strict=False)
        for s in api.custom.list_cluster_custom_object(names.GROUP, names.VERSION, "subnets")["items"]
    ]
    taken += avoid
    for i in range(256):
        cidr = ipaddress.IPv4Network(f"10.150.{i}.0/24")
        if not any(t.version == 4 and t.overlaps(cidr) for t in taken):
            return cidr
    raise AssertionError("no free /24 in 10.150.0.0/16")


class Objects:
    """Creates Networks, Subnets and nodes through the API, waits until the operator (whose caches the
    webhooks read) has seen them, and deletes what it made at the end."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.custom = api.custom
        self.made: list[tuple[str, str]] = []

    def dry(self, obj: dict[str, Any]) -> dict[str, Any]:
        plural = f"{obj['kind'].lower()}s"
        return dict(self.custom.create_cluster_custom_object(names.GROUP, names.VERSION, plural, obj, dry_run="All"))

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        plural = f"{obj['kind'].lower()}s"
        created = dict(self.custom.create_cluster_custom_object(names.GROUP, names.VERSION, plural, obj))
        self.made.append((plural, obj["metadata"]["name"]))
        return created

    def patch(self, plural: str, name: str, patch: dict[str, Any], dry: bool = True) -> dict[str, Any]:
        return dict(
            self.custom.patch_cluster_custom_object(
                names.GROUP, names.VERSION, plural, name, patch, dry_run="All" if dry else None
            )
        )

    def delete(self, plural: str, name: str, dry: bool = False) -> None:
        self.custom.delete_cluster_custom_object(
            names.GROUP, names.VERSION, plural, name, dry_run="All" if dry else None
        )

    def node(self, labels: dict[str, str]) -> str:
        name = unique("node")
        self.api.node(name, labels)
        self.made.append(("nodes", name))
        return name

    def network(self, *args: Any, **kwargs: Any) -> str:
        """A real network, once the operator has seen it: a subnet of it is no longer refused as one of
        a network that does not exist."""
        body = network(*args, **kwargs)
        name = body["metadata"]["name"]
        self.create(body)
        probe = subnet(unique("probe"), name, "10.255.255.0/24", gateway="10.255.255.1")

        def seen() -> bool:
            try:
                self.dry(probe)
            except ApiException as e:
                return f"spec.network {name} does not exist" not in e.body
            return True

        until(seen, f"the operator sees network {name}")
        return name

    def subnet(self, *args: Any, **kwargs: Any) -> str:
        """A real subnet, once the operator has seen it (it then writes the subnet's status)."""
        body = subnet(*args, **kwargs)
        self.create(body)
        name = body["metadata"]["name"]
        until(lambda: self.api.get("subnets", name).get("status"), f"the operator sees subnet {name}")
        return name

    def node_seen(self, name: str, label: str = names.LABEL_OVERLAY_ATTACHMENT) -> None:
        """The operator has seen the node: it labelled it (every node is attached to the overlay)."""
        until(
            lambda: label in (self.api.core.read_node(name).metadata.labels or {}), f"the operator labels node {name}"
        )

    def cleanup(self) -> None:
        order = {"subnets": 0, "networks": 1, "nodes": 2}
        for plural, name in sorted(reversed(self.made), key=lambda m: order[m[0]]):
            deadline = time.monotonic() + 5
            while True:
                try:
                    if plural == "nodes":
                        self.api.core.delete_node(name)
                    else:
                        self.delete(plural, name)
                    break
                except ApiException as e:
                    # A network's subnet may still be in the operator's cache for a moment.
                    if e.status == 404 or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)


@pytest.fixture
def objs(real_api: Api) -> Iterator[Objects]:
    objects = Objects(real_api)
    yield objects
    objects.cleanup()


# --- Network --------------------------------------------------------------------------------------

SEL = {TEST_LABEL: "no-node-has-it"}
PEER = {"asn": 65000, "address": "10.20.0.1"}
LISTENER = {"asn": 65000, "address": "10.20.0.2", "doesNotRouteTraffic": True}
V6_PEER = {"asn": 65000, "address": "fd00:20::1"}

NETWORK_RULES = [
    # (rule, denied spec, the denial's words, an allowed spec)
    (
        "an underlay network selects its nodes",
        {"net_id": 7},
        "spec.nodeSelector is required for an Underlay network",
        {"net_id": 7, "selector": SEL},
    ),
    (
        "a GlobalBGP network spans every node",
        {"type_": "GlobalBGP", "selector": {"rack": "a"}},
        "spec.nodeSelector {rack=a} must be empty for an GlobalBGP network (it spans every node)",
        {"type_": "GlobalBGP"},
    ),
    (
        "a GlobalBGP network has no netID",
        {"type_": "GlobalBGP", "net_id": 65000},
        "spec.netID 65000 must be unset for a GlobalBGP network",
        {"type_": "GlobalBGP"},
    ),
    (
        "the mode is one of the type's",
        {"mode": "VXLAN", "net_id": 7, "selector": SEL},
        "spec.mode VXLAN is only for Overlay networks, not Underlay",
        {"mode": "VLAN", "net_id": 7, "selector": SEL},
    ),
    (
        "a BGP network has the nodes' AS number",
        {"mode": "BGP", "selector": SEL, "peers": [PEER]},
        "spec.netID is required for a BGP network (the nodes' local AS number)",
        {"mode": "BGP", "net_id": 65010, "selector": SEL, "peers": [PEER]},
    ),
    (
        "a VLAN id is at most 4094",
        {"net_id": 4095, "selector": SEL},
        "spec.netID 4095 is not a VLAN id (0-4094, 0 for untagged)",
        {"net_id": 4094, "selector": SEL},
    ),
    (
        "an AS number is never 0",
        {"mode": "BGP", "net_id": 0, "selector": SEL, "peers": [PEER]},
        "spec.netID 0 is not an AS number (1-4294967295)",
        {"mode": "BGP", "net_id": 4294967295, "selector": SEL, "peers": [PEER]},
    ),
    (
        "only a BGP network has peers",
        {"net_id": 7, "selector": SEL, "peers": [PEER]},
        "spec.config.bgpPeers [10.20.0.1] are only used by BGP networks",
        {"net_id": 7, "selector": SEL},
    ),
    (
        "a BGP network has a peer",
        {"mode": "BGP", "net_id": 65010, "selector": SEL},
        "spec.config.bgpPeers needs at least one peer in a BGP network",
        {"mode": "BGP", "net_id": 65010, "selector": SEL, "peers": [PEER]},
    ),
    (
        # Two spellings of one address: two map keys for the API server, one peer for us.
        "a peer is listed once",
        {"mode": "BGP", "net_id": 1, "selector": SEL, "peers": [V6_PEER, {**LISTENER, "address": "fd00:20:0::1"}]},
        "spec.config.bgpPeers[1].address fd00:20:0::1 is listed twice",
        {"mode": "BGP", "net_id": 1, "selector": SEL, "peers": [V6_PEER, LISTENER]},
    ),
    (
        "one peer at most routes pod traffic",
        {"mode": "BGP", "net_id": 65010, "selector": SEL, "peers": [PEER, {**LISTENER, "doesNotRouteTraffic": False}]},
        "spec.config.bgpPeers[1].doesNotRouteTraffic false must be true: "
        "spec.config.bgpPeers[0] already routes traffic (at most one peer may)",
        {"mode": "BGP", "net_id": 65010, "selector": SEL, "peers": [PEER, LISTENER]},
    ),
]


@pytest.mark.parametrize(("rule", "denied", "words", "allowed"), NETWORK_RULES, ids=[r[0] for r in NETWORK_RULES])
def test_network_rule(objs: Objects, rule: str, denied: dict[str, Any], words: str, allowed: dict[str, Any]) -> None:
    assert words in denial("networks", lambda: objs.dry(network(unique("net"), **denied)))
    assert objs.dry(network(unique("net"), **allowed))["spec"]


def test_there_is_one_overlay_network(objs: Objects) -> None:
    words = denial("networks", lambda: objs.dry(network(unique("overlay"), "Overlay", net_id=5)))
    assert words == f"spec.type Overlay network {OVERLAY} already exists (at most one Overlay network)"
    words = denial("networks", lambda: objs.dry(network(unique("overlay"), "Overlay", selector={"rack": "a"})))
    assert "spec.nodeSelector {rack=a} must be empty for an Overlay network (it spans every node)" in words
    assert "spec.netID is required for an Overlay network (the VXLAN VNI)" in words
    # The one there is passes the same rules on every update: it is not a second one of itself.
    assert objs.patch("networks", OVERLAY, {"metadata": {"labels": {TEST_LABEL: "x"}}})["spec"]["netID"] == 4


def test_there_is_one_global_bgp_network(objs: Objects) -> None:
    first = unique("global")
    objs.create(network(first, "GlobalBGP"))
    try:
        until(
            lambda: "already exists" in denial_or_none(lambda: objs.dry(network(unique("global"), "GlobalBGP"))),
            "the operator sees the first GlobalBGP network",
        )
        words = denial("networks", lambda: objs.dry(network(unique("global"), "GlobalBGP")))
        assert words == f"spec.type GlobalBGP network {first} already exists (at most one GlobalBGP network)"
    finally:
        objs.delete("networks", first)


def denial_or_none(call: Callable[[], Any]) -> str:
    try:
        call()
    except ApiException as e:
        return str(json.loads(e.body)["message"])
    return ""


def test_a_node_is_in_one_underlay_network_at_most(objs: Objects) -> None:
    rack = {TEST_LABEL: unique("rack")}
    taken = objs.node(rack)
    free = objs.node({TEST_LABEL: unique("rack")})
    first = objs.network(unique("net"), net_id=7, selector=rack)
    objs.node_seen(taken, names.LABEL_UNDERLAY_ATTACHMENT)
    objs.node_seen(free)
    words = denial("networks", lambda: objs.dry(network(unique("net"), net_id=8, selector=rack)))
    selector = f"{{{TEST_LABEL}={rack[TEST_LABEL]}}}"
    assert words == f"spec.nodeSelector {selector} selects node(s) {taken} already in underlay network {first}"
    free_labels = objs.api.core.read_node(free).metadata.labels
    assert objs.dry(network(unique("net"), net_id=8, selector={TEST_LABEL: free_labels[TEST_LABEL]}))


def test_a_networks_type_mode_and_id_do_not_change(objs: Objects) -> None:
    name = objs.network(unique("net"), net_id=7, selector={TEST_LABEL: unique("rack")})
    words = denial("networks", lambda: objs.patch("networks", name, {"spec": {"netID": 8}}))
    assert words == "spec.netID 8 must not change (was 7)"
    words = denial("networks", lambda: objs.patch("networks", name, {"spec": {"mode": "BGP"}}))
    assert "spec.mode BGP must not change (was VLAN)" in words
    words = denial("networks", lambda: objs.patch("networks", name, {"spec": {"type": "GlobalBGP"}}))
    assert "spec.type GlobalBGP must not change (was Underlay)" in words
    # Its nodes may change.
    moved = objs.patch("networks", name, {"spec": {"nodeSelector": {TEST_LABEL: unique("rack")}}})
    assert moved["spec"]["netID"] == 7


def test_a_network_with_subnets_is_not_deleted(objs: Objects) -> None:
    name = objs.network(unique("net"), net_id=7, selector={TEST_LABEL: unique("rack")})
    cidr = free_cidr(objs.api)
    sub = objs.subnet(unique("sub"), name, str(cidr), gateway=str(cidr[1]))
    words = denial("networks", lambda: objs.delete("networks", name, dry=True))
    assert words == f"metadata.name {name} is still used by 1 subnet(s): {sub}"
    # Its status says what the operator, whose cache the webhook reads, counts.
    total = lambda: objs.api.get("networks", name).get("status", {}).get("statistics", {}).get("total")  # noqa: E731
    until(lambda: total() == 253, "the subnet counted")
    objs.delete("subnets", sub)
    until(lambda: total() == 0, "the subnet uncounted")
    objs.delete("networks", name)
    with pytest.raises(ApiException) as gone:
        objs.api.get("networks", name)
    assert gone.value.status == 404


# --- Subnet ---------------------------------------------------------------------------------------


@pytest.fixture
def vlans(objs: Objects) -> dict[str, Any]:
    """A VLAN network with netID 7, one without a netID (each subnet says its own), a free /24."""
    return {
        "vlan": objs.network(unique("vlan"), net_id=7, selector={TEST_LABEL: unique("rack")}),
        "vlan0": objs.network(unique("vlan0"), selector={TEST_LABEL: unique("rack")}),
        "cidr": free_cidr(objs.api),
    }


def subnet_rules(cidr: ipaddress.IPv4Network) -> list[tuple[str, str, dict[str, Any], str, dict[str, Any]]]:
    """(rule, network, denied fields, the denial's words, allowed fields): fields as :func:`subnet`
    takes them, over a base of ``cidr`` with gateway .1."""
    h = list(cidr.hosts())
    other = "10.151.0.5"
    v6 = "fd00:150::/64"
    return [
        ("the network exists", "no-such", {}, "spec.network {network} does not exist", {}),
        (
            "a VLAN subnet has a VLAN id of its own or its network's",
            "vlan0",
            {},
            "spec.netID is required: network {network} sets no VLAN id to inherit",
            {"netID": 8},
        ),
        (
            "a subnet's VLAN id is its network's",
            "vlan",
            {"netID": 8},
            "spec.netID 8 differs from network {network}'s netID 7",
            {"netID": 7},
        ),
        (
            "a VLAN id is at most 4094",
            "vlan0",
            {"netID": 4095},
            "spec.netID 4095 is not a VLAN id (0-4094)",
            {"netID": 4094},
        ),
        (
            "a VLAN subnet has a gateway",
            "vlan",
            {"gateway": None},
            "spec.range.gateway is required in a VLAN network (the pods' router on the VLAN)",
            {},
        ),
        (
            "an overlay subnet has no VLAN id",
            OVERLAY,
            {"netID": 4},
            "spec.netID 4 must be unset in a VXLAN network (it has one for all)",
            {},
        ),
        (
            "autoNatOutgoing is for overlay subnets",
            "vlan",
            {"config": {"autoNatOutgoing": False}},
            "spec.config.autoNatOutgoing false must be unset in an Underlay network (its pods' addresses are routable)",
            {"network": OVERLAY, "config": {"autoNatOutgoing": False}},
        ),
        ("the CIDR is of the version", "vlan", {"version": "6"}, f"spec.range.cidr {cidr} is not an IPv6 CIDR", {}),
        (
            "the CIDR is canonical",
            "vlan",
            {"cidr": f"{h[4]}/24"},
            f"spec.range.cidr {h[4]}/24 has host bits set (canonical form is {cidr})",
            {},
        ),
        (
            "a subnet leaves room for pods",
            "vlan",
            {"cidr": f"{cidr.network_address}/31"},
            f"spec.range.cidr {cidr.network_address}/31 is too small for pods: the prefix must be at most /30",
            {"cidr": f"{cidr.network_address}/30"},
        ),
        (
            "start is inside the CIDR",
            "vlan",
            {"start": other},
            f"spec.range.start {other} is outside spec.range.cidr {cidr}",
            {"start": str(h[9])},
        ),
        (
            "start is not the network address",
            "vlan",
            {"start": str(cidr.network_address)},
            f"spec.range.start {cidr.network_address} is the network address of spec.range.cidr {cidr}",
            {"start": str(h[0])},
        ),
        (
            "end is not the broadcast address",
            "vlan",
            {"end": str(cidr.broadcast_address)},
            f"spec.range.end {cidr.broadcast_address} is the broadcast address of spec.range.cidr {cidr}",
            {"end": str(h[-1])},
        ),
        (
            "the gateway is inside the CIDR",
            "vlan",
            {"gateway": other},
            f"spec.range.gateway {other} is outside spec.range.cidr {cidr}",
            {},
        ),
        (
            "reserved addresses are inside the CIDR",
            "vlan",
            {"reservedIPs": [str(h[9]), other]},
            f"spec.range.reservedIPs[1] {other} is outside spec.range.cidr {cidr}",
            {"reservedIPs": [str(h[9])]},
        ),
        (
            "excluded addresses are inside the CIDR (the network address may be one)",
            "vlan",
            {"excludeIPs": [other]},
            f"spec.range.excludeIPs[0] {other} is outside spec.range.cidr {cidr}",
            {"excludeIPs": [str(cidr.network_address)]},
        ),
        (
            "start is not after end",
            "vlan",
            {"start": str(h[199]), "end": str(h[99])},
            f"spec.range.start {h[199]} is after spec.range.end {h[99]}",
            {"start": str(h[99]), "end": str(h[199])},
        ),
        (
            "a subnet holds at most 65536 addresses",
            OVERLAY,
            {"version": "6", "cidr": v6, "gateway": None},
            "spec.range fd00:150::1-fd00:150::ffff:ffff:ffff:ffff holds 18446744073709551615 addresses, more than "
            "a subnet may (65536); narrow it with spec.range.start and spec.range.end",
            {"version": "6", "cidr": v6, "gateway": None, "start": "fd00:150::1", "end": "fd00:150::ffff"},
        ),
    ]


SUBNET_RULE_IDS = [r[0] for r in subnet_rules(ipaddress.IPv4Network("10.150.0.0/24"))]


def subnet_case(vlans: dict[str, Any], network_key: str, fields: dict[str, Any]) -> dict[str, Any]:
    cidr = vlans["cidr"]
    base: dict[str, Any] = {"cidr": str(cidr), "gateway": str(cidr[1])}
    base.update(fields)
    network_name = base.pop("network", None) or vlans.get(network_key, network_key)
    return subnet(unique("sub"), network_name, **{k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize("index", range(len(SUBNET_RULE_IDS)), ids=SUBNET_RULE_IDS)
def test_subnet_rule(objs: Objects, vlans: dict[str, Any], index: int) -> None:
    _, network_key, denied, words, allowed = subnet_rules(vlans["cidr"])[index]
    body = subnet_case(vlans, network_key, denied)
    said = denial("subnets", lambda: objs.dry(body))
    assert words.format(network=body["spec"]["network"]) in said
    assert objs.dry(subnet_case(vlans, network_key if network_key != "no-such" else "vlan", allowed))["spec"]


def test_subnets_do_not_overlap_but_may_share_a_cidr_in_one_network(objs: Objects, vlans: dict[str, Any]) -> None:
    cidr = vlans["cidr"]
    h = list(cidr.hosts())
    first = objs.subnet(unique("sub"), vlans["vlan"], str(cidr), gateway=str(h[0]), start=str(h[1]), end=str(h[99]))
    half = ipaddress.IPv4Network(f"{h[127]}/25")
    words = denial("subnets", lambda: objs.dry(subnet(unique("sub"), vlans["vlan"], str(half), gateway=str(h[128]))))
    assert words == f"spec.range.cidr {half} overlaps subnet {first} ({cidr})"
    words = denial(
        "subnets", lambda: objs.dry(subnet(unique("sub"), vlans["vlan0"], str(cidr), gateway=str(h[0]), netID=8))
    )
    assert words == f"spec.range.cidr {cidr} is already used by subnet {first} of network {vlans['vlan']}"
    words = denial(
        "subnets",
        lambda: objs.dry(
            subnet(unique("sub"), vlans["vlan"], str(cidr), gateway=str(h[0]), start=str(h[49]), end=str(h[149]))
        ),
    )
    assert words == (
        f"spec.range {h[49]}-{h[149]} overlaps the range {h[1]}-{h[99]} of subnet {first} in the same CIDR {cidr}"
    )
    # One CIDR split by disjoint ranges in one network is fine, and so is a CIDR of its own.
    assert objs.dry(
        subnet(unique("sub"), vlans["vlan"], str(cidr), gateway=str(h[0]), start=str(h[100]), end=str(h[199]))
    )
    elsewhere = free_cidr(objs.api, avoid=(cidr,))
    assert objs.dry(subnet(unique("sub"), vlans["vlan0"], str(elsewhere), gateway=str(elsewhere[1]), netID=8))


def test_a_subnets_addresses_do_not_change_but_its_reservations_may(objs: Objects, vlans: dict[str, Any]) -> None:
    cidr = vlans["cidr"]
    h = list(cidr.hosts())
    name = objs.subnet(unique("sub"), vlans["vlan"], str(cidr), gateway=str(h[0]), start=str(h[1]))
    changes = [
        ({"network": vlans["vlan0"]}, f"spec.network {vlans['vlan0']} must not change (was {vlans['vlan']})"),
        ({"netID": 7}, "spec.netID 7 must not change (was <unset>)"),
        (
            {"range": {"cidr": f"{cidr.network_address}/25"}},
            f"spec.range.cidr {cidr.network_address}/25 must not change (was {cidr})",
        ),
        ({"range": {"start": str(h[2])}}, f"spec.range.start {h[2]} must not change (was {h[1]})"),
        ({"range": {"end": str(h[99])}}, f"spec.range.end {h[99]} must not change (was <unset>)"),
        ({"range": {"gateway": str(h[253])}}, f"spec.range.gateway {h[253]} must not change (was {h[0]})"),
        ({"range": {"excludeIPs": [str(h[4])]}}, f"spec.range.excludeIPs [{h[4]}] must not change (was [])"),
    ]
    for spec, words in changes:
        assert words in denial("subnets", lambda spec=spec: objs.patch("subnets", name, {"spec": spec}))
    allowed = objs.patch(
        "subnets", name, {"spec": {"range": {"reservedIPs": [str(h[9])]}, "config": {"private": True}}}
    )
    assert allowed["spec"]["range"]["reservedIPs"] == [str(h[9])]


def test_a_subnet_in_use_is_not_deleted(objs: Objects, real_namespace: str) -> None:
    rack = {TEST_LABEL: unique("rack")}
    node = objs.node(rack)
    net = objs.network(unique("net"), net_id=7, selector=rack)
    cidr = free_cidr(objs.api)
    name = objs.subnet(unique("sub"), net, str(cidr), gateway=str(cidr[1]))
    pod = {
        "metadata": {"name": "p", "annotations": {NET: net}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
    }
    objs.api.core.create_namespaced_pod(real_namespace, pod)
    [instance] = until(lambda: list(objs.api.instances_of(real_namespace, "p")), "the pod's IPInstance")
    words = denial("subnets", lambda: objs.delete("subnets", name, dry=True))
    assert words == f"metadata.name {name} is still used by 1 IPInstance(s): {instance}"
    objs.api.core.delete_namespaced_pod("p", real_namespace, grace_period_seconds=0)
    until(lambda: not objs.api.instances_of(real_namespace, "p"), "the address released")
    objs.delete("subnets", name)


# --- Pod: validation ------------------------------------------------------------------------------


def pod_body(
    name: str = "p",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    stateful: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    """A pod; ``stateful``: controlled by the StatefulSet ``web`` (which does not exist: the garbage
    collector removes the pod soon after, which does not matter to admission)."""
    metadata: dict[str, Any] = {"name": name, "annotations": annotations or {}, "labels": labels or {}}
    if stateful:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": "web",
                "uid": str(uuid.uuid4()),
                "controller": True,
            }
        ]
    return {"metadata": metadata, "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}


def create_pod(api: Api, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create the pod, then read it back: what the mutating webhook made of it."""
    api.core.create_namespaced_pod(namespace, body)
    pod = api.core.read_namespaced_pod(body["metadata"]["name"], namespace)
    return dict(api.client.sanitize_for_serialization(pod))


def admitted(api: Api, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create the pod: the object stored (a pod of the missing StatefulSet ``web`` may be collected
    before it could be read back)."""
    return dict(api.client.sanitize_for_serialization(api.core.create_namespaced_pod(namespace, body)))


A = annotation
POD_RULES = [
    # (rule, denied pod, the denial's words, allowed pod)
    (
        "network-type is a type",
        pod_body(annotations={TYPE: "Bridge"}),
        f"{A(TYPE)} Bridge must be one of Underlay, Overlay, GlobalBGP",
        pod_body(annotations={TYPE: "underlay"}),
    ),
    (
        "ip-family is a family",
        pod_body(annotations={FAM: "IPv5"}),
        f"{A(FAM)} IPv5 must be one of IPv4, IPv6, DualStack",
        pod_body(annotations={FAM: "ipv6"}),
    ),
    (
        "ip-retain is true or false",
        pod_body(annotations={RETAIN: "maybe"}),
        f"{A(RETAIN)} maybe must be a boolean (",
        pod_body(annotations={RETAIN: "False"}),
    ),
    (
        "a label is read as the annotation",
        pod_body(labels={TYPE: "Bridge"}),
        f"metadata.labels[{TYPE}] Bridge must be one of Underlay, Overlay, GlobalBGP",
        pod_body(labels={TYPE: "Overlay"}),
    ),
    (
        "specified-subnet is one subnet, or two",
        pod_body(annotations={SUB: "a/b/c"}),
        f"{A(SUB)} a/b/c must be a subnet name, or v4subnet/v6subnet",
        pod_body(annotations={SUB: OVERLAY_SUBNET}),
    ),
    (
        "a dual-stack pod names a subnet per family",
        pod_body(annotations={FAM: "DualStack", SUB: OVERLAY_SUBNET}),
        f"{A(SUB)} {OVERLAY_SUBNET} must be v4subnet/v6subnet for ip-family DualStack (from {A(FAM)})",
        pod_body(annotations={FAM: "DualStack", SUB: f"{OVERLAY_SUBNET}/{OVERLAY_SUBNET6}"}),
    ),
    (
        "the subnet exists",
        pod_body(annotations={SUB: "no-such-subnet"}),
        f"{A(SUB)} no-such-subnet does not exist",
        pod_body(annotations={SUB: UNDERLAY_SUBNET}),
    ),
    (
        "the subnet is of the family",
        pod_body(annotations={FAM: "IPv6", SUB: OVERLAY_SUBNET}),
        f"{A(SUB)} {OVERLAY_SUBNET} is an IPv4 subnet where an IPv6 one is needed",
        pod_body(annotations={FAM: "IPv6", SUB: OVERLAY_SUBNET6}),
    ),
    (
        "the subnets are of one network",
        pod_body(annotations={FAM: "DualStack", SUB: f"{UNDERLAY_SUBNET}/{OVERLAY_SUBNET6}"}),
        f"{A(SUB)} {UNDERLAY_SUBNET}/{OVERLAY_SUBNET6} names subnets of different networks ({OVERLAY}, {UNDERLAY})",
        pod_body(annotations={FAM: "DualStack", SUB: f"{OVERLAY_SUBNET}/{OVERLAY_SUBNET6}"}),
    ),
    (
        "the network exists",
        pod_body(annotations={NET: "no-such-network"}),
        f"{A(NET)} no-such-network does not exist",
        pod_body(annotations={NET: UNDERLAY}),
    ),
    (
        "the subnet is of the specified network",
        pod_body(annotations={NET: UNDERLAY, SUB: OVERLAY_SUBNET}),
        f"{A(SUB)} {OVERLAY_SUBNET} belongs to network {OVERLAY}, not to the specified network {UNDERLAY}",
        pod_body(annotations={NET: UNDERLAY, SUB: UNDERLAY_SUBNET}),
    ),
    (
        "network-type agrees with the network",
        pod_body(annotations={NET: OVERLAY, TYPE: "Underlay"}),
        f"{A(TYPE)} Underlay disagrees with network {OVERLAY}, which is Overlay",
        pod_body(annotations={NET: OVERLAY, TYPE: "Overlay"}),
    ),
    (
        "a network of the type exists",
        pod_body(annotations={TYPE: "GlobalBGP"}),
        f"{A(TYPE)} GlobalBGP is requested, but no such network exists",
        pod_body(annotations={TYPE: "Underlay"}),
    ),
    (
        "a stateful pod is named <workload>-<ordinal>",
        pod_body("db-0", stateful=True),
        "metadata.name db-0 is not <name>-<ordinal> of its StatefulSet web",
        pod_body("web-0", stateful=True),
    ),
    (
        "an ip-pool is in a known network",
        pod_body("web-0", annotations={POOL: "100.64.0.50"}, stateful=True),
        f"{A(POOL)} needs {NET} or {SUB}: its addresses must be in a known network",
        pod_body("web-0", annotations={NET: OVERLAY, POOL: "100.64.0.50"}, stateful=True),
    ),
    (
        "an ip-pool entry has an address per family",
        pod_body("web-0", annotations={NET: OVERLAY, FAM: "DualStack", POOL: "100.64.0.50"}, stateful=True),
        f"{A(POOL)} 100.64.0.50 must be v4address/v6address for ip-family DualStack (entry 0)",
        pod_body("web-0", annotations={NET: OVERLAY, FAM: "DualStack", POOL: "100.64.0.50/fd00:64::50"}, stateful=True),
    ),
    (
        "an ip-pool entry is an address",
        pod_body("web-0", annotations={NET: OVERLAY, POOL: "100.64.0.300"}, stateful=True),
        f"{A(POOL)} 100.64.0.300 is not a valid IP address (entry 0)",
        pod_body("web-0", annotations={NET: OVERLAY, POOL: "100.64.0.30"}, stateful=True),
    ),
    (
        "an address is in the pool once",
        pod_body("web-0", annotations={NET: OVERLAY, POOL: "100.64.0.50,100.64.0.50"}, stateful=True),
        f"{A(POOL)} 100.64.0.50 is listed twice (entries 0 and 1)",
        pod_body("web-0", annotations={NET: OVERLAY, POOL: "100.64.0.50,100.64.0.51"}, stateful=True),
    ),
    (
        "the pool has an entry for the ordinal",
        pod_body("web-2", annotations={NET: OVERLAY, POOL: "100.64.0.50,100.64.0.51"}, stateful=True),
        f"{A(POOL)} has 2 entries, none for ordinal 2 of StatefulSet web",
        pod_body("web-1", annotations={NET: OVERLAY, POOL: "100.64.0.50,100.64.0.51"}, stateful=True),
    ),
    (
        "a pool address is in the network",
        pod_body("web-0", annotations={NET: OVERLAY, POOL: "100.65.0.5"}, stateful=True),
        f"{A(POOL)} 100.65.0.5 is outside any subnet of network {OVERLAY}",
        pod_body("web-0", annotations={NET: OVERLAY, POOL: "100.64.0.5"}, stateful=True),
    ),
    (
        "a pool address is in the specified subnet",
        pod_body("web-0", annotations={SUB: UNDERLAY_SUBNET, POOL: "192.168.57.5"}, stateful=True),
        f"{A(POOL)} 192.168.57.5 is outside the specified subnet {UNDERLAY_SUBNET} (192.168.56.0/24)",
        pod_body("web-0", annotations={SUB: UNDERLAY_SUBNET, POOL: "192.168.56.77"}, stateful=True),
    ),
    (
        "a pool address is not the gateway",
        pod_body("web-0", annotations={NET: UNDERLAY, POOL: "192.168.56.1"}, stateful=True),
        f"{A(POOL)} 192.168.56.1 is the gateway of subnet {UNDERLAY_SUBNET}",
        pod_body("web-0", annotations={NET: UNDERLAY, POOL: "192.168.56.78"}, stateful=True),
    ),
    (
        "a mac-pool entry is a MAC",
        pod_body("web-0", annotations={MAC: "02:00:00:00:00"}, stateful=True),
        f"{A(MAC)} 02:00:00:00:00 is not a MAC address (six colon-separated hex octets) (entry 0)",
        pod_body("web-0", annotations={MAC: "02:00:00:00:00:01"}, stateful=True),
    ),
    (
        "a mac-pool entry is a unicast MAC",
        pod_body("web-0", annotations={MAC: "03:00:00:00:00:01"}, stateful=True),
        f"{A(MAC)} 03:00:00:00:00:01 is a multicast MAC; an interface needs a unicast one (entry 0)",
        pod_body("web-0", annotations={MAC: "02:00:00:00:00:01"}, stateful=True),
    ),
]


@pytest.mark.parametrize("case", POD_RULES, ids=[r[0] for r in POD_RULES])
def test_pod_rule(real_api: Api, real_namespace: str, case: tuple[str, dict[str, Any], str, dict[str, Any]]) -> None:
    _, denied, words, allowed = case
    said = denial("pods", lambda: real_api.core.create_namespaced_pod(real_namespace, copy.deepcopy(denied)))
    assert words in said
    assert admitted(real_api, real_namespace, copy.deepcopy(allowed))["metadata"]["uid"]


def test_pools_on_a_pod_of_no_stateful_workload_are_ignored(real_api: Api, real_namespace: str) -> None:
    """As Hybridnet: a Deployment's template may carry them, and its pods must start."""
    pod = create_pod(real_api, real_namespace, pod_body(annotations={POOL: "100.64.0.50", MAC: "02:00:00:00:00:01"}))
    assert pod["metadata"]["annotations"][NET] == OVERLAY


def test_a_pool_address_is_not_an_excluded_one(objs: Objects, real_namespace: str) -> None:
    net = objs.network(unique("net"), net_id=7, selector={TEST_LABEL: unique("rack")})
    cidr = free_cidr(objs.api)
    h = list(cidr.hosts())
    sub = objs.subnet(unique("sub"), net, str(cidr), gateway=str(h[0]), excludeIPs=[str(h[9])])
    denied = pod_body("web-0", annotations={NET: net, POOL: str(h[9])}, stateful=True)
    said = denial("pods", lambda: objs.api.core.create_namespaced_pod(real_namespace, denied))
    assert said == f"{A(POOL)} {h[9]} is excluded from subnet {sub} (spec.range.excludeIPs)"
    allowed = pod_body("web-0", annotations={NET: net, POOL: str(h[10])}, stateful=True)
    assert admitted(objs.api, real_namespace, allowed)["metadata"]["annotations"][POOL] == str(h[10])


@pytest.fixture
def annotated_namespace(real_api: Api) -> Iterator[Callable[[dict[str, str]], str]]:
    """Makes namespaces with annotations (a pod's defaults), each once the operator has seen it."""
    made: list[str] = []

    def make(annotations: dict[str, str]) -> str:
        name = unique("ns")
        real_api.core.create_namespace({"metadata": {"name": name, "annotations": annotations}})
        made.append(name)
        until(lambda: namespace_seen(real_api, name, annotations), f"the operator sees namespace {name}")
        return name

    yield make
    for name in made:
        real_api.core.delete_namespace(name, _preload_content=False)


def namespace_seen(api: Api, name: str, annotations: dict[str, str]) -> bool:
    """A dry-run pod without settings gets the namespace's settings written in (or, when one is
    invalid, is refused naming it): the operator knows the namespace's annotations."""
    probe = pod_body()
    try:
        pod = api.core.create_namespaced_pod(name, probe, dry_run="All")
    except ApiException as e:
        return "namespace.metadata.annotations" in e.body
    written = pod.metadata.annotations or {}
    return all(written.get(k, "").lower() == v.lower() for k, v in annotations.items())


def test_a_namespace_sets_its_pods_defaults_and_its_mistakes_are_named(
    real_api: Api, annotated_namespace: Callable[[dict[str, str]], str]
) -> None:
    namespace = annotated_namespace({FAM: "IPv5"})
    said = denial("pods", lambda: real_api.core.create_namespaced_pod(namespace, pod_body()))
    assert said.startswith(f"namespace.{A(FAM)} IPv5 must be one of IPv4, IPv6, DualStack")
    # The pod's own setting wins over its namespace's.
    assert (
        create_pod(real_api, namespace, pod_body(annotations={FAM: "IPv6"}))["metadata"]["annotations"][FAM] == "IPv6"
    )


def test_the_operators_namespace_is_not_held_up_by_the_pod_webhooks(real_api: Api, real_namespace: str) -> None:
    bad = pod_body(unique("p"), annotations={FAM: "IPv5"})
    denial("pods", lambda: real_api.core.create_namespaced_pod(real_namespace, copy.deepcopy(bad)))
    try:
        created = create_pod(real_api, SYSTEM_NAMESPACE, copy.deepcopy(bad))
        assert created["metadata"]["annotations"] == {FAM: "IPv5"}  # nor mutated
        assert "nodeSelector" not in created["spec"]
    finally:
        real_api.core.delete_namespaced_pod(bad["metadata"]["name"], SYSTEM_NAMESPACE, grace_period_seconds=0)


def test_without_the_operator_networks_wait_and_pods_go_ahead(
    real_api: Api, real_operator: OperatorProcess, real_namespace: str
) -> None:
    """The failure policies: Network and Subnet changes are refused while no webhook answers (Fail),
    pods are created as they are (Ignore): the operator resolves their network when it is back."""
    real_operator.stop()  # the real_operator fixture starts it again
    with pytest.raises(ApiException) as caught:
        real_api.custom.create_cluster_custom_object(
            names.GROUP, names.VERSION, "networks", network(unique("net"), net_id=7, selector=SEL), dry_run="All"
        )
    assert caught.value.status == 500
    assert f'failed calling webhook "{WEBHOOK["networks"]}"' in json.loads(caught.value.body)["message"]
    created = create_pod(real_api, real_namespace, pod_body(annotations={FAM: "IPv5"}))
    assert created["metadata"]["annotations"] == {FAM: "IPv5"}


def test_the_webhook_server_speaks_only_tls(real_operator: OperatorProcess) -> None:
    """The API server calls the webhooks over TLS, trusting the caBundle (every test here); a plain
    HTTP request gets no answer."""
    connection = http.client.HTTPConnection("127.0.0.1", real_operator.webhook_port, timeout=5)
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("POST", "/validate-network", body="{}", headers={"Content-Type": "application/json"})
        connection.getresponse()
    connection.close()


# --- Pod: mutation --------------------------------------------------------------------------------


def test_an_underlay_pod_is_sent_to_an_underlay_node_with_a_free_address(real_api: Api, real_namespace: str) -> None:
    any_underlay = create_pod(
        real_api, real_namespace, pod_body("any", annotations={TYPE: "underlay"}, nodeSelector={"disk": "ssd"})
    )
    assert any_underlay["metadata"]["annotations"] == {TYPE: "Underlay", FAM: "IPv4"}
    # Any underlay network will do: the node must be attached to one, with a free IPv4 address.
    assert any_underlay["spec"]["nodeSelector"] == {
        "disk": "ssd",
        names.LABEL_UNDERLAY_ATTACHMENT: "true",
        names.LABEL_IPV4_QUOTA: names.QUOTA_NONEMPTY,
    }
    chosen = create_pod(real_api, real_namespace, pod_body("chosen", annotations={NET: UNDERLAY, FAM: "DualStack"}))
    assert chosen["metadata"]["annotations"] == {NET: UNDERLAY, TYPE: "Underlay", FAM: "DualStack"}
    # That network's nodes, with a free address of each family.
    assert chosen["spec"]["nodeSelector"] == {"network": UNDERLAY, names.LABEL_DUALSTACK_QUOTA: names.QUOTA_NONEMPTY}


def test_an_overlay_pod_is_sent_to_an_overlay_node(real_api: Api, real_namespace: str) -> None:
    pod = create_pod(real_api, real_namespace, pod_body(annotations={FAM: "DualStack"}))
    # Overlay by default (the operator's settings); the choice is written down for the later steps.
    assert pod["metadata"]["annotations"] == {NET: OVERLAY, TYPE: "Overlay", FAM: "DualStack"}
    assert pod["spec"]["nodeSelector"] == {names.LABEL_OVERLAY_ATTACHMENT: "true"}


def test_a_host_network_pod_tolerates_a_node_whose_network_is_not_ready(real_api: Api, real_namespace: str) -> None:
    pod = create_pod(real_api, real_namespace, pod_body("host", hostNetwork=True))
    assert pod["spec"]["tolerations"].count(NETWORK_UNAVAILABLE) == 1
    assert "nodeSelector" not in pod["spec"]
    assert not pod["metadata"].get("annotations")
    again = create_pod(real_api, real_namespace, pod_body("again", hostNetwork=True, tolerations=[NETWORK_UNAVAILABLE]))
    assert again["spec"]["tolerations"].count(NETWORK_UNAVAILABLE) == 1


def test_a_pod_made_by_a_controller_takes_its_namespaces_defaults(
    real_api: Api, annotated_namespace: Callable[[dict[str, str]], str]
) -> None:
    """The pods of a ReplicaSet reach admission through the controller manager; the namespace's
    defaults apply to them as to a pod created by hand."""
    namespace = annotated_namespace({FAM: "DualStack"})
    labels = {"app": "rs"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    body = {
        "metadata": {"name": "rs"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
    }
    real_api.apps.create_namespaced_replica_set(namespace, body)
    [pod] = until(lambda: real_api.core.list_namespaced_pod(namespace, label_selector="app=rs").items, "its pod")
    assert pod.metadata.annotations == {NET: OVERLAY, TYPE: "Overlay", FAM: "DualStack"}


def test_a_stateful_pod_coming_back_to_its_address_needs_no_free_one(objs: Objects, real_namespace: str) -> None:
    rack = {TEST_LABEL: unique("rack")}
    node = objs.node(rack)
    net = objs.network(unique("net"), net_id=7, selector=rack)
    cidr = free_cidr(objs.api)
    objs.subnet(unique("sub"), net, str(cidr), gateway=str(cidr[1]))
    labels = {"app": "web"}
    template = {
        "metadata": {"labels": labels, "annotations": {NET: net}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    spec = {"replicas": 1, "serviceName": "web", "selector": {"matchLabels": labels}, "template": template}
    api = objs.api
    with PodLifecycle(api.client, real_namespace, lambda _: node) as lifecycle:
        api.apps.create_namespaced_stateful_set(real_namespace, {"metadata": {"name": "web"}, "spec": spec})
        first = until(lambda: pod_of(api, real_namespace, "web-0"), "web-0")
        assert first["spec"]["nodeSelector"] == {**rack, names.LABEL_IPV4_QUOTA: names.QUOTA_NONEMPTY}
        until(lambda: api.instances_of(real_namespace, "web-0"), "web-0's address")
        api.core.delete_namespaced_pod("web-0", real_namespace)
        again = until(
            lambda: (
                (p := pod_of(api, real_namespace, "web-0")) and p["metadata"]["uid"] != first["metadata"]["uid"] and p
            ),
            "web-0 back",
        )
        # Its address is kept for it: it needs a node of the network, not one with a free address.
        assert again["spec"]["nodeSelector"] == rack
        api.apps.delete_namespaced_stateful_set("web", real_namespace)
        until(lambda: not api.instances_of(real_namespace), "the address freed with its StatefulSet")
        assert not lifecycle.errors


def pod_of(api: Api, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(api.client.sanitize_for_serialization(api.core.read_namespaced_pod(name, namespace)))
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return None
        raise


# --- what admission reads, and what it tells the pod's creator (issues 13 and 15) -----------------


def warnings_of(api: Api, namespace: str, body: dict[str, Any]) -> list[str]:
    """Create the pod; the warnings the API server passed on from the webhook (HTTP Warning headers)."""
    response = api.core.create_namespaced_pod(namespace, body, _preload_content=False)
    return [w.partition('"')[2].rpartition('"')[0] for w in response.headers.getlist("Warning")]


def test_a_subnet_made_right_after_its_network_is_judged_by_the_api_not_a_trailing_cache(objs: Objects) -> None:
    """The webhooks read Networks and Subnets from the API: from the operator's watch cache, about one
    Subnet in 30 made right after its Network was refused ("does not exist")."""
    for _ in range(20):
        net = objs.network(unique("net"), net_id=7, selector={TEST_LABEL: unique("rack")})
        cidr = free_cidr(objs.api)
        objs.subnet(unique("sub"), net, str(cidr), gateway=str(cidr[1]))


def test_ignored_pools_and_hybridnets_keys_reach_the_pods_creator_as_warnings(
    real_api: Api, real_namespace: str
) -> None:
    said = warnings_of(real_api, real_namespace, pod_body("pooled", annotations={POOL: "100.64.0.50"}))
    assert said == [f"{A(POOL)} is ignored: only pods of a stateful workload (StatefulSet) take their ordinal's entry"]
    alias = names.hybridnet_alias(NET)
    said = warnings_of(real_api, real_namespace, pod_body("aliased", annotations={alias: UNDERLAY}))
    assert said == [f"metadata.annotations[{alias}] is Hybridnet's key: hybridlay reads it, but use {NET}"]
    assert pod_of(real_api, real_namespace, "aliased")["metadata"]["annotations"][NET] == UNDERLAY


def test_a_stateful_pod_asking_for_another_network_than_its_kept_address_is_refused(
    objs: Objects, real_namespace: str
) -> None:
    rack = {TEST_LABEL: unique("rack")}
    node = objs.node(rack)
    net = objs.network(unique("net"), net_id=7, selector=rack)
    cidr = free_cidr(objs.api)
    objs.subnet(unique("sub"), net, str(cidr), gateway=str(cidr[1]))
    labels = {"app": "web"}
    template = {
        "metadata": {"labels": labels, "annotations": {NET: net}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    spec = {"replicas": 1, "serviceName": "web", "selector": {"matchLabels": labels}, "template": template}
    api = objs.api
    with PodLifecycle(api.client, real_namespace, lambda _: node):
        made = api.apps.create_namespaced_stateful_set(real_namespace, {"metadata": {"name": "web"}, "spec": spec})
        [kept] = until(lambda: list(api.instances_of(real_namespace, "web-0").values()), "web-0's address")
        api.apps.patch_namespaced_stateful_set_scale("web", real_namespace, {"spec": {"replicas": 0}})
        until(lambda: pod_of(api, real_namespace, "web-0") is None, "web-0 gone, its address kept")
    owner = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "web",
        "uid": made.metadata.uid,
        "controller": True,
    }
    moved = pod_body("web-0", annotations={NET: OVERLAY})
    moved["metadata"]["ownerReferences"] = [owner]
    said = denial("pods", lambda: api.core.create_namespaced_pod(real_namespace, moved))
    address = kept["spec"]["address"]["ip"].partition("/")[0]
    assert f"{A(NET)} {OVERLAY} differs from network {net} of the address {address} this pod keeps" in said
