"""The CRDs accept what hybridlay writes and the examples show, and refuse what the API server refuses.

No API server runs here (see shared/reference/test-bed.md), so:
- objects are checked against the CRD schemas with jsonschema through ``hybridlay.schema``;
- the CRD manifests are read into the official Python client's models, generated from the
  Kubernetes API's own definitions (every key and type must exist there);
- the rules the API server applies when a CRD is created (structural schema, extensions, defaults,
  subresources, printer columns) are checked by ``hybridlay.schema.crd_problems``, which the
  negative cases below show does catch each kind of mistake.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client import models as k8s_models

from hybridlay import model, names, schema, validation
from hybridlay.addresses import instance_name

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT / "manifests" / "crds").glob("*.yaml"))
EXAMPLE_FILES = sorted((ROOT / "docs" / "examples").glob("*.yaml"))

CRDS = {crd["spec"]["names"]["kind"]: crd for crd in (yaml.safe_load(p.read_text()) for p in CRD_FILES)}
SCHEMAS = {kind: schema.version_schema(crd) for kind, crd in CRDS.items()}
EXAMPLES = [doc for path in EXAMPLE_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]

Converter = tuple[Callable[[Any], Any], Callable[..., dict[str, Any]]]
CONVERTERS: dict[str, Converter] = {
    names.KIND_NETWORK: (model.network_from_resource, model.network_to_resource),
    names.KIND_SUBNET: (model.subnet_from_resource, model.subnet_to_resource),
    names.KIND_IPINSTANCE: (model.ipinstance_from_resource, model.ipinstance_to_resource),
    names.KIND_NODEINFO: (model.nodeinfo_from_resource, model.nodeinfo_to_resource),
}


def example(kind: str, name: str) -> dict[str, Any]:
    """A private copy of one example object."""
    for doc in EXAMPLES:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return copy.deepcopy(doc)
    raise LookupError(f"no example {kind} {name}")


def errors(obj: dict[str, Any]) -> list[str]:
    return [str(e) for e in schema.validation_errors(SCHEMAS[obj["kind"]], obj)]


def example_id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


# --- the CRD manifests ------------------------------------------------------------------------


def test_one_file_per_kind_in_our_group():
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


def test_short_names_are_unique_and_clash_with_no_core_kind():
    # kubectl resolves a short name to the first match: one shared with a core kind would hide it.
    # Core short names (kubectl api-resources), with "ip" of networking.k8s.io IPAddress.
    core_short_names = (
        "cj cm crd cs csr deploy ds ep ev hpa ing ip limits netpol no ns pc pdb po pv pvc quota rc rs sa sc sts svc"
    )
    short = [s for crd in CRDS.values() for s in crd["spec"]["names"]["shortNames"]]
    assert sorted(short) == ["hip", "hnet", "hni", "hsubnet"]
    assert not set(core_short_names.split()) & set(short)


def as_kubernetes_model(value: Any, type_name: str, path: str) -> Any:
    """Build the official client's model of a manifest, refusing any key its API type does not have.

    The client's (pydantic) models are generated from the Kubernetes API's own OpenAPI document and
    check types and required fields: a misspelt key such as ``x-kubernetes-list-map-key`` or
    ``additionalPrinterColumn`` fails here, where the API server would drop or refuse it.
    """
    if type_name.startswith("List["):
        assert isinstance(value, list), path
        return [as_kubernetes_model(v, type_name[5:-1], f"{path}[{i}]") for i, v in enumerate(value)]
    if type_name.startswith("Dict[str, "):
        assert isinstance(value, dict), path
        return {k: as_kubernetes_model(v, type_name[10:-1], f"{path}.{k}") for k, v in value.items()}
    model_class = getattr(k8s_models, type_name, None)
    if model_class is None:  # str, bool, int, float, object: the model's own validation checks them
        return value
    assert isinstance(value, dict), path
    python_names = {json: attr for attr, json in model_class.attribute_map.items()}
    unknown = set(value) - set(python_names)
    assert not unknown, f"{path}: {type_name} has no field {sorted(unknown)}"
    kwargs = {}
    for key, item in value.items():
        attr = python_names[key]
        if type_name == "V1JSONSchemaProps" and key in ("items", "additionalProperties") and isinstance(item, dict):
            # Typed as a plain dict (it may also be a boolean or a list); it is a schema all the same.
            as_kubernetes_model(item, "V1JSONSchemaProps", f"{path}.{key}")
            kwargs[attr] = item
        else:
            kwargs[attr] = as_kubernetes_model(item, model_class.openapi_types[attr], f"{path}.{key}")
    return model_class(**kwargs)


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crd_uses_only_fields_of_the_kubernetes_api(kind):
    assert isinstance(
        as_kubernetes_model(CRDS[kind], "V1CustomResourceDefinition", kind), k8s_models.V1CustomResourceDefinition
    )


def test_kubernetes_api_fields_check_catches_a_misspelt_extension():
    crd = copy.deepcopy(CRDS["Network"])
    bgp_peers = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["config"][
        "properties"
    ]["bgpPeers"]
    bgp_peers["x-kubernetes-list-map-key"] = bgp_peers.pop("x-kubernetes-list-map-keys")
    with pytest.raises(AssertionError, match="x-kubernetes-list-map-key"):
        as_kubernetes_model(crd, "V1CustomResourceDefinition", "Network")


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crd_is_what_the_api_server_accepts(kind):
    assert schema.crd_problems(CRDS[kind]) == []


def test_no_field_escapes_typing():
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
def test_printer_columns_are_hybridnets_and_show_real_fields(kind):
    [version] = CRDS[kind]["spec"]["versions"]
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == PRINTER_COLUMNS[kind]
    # crd_problems (asserted empty above) resolves every jsonPath; check it would see a wrong one.
    broken = copy.deepcopy(CRDS[kind])
    broken["spec"]["versions"][0]["additionalPrinterColumns"][0]["jsonPath"] = ".spec.nothingHere"
    assert any("names no field" in p for p in schema.crd_problems(broken))


def test_printer_column_type_must_be_the_fields():
    broken = copy.deepcopy(CRDS["Network"])
    broken["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = "string"
    assert schema.crd_problems(broken) == [
        "version v1: column NetID: jsonPath '.spec.netID' is of type integer, the column of type string"
    ]


def test_status_is_written_through_its_subresource_only():
    broken = copy.deepcopy(CRDS["Subnet"])
    del broken["spec"]["versions"][0]["subresources"]
    assert any("subresource" in p for p in schema.crd_problems(broken))


def _subnet_schema() -> dict[str, Any]:
    return copy.deepcopy(CRDS["Subnet"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _break(edit: Callable[[dict[str, Any]], None]) -> list[str]:
    broken = _subnet_schema()
    edit(broken)
    return schema.schema_problems(broken)


def _spec(s: dict[str, Any]) -> dict[str, Any]:
    return s["properties"]["spec"]


def _range(s: dict[str, Any]) -> dict[str, Any]:
    return s["properties"]["spec"]["properties"]["range"]["properties"]


STRUCTURAL_MISTAKES = {
    "untyped field": (lambda s: _range(s)["cidr"].pop("type"), "spec.range.cidr: has no type"),
    "preserve-unknown-fields instead of a type": (
        lambda s: _spec(s)["properties"].update(extra={"x-kubernetes-preserve-unknown-fields": True}),
        "spec.extra: uses x-kubernetes-preserve-unknown-fields instead of a type",
    ),
    "properties beside additionalProperties": (
        lambda s: _spec(s).update(additionalProperties={"type": "string"}),
        "spec: properties and additionalProperties are mutually exclusive",
    ),
    "additionalProperties at the root": (
        lambda s: s.update(additionalProperties=False),
        "(root): additionalProperties is not allowed at the root",
    ),
    "list type on a string": (
        lambda s: _range(s)["cidr"].update({"x-kubernetes-list-type": "set"}),
        "spec.range.cidr: x-kubernetes-list-type is only for arrays",
    ),
    "map type on an array": (
        lambda s: _range(s)["reservedIPs"].update({"x-kubernetes-map-type": "atomic"}),
        "spec.range.reservedIPs: x-kubernetes-map-type is only for objects",
    ),
    "set of objects": (
        lambda s: _range(s)["reservedIPs"].update(items={"type": "object"}),
        "spec.range.reservedIPs: a set's items must be scalars",
    ),
    "default of the wrong type": (
        lambda s: _spec(s)["properties"]["config"]["properties"]["private"].update(default="no"),
        "spec.config.private: default 'no' must be of type boolean",
    ),
    "default breaking an enum": (
        lambda s: _range(s)["version"].update(default="5"),
        "spec.range.version: default '5' must be one of '4', '6'",
    ),
    "enum value of the wrong type": (
        lambda s: _range(s)["version"].update(enum=["4", 6]),
        "spec.range.version: enum value 6 must be of type string",
    ),
    "unknown type": (lambda s: _range(s)["cidr"].update(type="ip"), "spec.range.cidr: type 'ip' is not one of"),
    "type inside anyOf": (
        lambda s: _range(s)["gateway"]["anyOf"][0].update(type="string"),
        "spec.range.gateway.anyOf[0]: type is not allowed inside a logical junctor",
    ),
    "field only inside anyOf": (
        lambda s: _spec(s).update(anyOf=[{"properties": {"ghost": {"minLength": 1}}}]),
        "spec.anyOf[0].ghost: is not specified outside the logical junctor",
    ),
    "constraint on metadata.labels": (
        lambda s: s["properties"]["metadata"].update(properties={"labels": {"type": "object"}}),
        "metadata.labels: only name and generateName may be constrained",
    ),
}


@pytest.mark.parametrize("mistake", sorted(STRUCTURAL_MISTAKES))
def test_structural_checker_finds(mistake):
    edit, problem = STRUCTURAL_MISTAKES[mistake]
    problems = _break(edit)
    assert any(p.startswith(problem) for p in problems), problems


def test_map_list_keys_must_be_required():
    crd = copy.deepcopy(CRDS["Network"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["config"]["properties"]["bgpPeers"]["items"]["required"] = ["asn"]
    assert schema.crd_problems(crd) == [
        "version v1: spec.config.bgpPeers: map key address must be required or have a default"
    ]


def test_pattern_must_be_a_regular_expression():
    problems = _break(lambda s: _range(s)["cidr"].update(pattern="^[0-9"))
    assert problems == ["spec.range.cidr: pattern '^[0-9' is not a regular expression"]


def test_crd_name_must_be_plural_dot_group():
    crd = copy.deepcopy(CRDS["NodeInfo"])
    crd["metadata"]["name"] = "nodeinfo.networking.hybridlay.io"
    assert schema.crd_problems(crd) == ["metadata.name: must be <plural>.<group>"]


# --- example objects --------------------------------------------------------------------------


def test_examples_show_the_seeds_scenario():
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
def test_example_is_valid(obj):
    assert errors(obj) == []


@pytest.mark.parametrize("obj", EXAMPLES, ids=example_id)
def test_example_round_trips_through_the_model(obj):
    parse, render = CONVERTERS[obj["kind"]]
    assert render(parse(obj), with_status="status" in obj) == obj


@pytest.mark.parametrize("obj", EXAMPLES, ids=example_id)
def test_example_keeps_its_meaning_once_the_api_server_defaults_it(obj):
    parse, _ = CONVERTERS[obj["kind"]]
    stored = schema.apply_defaults(SCHEMAS[obj["kind"]], obj)
    assert errors(stored) == []
    assert parse(stored) == parse(obj)


def test_defaults_are_hybridnets():
    peer = {"asn": 65000, "address": "fd00:20::1"}
    network = schema.apply_defaults(SCHEMAS["Network"], {"spec": {"config": {"bgpPeers": [peer]}}})
    assert network["spec"]["type"] == model.NetworkType.UNDERLAY
    assert network["spec"]["config"]["bgpPeers"][0]["gracefulRestartSeconds"] == model.DEFAULT_GRACEFUL_RESTART_SECONDS
    assert "mode" not in network["spec"]  # follows the type: set by the operator, not the schema
    subnet = schema.apply_defaults(SCHEMAS["Subnet"], example("Subnet", "underlay-vlan100-v4"))
    # private defaults to false; autoNatOutgoing stays unset, as a VLAN subnet must leave it.
    assert subnet["spec"]["config"] == {"private": False}


def test_schema_bounds_are_the_webhooks():
    """The schema refuses nothing the webhook would accept: netID's bound is the widest of its meanings."""
    spec = SCHEMAS["Network"]["properties"]["spec"]["properties"]
    peer = spec["config"]["properties"]["bgpPeers"]["items"]["properties"]
    assert (peer["asn"]["minimum"], peer["asn"]["maximum"]) == (1, validation.ASN_MAX)
    assert (peer["gracefulRestartSeconds"]["minimum"], peer["gracefulRestartSeconds"]["maximum"]) == (
        0,
        validation.GRACEFUL_RESTART_MAX,
    )
    widest = max(validation.ASN_MAX, validation.VNI_MAX, validation.VLAN_ID_MAX)
    for kind in ("Network", "Subnet"):
        net_id = SCHEMAS[kind]["properties"]["spec"]["properties"]["netID"]
        assert (net_id["minimum"], net_id["maximum"]) == (0, widest)


# --- what hybridlay itself writes ------------------------------------------------------------

STATS = model.Statistics(total=65534, used=3, available=65531)
MODEL_OBJECTS = [
    model.Network(
        name="underlay-bgp",
        type=model.NetworkType.UNDERLAY,
        mode=model.NetworkMode.BGP,
        net_id=4294967295,
        node_selector={"network": "underlay-bgp"},
        bgp_peers=(
            model.BGPPeer(
                asn=65000,
                address="10.20.0.1",
                password_secret=model.SecretKeyRef("bgp", "tor1", "kube-system"),
                does_not_route_traffic=True,
                allow_not_established=True,
            ),
            model.BGPPeer(asn=4200000000, address="fd00:20::1", graceful_restart_seconds=0),
        ),
        status=model.NetworkStatus(
            last_allocated_subnet="underlay-bgp-v4",
            last_allocated_ipv6_subnet="underlay-bgp-v6",
            subnet_list=("underlay-bgp-v4", "underlay-bgp-v6"),
            node_list=("node1", "node2"),
            statistics=STATS,
            ipv6_statistics=STATS,
            dual_stack_statistics=STATS,
        ),
    ),
    model.Subnet(
        name="underlay-vlan100-v4",
        network="underlay-vlan100",
        net_id=100,
        range=model.AddressRange(
            version="4",
            cidr="192.168.56.0/24",
            start="192.168.56.100",
            end="192.168.56.200",
            gateway="192.168.56.1",
            reserved_ips=("192.168.56.101",),
            exclude_ips=("192.168.56.150",),
        ),
        config=model.SubnetConfig(auto_nat_outgoing=False, private=True),
        status=model.SubnetStatus(total=98, used=1, available=97, last_allocated_ip="192.168.56.100"),
    ),
    model.IPInstance(
        name="fd00-100-10-0-0-0-0-5",
        network="overlay",
        subnet="overlay-v6",
        address=model.InstanceAddress(
            version="6", ip="fd00:100:10::5/112", gateway="fd00:100:10::1", net_id=4, mac="02:12:34:5a:0b:7c"
        ),
        binding=model.Binding(
            pod_name="web-0",
            pod_namespace="shop",
            pod_uid="u1",
            node_name="node1",
            referred_object=model.ReferredObject("StatefulSet", "web", "s1"),
            stateful_index=0,
        ),
        labels={names.LABEL_SUBNET: "overlay-v6"},
        status=model.IPInstanceStatus(
            node_name="node1",
            pod_name="web-0",
            pod_namespace="shop",
            sandbox_id="c0ffee",
            update_timestamp="2026-11-22T03:00:00Z",
        ),
    ),
    # A reserved stateful address: the pod is gone, node and pod UID cleared.
    model.IPInstance(
        name="100-10-0-6",
        network="overlay",
        subnet="overlay-v4",
        address=model.InstanceAddress(version="4", ip="100.10.0.6/16"),
        binding=model.Binding(pod_name="web-1", pod_namespace="shop", stateful_index=1),
    ),
    model.NodeInfo(
        name="node1",
        vtep=model.VTEPInfo("192.168.56.11", "5a:3c:7e:12:9f:01", ("192.168.56.11",)),
        update_timestamp="2026-11-22T03:00:00Z",
    ),
    model.NodeInfo(name="node2"),
]


@pytest.mark.parametrize("obj", MODEL_OBJECTS, ids=lambda o: f"{type(o).__name__}/{o.name}")
def test_what_the_model_writes_is_valid(obj):
    """Every field the model emits exists in the CRD (unknown fields are errors) with its type."""
    kind = type(obj).__name__
    _, render = CONVERTERS[kind]
    resource = render(obj, with_status=True)
    assert errors(resource) == []


# --- what the schema refuses -----------------------------------------------------------------


class _Remove:
    def __repr__(self) -> str:
        return "<removed>"


REMOVE = _Remove()


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set (or with REMOVE delete) the field at a dotted path; ``[n]`` indexes a list."""
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is REMOVE:
        del node[key]
    else:
        node[key] = value


IP_REASON = "is not a valid ipv4 or ipv6"
BAD_INPUT = [
    # (example, field, value set there, reason given)
    ("Network/overlay", "spec.type", "Bridge", "must be one of 'Underlay', 'Overlay', 'GlobalBGP'"),
    ("Network/overlay", "spec.mode", "vxlan", "must be one of 'VLAN', 'VXLAN', 'BGP', 'GlobalBGP'"),
    ("Network/overlay", "spec.netID", "4", "must be of type integer"),
    ("Network/overlay", "spec.netID", 4294967296, "must be at most 4294967295"),
    ("Network/underlay-bgp", "spec.config.bgpPeers[0].asn", 0, "must be at least 1"),
    ("Network/underlay-bgp", "spec.config.bgpPeers[1].address", "10.20.0.300", IP_REASON),
    ("Network/underlay-bgp", "spec.config.bgpPeers[0].password", "s3cret", "is not a known field"),
    ("Network/underlay-bgp", "spec.config.bgpPeers[0].gracefulRestartSeconds", 5000, "must be at most 4095"),
    ("Network/underlay-bgp", "spec.config.bgpPeers[0].passwordSecretRef.key", REMOVE, "is required"),
    ("Subnet/overlay-v4", "spec.network", REMOVE, "is required"),
    ("Subnet/overlay-v4", "spec.range.cidr", REMOVE, "is required"),
    ("Subnet/overlay-v4", "spec.range.version", 4, "must be of type string"),
    ("Subnet/overlay-v4", "spec.range.cidr", "100.10.0.0", "is not a valid cidr"),
    ("Subnet/overlay-v4", "spec.range.cidr", "100.10.0.0/33", "is not a valid cidr"),
    ("Subnet/overlay-v4", "spec.netId", 4, "is not a known field"),
    ("Subnet/overlay-v6", "spec.config.autoNatOutgoing", "yes", "must be of type boolean"),
    # The seeds' own Subnet example carries this typo.
    ("Subnet/underlay-vlan100-v4", "spec.range.start", "192,168,56,100", IP_REASON),
    ("Subnet/underlay-vlan100-v4", "spec.range.excludeIPs[0]", "fd00::1%eth0", IP_REASON),
    ("Subnet/underlay-vlan100-v4", "spec.range.reservedIPs", ["192.168.56.9"] * 2, "has duplicate entries"),
    ("IPInstance/100-10-0-5", "spec.subnet", REMOVE, "is required"),
    ("IPInstance/100-10-0-5", "spec.address.ip", REMOVE, "is required"),
    ("IPInstance/100-10-0-5", "spec.address.ip", "100.10.0.5", "is not a valid cidr"),
    ("IPInstance/100-10-0-5", "spec.address.mac", "02:12:34:5a:0b", "is not a valid mac"),
    ("IPInstance/100-10-0-5", "spec.binding.stateful.index", -1, "must be at least 0"),
    ("NodeInfo/node1", "spec.vtepInfo.ip", "node1", IP_REASON),
    ("NodeInfo/node1", "spec.vtepInfo.mac", REMOVE, "is required"),
]


@pytest.mark.parametrize(("which", "path", "value", "reason"), BAD_INPUT, ids=[f"{b[1]}={b[2]!r}" for b in BAD_INPUT])
def test_schema_refuses(which, path, value, reason):
    obj = example(*which.split("/"))
    _set(obj, path, value)
    found = errors(obj)
    assert f"{path} {None if value is REMOVE else value}: {reason}" in found, found


def test_duplicate_bgp_peer_names_both_entries():
    obj = example("Network", "underlay-bgp")
    obj["spec"]["config"]["bgpPeers"][1]["address"] = "10.20.0.1"
    assert errors(obj) == [
        "spec.config.bgpPeers[1] "
        + str(obj["spec"]["config"]["bgpPeers"][1])
        + ": duplicate entry (address='10.20.0.1') also at [0]"
    ]


# --- IPInstance names ------------------------------------------------------------------------

addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address), st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
)


@given(addresses)
def test_every_address_name_matches_the_name_pattern(address):
    obj = example("IPInstance", "100-10-0-5")
    obj["metadata"]["name"] = instance_name(address)
    assert errors(obj) == []


@pytest.mark.parametrize(
    "name",
    [
        "10-0-0-256",
        "010-0-0-5",
        "10-0-0",
        "fd00-0-0-0-0-0-5",
        "fd00-0000-0-0-0-0-0-5",
        "FD00-0-0-0-0-0-0-5",
        "fd00--5",
        "10.0.0.5",
        "fd00::5",
    ],
)
def test_other_spellings_of_an_address_are_not_names(name):
    obj = example("IPInstance", "100-10-0-5")
    obj["metadata"]["name"] = name
    pattern = SCHEMAS["IPInstance"]["properties"]["metadata"]["properties"]["name"]["pattern"]
    assert errors(obj) == [f"metadata.name {name}: must match {pattern}"]


# --- formats, as the API server reads them ---------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "value", "valid"),
    [
        ("ipv4", "192.168.56.1", True),
        ("ipv4", "::ffff:192.168.56.1", True),  # Go: parses as an IP and contains a dot
        ("ipv4", "fd00::1", False),
        ("ipv4", "192.168.56", False),
        ("ipv6", "fd00::1", True),
        ("ipv6", "fe80::1%eth0", False),  # Go's net.ParseIP has no zones
        ("ipv6", "192.168.56.1", False),
        ("cidr", "10.0.0.5/24", True),  # host bits allowed, as by net.ParseCIDR (canonical form is the webhook's)
        ("cidr", "fd00::/112", True),
        ("cidr", "10.0.0.0/255.0.0.0", False),
        ("cidr", "10.0.0.0/", False),
        ("cidr", "fd00::/129", False),
        ("mac", "02:12:34:5a:0b:7c", True),
        ("mac", "02-12-34-5A-0B-7C", True),
        ("mac", "0212.345a.0b7c", True),
        ("mac", "02:12:34:5a:0b:7c:", False),
        ("mac", "0212345a0b7c", False),
    ],
)
def test_format(fmt, value, valid):
    assert schema.FORMAT_CHECKER.conforms(value, fmt) is valid


def test_openapi_dialect_is_translated():
    openapi = {
        "type": "object",
        "properties": {
            "maybe": {"type": "string", "nullable": True, "enum": ["a"]},
            "port": {"x-kubernetes-int-or-string": True},
            "anything": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
        },
    }
    assert schema.validation_errors(openapi, {"maybe": None, "port": "http", "anything": {"x": 1}}) == []
    assert schema.validation_errors(openapi, {"port": 80}) == []
    assert [str(e) for e in schema.validation_errors(openapi, {"port": 1.5, "maybe": "b"})] == [
        "maybe b: must be one of 'a', None",
        "port 1.5: must be of type integer or string",
    ]
