"""Our CRDs as the real API server applies them: what it serves, refuses (422 naming the field),
drops, defaults and prints, and how it keeps status apart from spec.

The CRDs are applied from ``manifests/crds/`` as they are (tests/support/realcluster.py). Objects
that should not stay are created with ``dryRun=All``: the server validates, defaults and calls the
validating webhooks, then stores nothing. The schema comes before the webhooks, so a webhook's
denial of a dry run still means the schema accepted the object.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from apitopo import OVERLAY, UNDERLAY, UNDERLAY_SUBNET, Api, until
from kubernetes.client.exceptions import ApiException

from hybridlay import model, names
from hybridlay.addresses import instance_name

ROOT = Path(__file__).resolve().parents[2]
CRDS = {
    crd["spec"]["names"]["kind"]: crd
    for crd in (yaml.safe_load(p.read_text()) for p in sorted((ROOT / "manifests" / "crds").glob("*.yaml")))
}
PLURAL = {kind: crd["spec"]["names"]["plural"] for kind, crd in CRDS.items()}
EXAMPLES = [
    doc for path in sorted((ROOT / "docs" / "examples").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
]
EXAMPLES = [doc for doc in EXAMPLES if doc]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
PARSE = {
    names.KIND_NETWORK: model.network_from_resource,
    names.KIND_SUBNET: model.subnet_from_resource,
    names.KIND_IPINSTANCE: model.ipinstance_from_resource,
    names.KIND_NODEINFO: model.nodeinfo_from_resource,
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def request(
    api: Api, method: str, path: str, accept: str | None = None, body: Any = None, **query: str
) -> tuple[int, Any]:
    """A request the typed clients do not make (discovery, a Table, a CRD they would refuse to send):
    the status code and the decoded answer."""
    headers = {"Accept": accept} if accept else {}
    prepared = api.client.param_serialize(
        method, path, header_params=headers, body=body, query_params=list(query.items()), auth_settings=["BearerToken"]
    )
    answer = api.client.call_api(*prepared)
    answer.read()
    return answer.status, json.loads(answer.data)


def raw(api: Api, method: str, path: str, accept: str | None = None) -> Any:
    status, answer = request(api, method, path, accept)
    assert status == 200, answer
    return answer


def refusal(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """The status code and Status body of a refused request."""
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


def is_webhook_denial(body: dict[str, Any]) -> bool:
    return str(body.get("message", "")).startswith("admission webhook ")


def dry_create(api: Api, obj: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    """Create ``obj`` in a dry run: the stored object as the server would keep it."""
    return dict(
        api.custom.create_cluster_custom_object(
            names.GROUP,
            names.VERSION,
            PLURAL[obj["kind"]],
            obj,
            dry_run="All",
            field_validation="Strict" if strict else None,
        )
    )


def schema_verdict(api: Api, obj: dict[str, Any]) -> dict[str, Any] | None:
    """Dry-run create with strict field validation: the stored object, or None when our validating
    webhook (called after the schema) denied it; any refusal by the schema fails the test."""
    try:
        return dry_create(api, obj)
    except ApiException as e:
        body = json.loads(e.body)
        assert is_webhook_denial(body), f"{obj['kind']}/{obj['metadata']['name']} refused: {body['message']}"
        return None


def at(obj: Any, path: str) -> Any:
    """The value at a dotted path (``[n]`` indexes a list); None where the path leads nowhere."""
    for part in path.replace("[", ".").replace("]", "").strip(".").split("."):
        if isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


class _Remove:
    def __repr__(self) -> str:
        return "<removed>"


REMOVE = _Remove()


def changed(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with the field at ``path`` set to ``value`` (or removed: REMOVE)."""
    obj = copy.deepcopy(obj)
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is REMOVE:
        del node[key]
    else:
        node[key] = value
    return obj


def free_cidr(api: Api, prefix: str = "10.150") -> ipaddress.IPv4Network:
    """A /24 under ``prefix`` that no existing subnet overlaps (the webhook refuses overlaps)."""
    taken = [
        ipaddress.ip_network(s["spec"]["range"]["cidr"], strict=False)
        for s in api.custom.list_cluster_custom_object(names.GROUP, names.VERSION, "subnets")["items"]
    ]
    for i in range(256):
        cidr = ipaddress.IPv4Network(f"{prefix}.{i}.0/24")
        if not any(t.version == 4 and t.overlaps(cidr) for t in taken):
            return cidr
    raise AssertionError(f"no free /24 under {prefix}")


# --- valid objects, one of each kind: every field the CRD has ------------------------------------


def bgp_network(name: str) -> dict[str, Any]:
    """An Underlay BGP network selecting no node, which the webhook accepts in the shared cluster."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Network",
        "metadata": {"name": name},
        "spec": {
            "type": "Underlay",
            "mode": "BGP",
            "netID": 65010,
            "nodeSelector": {"hybridlay-test/rack": name},
            "config": {
                "bgpPeers": [
                    {
                        "asn": 65000,
                        "address": "10.20.0.1",
                        "gracefulRestartSeconds": 120,
                        "passwordSecretRef": {"name": "bgp", "key": "tor1", "namespace": "kube-system"},
                        "allowNotEstablished": True,
                    },
                    {"asn": 4200000000, "address": "fd00:20::1", "doesNotRouteTraffic": True},
                ]
            },
        },
    }


def vlan_subnet(name: str, cidr: ipaddress.IPv4Network) -> dict[str, Any]:
    """A subnet of the shared underlay network (VLAN 100) in ``cidr``, with every range field."""
    host = list(cidr.hosts())
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Subnet",
        "metadata": {"name": name},
        "spec": {
            "network": UNDERLAY,
            "netID": 100,
            "range": {
                "version": "4",
                "cidr": str(cidr),
                "start": str(host[99]),
                "end": str(host[199]),
                "gateway": str(host[0]),
                "reservedIPs": [str(host[100])],
                "excludeIPs": [str(host[149])],
            },
            "config": {"private": True},
        },
    }


IPINSTANCE: dict[str, Any] = {
    "apiVersion": names.API_VERSION,
    "kind": "IPInstance",
    "metadata": {"name": "100-10-0-5", "labels": {names.LABEL_SUBNET: "overlay-v4"}},
    "spec": {
        "network": "overlay",
        "subnet": "overlay-v4",
        "address": {
            "version": "4",
            "ip": "100.10.0.5/16",
            "gateway": "100.10.0.1",
            "netID": 4,
            "mac": "02:12:34:5a:0b:7c",
        },
        "binding": {
            "podName": "web-0",
            "podNamespace": "shop",
            "podUID": "u1",
            "nodeName": "node1",
            "referredObject": {"kind": "StatefulSet", "name": "web", "uid": "s1"},
            "stateful": {"index": 0},
        },
    },
}
NODEINFO: dict[str, Any] = {
    "apiVersion": names.API_VERSION,
    "kind": "NodeInfo",
    "metadata": {"name": "node1"},
    "spec": {"vtepInfo": {"ip": "192.168.56.11", "mac": "5a:3c:7e:12:9f:01", "localIPs": ["192.168.56.11"]}},
}


def valid(kind: str) -> dict[str, Any]:
    """A valid object of ``kind`` for the schema cases (Network and Subnet: also valid for the webhooks
    would not matter, the schema refuses before they are called)."""
    return {
        "Network": lambda: bgp_network("bgp"),
        "Subnet": lambda: vlan_subnet("vlan", ipaddress.IPv4Network("192.168.57.0/24")),
        "IPInstance": lambda: copy.deepcopy(IPINSTANCE),
        "NodeInfo": lambda: copy.deepcopy(NODEINFO),
    }[kind]()


# --- the CRDs themselves --------------------------------------------------------------------------


def test_our_kinds_are_served_cluster_scoped_with_names_and_a_status_subresource(real_api: Api) -> None:
    served = raw(real_api, "GET", f"/apis/{names.GROUP}/{names.VERSION}")["resources"]
    by_name = {r["name"]: r for r in served}
    for kind, crd in CRDS.items():
        declared = crd["spec"]["names"]
        resource = by_name[declared["plural"]]
        assert resource["kind"] == kind
        # Cluster-scoped: an IPInstance's name, the address, is unique in the whole cluster.
        assert resource["namespaced"] is False
        assert resource["singularName"] == declared["singular"]
        assert resource["shortNames"] == declared["shortNames"]
        assert resource["categories"] == ["hybridlay"]
        assert sorted(by_name[f"{declared['plural']}/status"]["verbs"]) == ["get", "patch", "update"]


def test_our_short_names_name_nothing_else_the_server_serves(real_api: Api) -> None:
    """kubectl resolves a short name to the first resource that has it: a shared one hides one of them."""
    lists = [raw(real_api, "GET", "/api/v1")]
    for group in raw(real_api, "GET", "/apis")["groups"]:
        lists += [raw(real_api, "GET", f"/apis/{v['groupVersion']}") for v in group["versions"]]
    owners: dict[str, set[str]] = {}
    for listing in lists:
        for resource in listing["resources"]:
            for short in resource.get("shortNames") or []:
                owners.setdefault(short, set()).add(f"{listing['groupVersion']} {resource['name']}")
    ours = [s for crd in CRDS.values() for s in crd["spec"]["names"]["shortNames"]]
    assert {s: sorted(owners[s]) for s in ours} == {
        s: [f"{names.API_VERSION} {crd['spec']['names']['plural']}"]
        for crd in CRDS.values()
        for s in crd["spec"]["names"]["shortNames"]
    }


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_the_crd_manifest_passes_the_servers_strict_validation_unchanged(real_api: Api, kind: str) -> None:
    """Every key of the manifest is a field of the CRD API (strict field validation refuses a misspelt
    one, such as ``x-kubernetes-list-map-key``, which would otherwise be dropped without a word), the
    schema is structural, and the server keeps the schema as written."""
    crd = CRDS[kind]
    live = raw(real_api, "GET", crd_path(crd))
    conditions = {c["type"]: c["status"] for c in live["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    assert conditions.get("NamesAccepted") == "True"
    assert "NonStructuralSchema" not in conditions
    status, stored = replace_crd(real_api, crd, live)
    assert status == 200, stored
    [declared] = crd["spec"]["versions"]
    [stored_version] = stored["spec"]["versions"]
    assert stored_version["schema"] == declared["schema"]
    assert stored_version["subresources"] == {"status": {}}


def crd_path(crd: dict[str, Any]) -> str:
    return f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"


def replace_crd(api: Api, crd: dict[str, Any], live: dict[str, Any]) -> tuple[int, Any]:
    """PUT ``crd`` over the live CRD in a dry run with strict field validation."""
    body = copy.deepcopy(crd)
    body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    return request(api, "PUT", crd_path(crd), body=body, dryRun="All", fieldValidation="Strict")


def test_a_misspelt_crd_key_is_refused_by_strict_validation(real_api: Api) -> None:
    """What the test above relies on: a key the CRD API does not have is an error, not silence."""
    crd = copy.deepcopy(CRDS["Network"])
    peers = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["config"][
        "properties"
    ]["bgpPeers"]
    peers["x-kubernetes-list-map-key"] = peers.pop("x-kubernetes-list-map-keys")
    status, answer = replace_crd(real_api, crd, raw(real_api, "GET", crd_path(crd)))
    assert status == 400
    assert "x-kubernetes-list-map-key" in answer["message"]


# --- what the schema refuses: 422 naming the field ------------------------------------------------

BAD_INPUT = [
    # (kind, field set, value there, field the server names)
    ("Network", "spec.type", "Bridge", None),
    ("Network", "spec.mode", "vxlan", None),
    ("Network", "spec.netID", "4", None),
    ("Network", "spec.netID", -1, None),
    ("Network", "spec.netID", 4294967296, None),
    ("Network", "spec.nodeSelector", {"rack": 5}, "spec.nodeSelector.rack"),
    ("Network", "spec.config.bgpPeers[0].asn", 0, None),
    ("Network", "spec.config.bgpPeers[0].asn", 4294967296, None),
    ("Network", "spec.config.bgpPeers[0].address", "10.20.0.300", None),
    ("Network", "spec.config.bgpPeers[0].address", REMOVE, None),
    ("Network", "spec.config.bgpPeers[1].address", "10.20.0.1", "spec.config.bgpPeers[1]"),
    ("Network", "spec.config.bgpPeers[0].gracefulRestartSeconds", 4096, None),
    ("Network", "spec.config.bgpPeers[0].passwordSecretRef.key", REMOVE, None),
    ("Network", "spec.config.bgpPeers[0].passwordSecretRef.name", "", None),
    ("Network", "spec.config.bgpPeers[1].doesNotRouteTraffic", "yes", None),
    ("Subnet", "spec", REMOVE, None),
    ("Subnet", "spec.network", REMOVE, None),
    ("Subnet", "spec.network", "", None),
    ("Subnet", "spec.netID", 4294967296, None),
    ("Subnet", "spec.range.version", 4, None),
    ("Subnet", "spec.range.version", "5", None),
    ("Subnet", "spec.range.cidr", REMOVE, None),
    ("Subnet", "spec.range.cidr", "192.168.57.0", None),
    ("Subnet", "spec.range.cidr", "192.168.57.0/33", None),
    # The seeds' own Subnet example once carried this typo.
    ("Subnet", "spec.range.start", "192,168,57,100", None),
    ("Subnet", "spec.range.gateway", "gateway", None),
    ("Subnet", "spec.range.excludeIPs[0]", "fd00::1%eth0", None),
    ("Subnet", "spec.range.reservedIPs", ["192.168.57.9", "192.168.57.9"], "spec.range.reservedIPs[1]"),
    ("Subnet", "spec.config.autoNatOutgoing", "yes", None),
    ("Subnet", "spec.config.private", 1, None),
    ("IPInstance", "metadata.name", "10.0.0.5", None),
    ("IPInstance", "spec", REMOVE, None),
    ("IPInstance", "spec.subnet", REMOVE, None),
    ("IPInstance", "spec.network", "", None),
    ("IPInstance", "spec.address.version", "5", None),
    ("IPInstance", "spec.address.ip", REMOVE, None),
    ("IPInstance", "spec.address.ip", "100.10.0.5", None),
    ("IPInstance", "spec.address.gateway", "100.10.0", None),
    ("IPInstance", "spec.address.mac", "02:12:34:5a:0b", None),
    ("IPInstance", "spec.address.netID", -1, None),
    ("IPInstance", "spec.binding.stateful.index", -1, None),
    ("IPInstance", "spec.binding.referredObject.uid", REMOVE, None),
    ("NodeInfo", "spec.vtepInfo.ip", "node1", None),
    ("NodeInfo", "spec.vtepInfo.mac", REMOVE, None),
    ("NodeInfo", "spec.vtepInfo.localIPs", ["10.0.0.1", "10.0.0.1"], "spec.vtepInfo.localIPs[1]"),
]


@pytest.mark.parametrize(
    ("kind", "path", "value", "named"), BAD_INPUT, ids=[f"{b[0]}:{b[1]}={b[2]!r}" for b in BAD_INPUT]
)
def test_the_schema_refuses_a_bad_field_naming_it(
    real_api: Api, kind: str, path: str, value: Any, named: str | None
) -> None:
    obj = changed(valid(kind), path, value)
    status, body = refusal(lambda: dry_create(real_api, obj))
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert not is_webhook_denial(body)
    assert named or path in [c.get("field") for c in body["details"]["causes"]], body["details"]["causes"]
    assert (named or path) in body["message"]


def test_the_valid_objects_of_the_cases_above_are_stored_as_they_are(real_api: Api) -> None:
    """Each case above is a valid object with one change: unchanged, the object passes the schema and
    (in this cluster) the webhooks, and reads back as it was."""
    for kind in CRDS:
        obj = valid(kind)
        if kind in ("Network", "NodeInfo"):
            obj["metadata"]["name"] = unique(kind.lower())
        stored = schema_verdict(real_api, obj)
        assert stored is not None, kind
        assert PARSE[kind](stored) == PARSE[kind](obj)


def test_an_unknown_field_is_dropped_and_strict_validation_names_it(real_api: Api) -> None:
    """A plain BGP password never gets stored: only a reference to a Secret is a field."""
    network = bgp_network(unique("bgp"))
    network["spec"]["config"]["bgpPeers"][0]["password"] = "s3cret"
    status, body = refusal(lambda: dry_create(real_api, network))
    assert status == 400
    assert 'unknown field "spec.config.bgpPeers[0].password"' in body["message"]
    stored = dry_create(real_api, network, strict=False)
    assert "password" not in stored["spec"]["config"]["bgpPeers"][0]
    assert stored["spec"]["config"]["bgpPeers"][0]["passwordSecretRef"]["key"] == "tor1"


FORMATS = [
    # (field of a NodeInfo or IPInstance, value, accepted): Go's parsers, as the server reads formats.
    ("spec.vtepInfo.ip", "192.168.56.1", True),
    ("spec.vtepInfo.ip", "fd00::1", True),
    ("spec.vtepInfo.ip", "::ffff:192.168.56.1", True),
    ("spec.vtepInfo.ip", "192.168.56", False),
    ("spec.vtepInfo.ip", "fe80::1%eth0", False),
    ("spec.vtepInfo.mac", "02:12:34:5a:0b:7c", True),
    ("spec.vtepInfo.mac", "02-12-34-5A-0B-7C", True),
    ("spec.vtepInfo.mac", "0212.345a.0b7c", True),
    ("spec.vtepInfo.mac", "02:12:34:5a:0b:7c:", False),
    ("spec.vtepInfo.mac", "0212345a0b7c", False),
    ("spec.address.ip", "100.10.0.5/16", True),  # host bits are what an IPInstance's ip has
    ("spec.address.ip", "fd00::5/112", True),
    ("spec.address.ip", "100.10.0.5/255.255.0.0", False),
    ("spec.address.ip", "fd00::5/129", False),
]


@pytest.mark.parametrize(("path", "value", "accepted"), FORMATS, ids=[f"{f[0]}={f[1]}" for f in FORMATS])
def test_formats_as_the_server_reads_them(real_api: Api, path: str, value: str, accepted: bool) -> None:
    obj = changed(copy.deepcopy(NODEINFO if path.startswith("spec.vtepInfo") else IPINSTANCE), path, value)
    obj["metadata"]["name"] = instance_name("100.10.0.5") if obj["kind"] == "IPInstance" else unique("node")
    if accepted:
        assert at(dry_create(real_api, obj), path) == value
    else:
        status, body = refusal(lambda: dry_create(real_api, obj))
        assert (status, path in body["message"]) == (422, True), body["message"]


ADDRESSES = ["0.0.0.0", "10.0.0.5", "255.255.255.255", "::", "fd00::5", "fd00:100:10::ab:5", "ffff:" * 7 + "ffff"]


def test_every_address_name_is_an_ipinstance_name_and_no_other_spelling_is(real_api: Api) -> None:
    """The name pattern lets one spelling per address through, the one the operator writes."""
    for address in ADDRESSES:
        obj = copy.deepcopy(IPINSTANCE)
        obj["metadata"]["name"] = instance_name(address)
        assert dry_create(real_api, obj)["metadata"]["name"] == instance_name(address)
    for other in (
        "10-0-0-256",
        "010-0-0-5",
        "10-0-0",
        "fd00-0-0-0-0-0-5",
        "fd00-0000-0-0-0-0-0-5",
        "FD00-0-0-0-0-0-0-5",
    ):
        obj = changed(IPINSTANCE, "metadata.name", other)
        status, body = refusal(lambda obj=obj: dry_create(real_api, obj))
        assert status == 422
        assert "metadata.name" in body["message"], body["message"]


# --- defaults ---------------------------------------------------------------------------------------


def test_defaults_are_hybridnets(real_api: Api) -> None:
    network = bgp_network(unique("bgp"))
    del network["spec"]["type"]
    del network["spec"]["config"]["bgpPeers"][0]["gracefulRestartSeconds"]
    stored = dry_create(real_api, network)
    assert stored["spec"]["type"] == "Underlay"
    assert stored["spec"]["config"]["bgpPeers"][0]["gracefulRestartSeconds"] == model.DEFAULT_GRACEFUL_RESTART_SECONDS
    mode_less = bgp_network(unique("vlan"))
    del mode_less["spec"]["mode"], mode_less["spec"]["config"]
    mode_less["spec"]["netID"] = 200
    assert "mode" not in dry_create(real_api, mode_less)["spec"]  # it follows the type: no default

    subnet = vlan_subnet(unique("vlan"), free_cidr(real_api))
    del subnet["spec"]["config"]
    # private defaults to false; autoNatOutgoing stays unset, as a VLAN subnet must leave it.
    assert dry_create(real_api, subnet)["spec"]["config"] == {"private": False}


@pytest.mark.parametrize("obj", EXAMPLES, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_example_passes_the_schema_and_keeps_its_meaning_once_stored(real_api: Api, obj: dict[str, Any]) -> None:
    """docs/examples: accepted by the schema with strict field validation; where our webhooks let the
    example into this cluster (they refuse a second overlay, overlapping subnets...), what the server
    stores (defaults filled in) reads back through the model as the example does."""
    stored = schema_verdict(real_api, copy.deepcopy(obj))
    if stored is not None:
        parse = PARSE[obj["kind"]]
        assert parse(stored) == parse({k: v for k, v in obj.items() if k != "status"})


# --- what hybridlay itself writes ---------------------------------------------------------------

STATS = model.Statistics(total=65534, used=3, available=65531)


def model_objects(subnet_cidr: ipaddress.IPv4Network) -> list[Any]:
    """One object of each kind with every field the model writes, status included; the Network and
    Subnet are ones our webhooks accept in the shared cluster."""
    host = list(subnet_cidr.hosts())
    return [
        model.Network(
            name=unique("underlay-bgp"),
            type=model.NetworkType.UNDERLAY,
            mode=model.NetworkMode.BGP,
            net_id=4294967295,
            node_selector={"hybridlay-test/rack": "none"},
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
            name=unique("underlay-v4"),
            network=UNDERLAY,
            net_id=100,
            range=model.AddressRange(
                version="4",
                cidr=str(subnet_cidr),
                start=str(host[99]),
                end=str(host[199]),
                gateway=str(host[0]),
                reserved_ips=(str(host[100]),),
                exclude_ips=(str(host[149]),),
            ),
            config=model.SubnetConfig(private=True),
            status=model.SubnetStatus(total=98, used=1, available=97, last_allocated_ip=str(host[99])),
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
            name=unique("node"),
            vtep=model.VTEPInfo("192.168.56.11", "5a:3c:7e:12:9f:01", ("192.168.56.11",)),
            update_timestamp="2026-11-22T03:00:00Z",
        ),
    ]


RENDER = {
    model.Network: model.network_to_resource,
    model.Subnet: model.subnet_to_resource,
    model.IPInstance: model.ipinstance_to_resource,
    model.NodeInfo: model.nodeinfo_to_resource,
}


def test_what_the_model_writes_is_stored_as_written(real_api: Api) -> None:
    """Every field the model writes is one of the CRD's (strict validation), of its type, and stored
    unchanged: the object reads back as the model object it was."""
    for obj in model_objects(free_cidr(real_api)):
        resource = RENDER[type(obj)](obj)
        stored = dry_create(real_api, resource)
        assert PARSE[resource["kind"]](stored) == PARSE[resource["kind"]](resource), resource["kind"]
        assert stored["spec"] == resource["spec"]


@pytest.fixture
def status_holders(real_api: Api, real_namespace: str) -> Iterator[dict[str, str]]:
    """One existing object of each kind whose status a dry run may write: the shared network and
    subnet, an IPInstance the operator made for a pod, a NodeInfo made here."""
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "node3", "containers": [{"name": "c", "image": "x"}]}}
    real_api.core.create_namespaced_pod(real_namespace, pod)
    node_info = changed(NODEINFO, "metadata.name", unique("node"))
    real_api.custom.create_cluster_custom_object(names.GROUP, names.VERSION, "nodeinfos", node_info)
    try:
        [instance] = until(lambda: list(real_api.instances_of(real_namespace, "p")), "the pod's IPInstance")
        yield {
            "Network": OVERLAY,
            "Subnet": UNDERLAY_SUBNET,
            "IPInstance": instance,
            "NodeInfo": node_info["metadata"]["name"],
        }
    finally:
        real_api.custom.delete_cluster_custom_object(
            names.GROUP, names.VERSION, "nodeinfos", node_info["metadata"]["name"]
        )


def test_the_status_the_model_writes_is_stored_as_written(real_api: Api, status_holders: dict[str, str]) -> None:
    for obj in model_objects(free_cidr(real_api)):
        resource = RENDER[type(obj)](obj, with_status=True)
        kind = resource["kind"]
        stored = real_api.custom.patch_cluster_custom_object_status(
            names.GROUP,
            names.VERSION,
            PLURAL[kind],
            status_holders[kind],
            {"status": resource["status"]},
            dry_run="All",
            field_validation="Strict",
        )
        assert {k: stored["status"].get(k) for k in resource["status"]} == resource["status"], kind


# --- printer columns ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_printer_columns_show_what_the_crd_declares(real_api: Api, status_holders: dict[str, str], kind: str) -> None:
    name = status_holders[kind]
    path = f"/apis/{names.GROUP}/{names.VERSION}/{PLURAL[kind]}/{name}"
    if kind in ("Network", "Subnet"):
        until(lambda: real_api.get(PLURAL[kind], name).get("status"), f"status of {kind} {name}")
    table = raw(real_api, "GET", path, accept=TABLE)
    obj = raw(real_api, "GET", path)
    [declared] = CRDS[kind]["spec"]["versions"]
    columns = declared["additionalPrinterColumns"]
    assert [(c["name"], c["type"]) for c in table["columnDefinitions"]] == [("Name", "string")] + [
        (c["name"], c["type"]) for c in columns
    ]
    [row] = table["rows"]
    assert row["cells"] == [name] + [at(obj, c["jsonPath"]) for c in columns]
    assert any(cell is not None for cell in row["cells"][1:])


# --- the status subresource ---------------------------------------------------------------------------


def test_status_is_written_only_through_its_subresource(real_api: Api) -> None:
    """Create and update ignore a status; /status writes it and ignores a spec. The operator's status
    writes therefore never change what a user declared, nor count as a new generation."""
    node_info = changed(NODEINFO, "metadata.name", unique("node"))
    node_info["status"] = {"updateTimestamp": "2026-11-22T03:00:00Z"}
    custom = real_api.custom
    created = custom.create_cluster_custom_object(names.GROUP, names.VERSION, "nodeinfos", node_info)
    name = node_info["metadata"]["name"]
    try:
        assert "status" not in created
        assert created["metadata"]["generation"] == 1

        updated = custom.patch_cluster_custom_object(
            names.GROUP,
            names.VERSION,
            "nodeinfos",
            name,
            {"spec": {"vtepInfo": {"ip": "192.168.56.12"}}, "status": {"updateTimestamp": "2026-11-22T04:00:00Z"}},
        )
        assert updated["spec"]["vtepInfo"]["ip"] == "192.168.56.12"
        assert "status" not in updated
        assert updated["metadata"]["generation"] == 2

        status = custom.patch_cluster_custom_object_status(
            names.GROUP,
            names.VERSION,
            "nodeinfos",
            name,
            {"spec": {"vtepInfo": {"ip": "192.168.56.13"}}, "status": {"updateTimestamp": "2026-11-22T05:00:00Z"}},
        )
        assert status["status"] == {"updateTimestamp": "2026-11-22T05:00:00Z"}
        assert status["spec"]["vtepInfo"]["ip"] == "192.168.56.12"
        assert status["metadata"]["generation"] == 2

        status, body = refusal(
            lambda: custom.patch_cluster_custom_object_status(
                names.GROUP, names.VERSION, "nodeinfos", name, {"status": {"updateTimestamp": 5}}
            )
        )
        assert status == 422
        assert "updateTimestamp" in body["message"]
    finally:
        custom.delete_cluster_custom_object(names.GROUP, names.VERSION, "nodeinfos", name)
