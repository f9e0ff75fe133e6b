"""The CRD manifests and example objects agree with the code: names, bounds, columns, examples.

What the API server makes of the CRDs (schemas, defaults, printer columns, the status subresource)
is tested against a real one in tests/api/test_crd_schemas.py; these are the checks that need none.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hybridlay import model, names, validation
from hybridlay.addresses import instance_name

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT / "manifests" / "crds").glob("*.yaml"))
EXAMPLE_FILES = sorted((ROOT / "docs" / "examples").glob("*.yaml"))

CRDS = {crd["spec"]["names"]["kind"]: crd for crd in (yaml.safe_load(p.read_text()) for p in CRD_FILES)}
EXAMPLES = [doc for path in EXAMPLE_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]

Converter = tuple[Callable[[Any], Any], Callable[..., dict[str, Any]]]
CONVERTERS: dict[str, Converter] = {
    names.KIND_NETWORK: (model.network_from_resource, model.network_to_resource),
    names.KIND_SUBNET: (model.subnet_from_resource, model.subnet_to_resource),
    names.KIND_IPINSTANCE: (model.ipinstance_from_resource, model.ipinstance_to_resource),
    names.KIND_NODEINFO: (model.nodeinfo_from_resource, model.nodeinfo_to_resource),
}


def schema(kind: str) -> dict[str, Any]:
    [version] = CRDS[kind]["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def example(kind: str, name: str) -> dict[str, Any]:
    """A private copy of one example object."""
    for doc in EXAMPLES:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return copy.deepcopy(doc)
    raise LookupError(f"no example {kind} {name}")


def example_id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def test_one_file_per_kind_in_our_group() -> None:
    plurals = {
        names.KIND_NETWORK: names.PLURAL_NETWORK,
        names.KIND_SUBNET: names.PLURAL_SUBNET,
        names.KIND_IPINSTANCE: names.PLURAL_IPINSTANCE,
        names.KIND_NODEINFO: names.PLURAL_NODEINFO,
    }
    assert sorted(p.stem for p in CRD_FILES) == sorted(plurals.values())
    for kind, plural in plurals.items():
        crd = CRDS[kind]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == f"{plural}.{names.GROUP}"
        assert crd["spec"]["group"] == names.GROUP
        assert crd["spec"]["names"]["plural"] == plural
        # IPInstance above all: cluster-scoped, so that its name (the address) is unique cluster-wide.
        assert crd["spec"]["scope"] == "Cluster"
        assert crd["spec"]["names"]["categories"] == ["hybridlay"]
        [version] = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == (names.VERSION, True, True)
        assert version["subresources"] == {"status": {}}


def test_short_names_are_unique_and_clash_with_no_core_kind() -> None:
    """kubectl resolves a short name to the first match: one shared with a Kubernetes kind would hide
    it. These are the short names of Kubernetes' own kinds (kubectl api-resources), with ``ip`` of
    networking.k8s.io's IPAddress, which newer servers than the tests' serve."""
    core_short_names = (
        "cj cm crd cs csr deploy ds ep ev hpa ing ip limits netpol no ns pc pdb po pv pvc quota rc rs sa sc sts svc"
    )
    short = [s for crd in CRDS.values() for s in crd["spec"]["names"]["shortNames"]]
    assert sorted(short) == ["hip", "hnet", "hni", "hsubnet"]
    assert not set(core_short_names.split()) & set(short)


def test_no_field_escapes_typing() -> None:
    """x-kubernetes-preserve-unknown-fields would let any field through unchecked: none of ours needs it."""
    for path in CRD_FILES:
        assert "x-kubernetes-preserve-unknown-fields" not in path.read_text(), path.name


PRINTER_COLUMNS = {
    # Hybridnet's columns; IPInstance adds PodNamespace, which a namespaced object showed for free.
    "Network": [
        "NetID",
        "Type",
        "Mode",
        "V4Total",
        "V4Used",
        "V4Available",
        "LastAllocatedV4Subnet",
        "V6Total",
        "V6Used",
        "V6Available",
        "LastAllocatedV6Subnet",
    ],
    "Subnet": ["Version", "CIDR", "Start", "End", "Gateway", "Total", "Used", "Available", "NetID", "Network"],
    "IPInstance": ["IP", "Gateway", "PodName", "PodNamespace", "Node", "Subnet", "Network"],
    "NodeInfo": ["VTEPIP", "VTEPMAC"],
}


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_printer_columns_are_hybridnets(kind: str) -> None:
    [version] = CRDS[kind]["spec"]["versions"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == PRINTER_COLUMNS[kind]


def test_schema_bounds_are_the_webhooks() -> None:
    """The schema refuses nothing the webhook would accept: netID's bound is the widest of its meanings."""
    spec = schema("Network")["properties"]["spec"]["properties"]
    peer = spec["config"]["properties"]["bgpPeers"]["items"]["properties"]
    assert (peer["asn"]["minimum"], peer["asn"]["maximum"]) == (1, validation.ASN_MAX)
    assert (peer["gracefulRestartSeconds"]["minimum"], peer["gracefulRestartSeconds"]["maximum"]) == (
        0,
        validation.GRACEFUL_RESTART_MAX,
    )
    assert peer["gracefulRestartSeconds"]["default"] == model.DEFAULT_GRACEFUL_RESTART_SECONDS
    widest = max(validation.ASN_MAX, validation.VNI_MAX, validation.VLAN_ID_MAX)
    for kind in ("Network", "Subnet"):
        net_id = schema(kind)["properties"]["spec"]["properties"]["netID"]
        assert (net_id["minimum"], net_id["maximum"]) == (0, widest)


# --- example objects ---------------------------------------------------------------------------------


def test_examples_show_the_seeds_scenario() -> None:
    overlay = model.network_from_resource(example("Network", "overlay"))
    assert (overlay.type, overlay.effective_mode, overlay.net_id) == ("Overlay", "VXLAN", 4)
    vlan = model.network_from_resource(example("Network", "underlay-vlan100"))
    assert (vlan.effective_mode, vlan.net_id, vlan.node_selector) == ("VLAN", 100, {"network": "underlay-vlan100"})
    bgp = model.network_from_resource(example("Network", "underlay-bgp"))
    assert bgp.effective_mode == "BGP" and len(bgp.bgp_peers) == 2
    subnets = {doc["metadata"]["name"]: model.subnet_from_resource(doc) for doc in EXAMPLES if doc["kind"] == "Subnet"}
    assert subnets["overlay-v4"].range.cidr == "100.10.0.0/16"
    assert (subnets["underlay-vlan100-v4"].range.cidr, subnets["underlay-vlan100-v4"].range.gateway) == (
        "192.168.56.0/24",
        "192.168.56.1",
    )
    assert {s.range.version for s in subnets.values() if s.network == "overlay"} == {"4", "6"}
    stateful = [
        i
        for i in (model.ipinstance_from_resource(d) for d in EXAMPLES if d["kind"] == "IPInstance")
        if i.binding.referred_object and i.binding.referred_object.kind == "StatefulSet"
    ]
    assert {i.address.version for i in stateful} == {"4", "6"}
    assert len({i.address.mac for i in stateful}) == 1  # a dual-stack pod's two addresses share a MAC
    for instance in stateful:
        assert instance.name == instance_name(ipaddress.ip_interface(instance.address.ip).ip)


@pytest.mark.parametrize("obj", EXAMPLES, ids=example_id)
def test_example_round_trips_through_the_model(obj: dict[str, Any]) -> None:
    parse, render = CONVERTERS[obj["kind"]]
    assert render(parse(obj), with_status="status" in obj) == obj


# --- IPInstance names ----------------------------------------------------------------------------------

NAME_PATTERN = schema("IPInstance")["properties"]["metadata"]["properties"]["name"]["pattern"]
addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address), st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
)


@given(addresses)
def test_every_address_name_matches_the_name_pattern(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """The API server checks the pattern (tests/api/test_crd_schemas.py shows it does, and refuses
    other spellings); the operator's every name must match it. The pattern uses nothing in which
    Go's regular expressions and Python's differ."""
    assert re.search(NAME_PATTERN, instance_name(address))
