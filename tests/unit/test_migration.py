"""Planning a move from Hybridnet (hybridlay.migration): what becomes what, what is refused and why."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hybridnet_objects import ipinstance, network, nodeinfo, subnet

from hybridlay import migration, names

NS_UIDS = {"shop": "uid-shop", "db": "uid-db"}
LABELS = {"node1": {"network": "vlan100"}, "node2": {"network": "vlan100"}, "node3": {}}
STS = {"kind": "StatefulSet", "name": "web", "uid": "sts-1"}
OVERLAY, VLAN = ("overlay", "overlay-v4"), ("vlan100", "vlan100-v4")


def hybridnet_cluster() -> dict[str, list[dict[str, Any]]]:
    peers = [{"asn": 65000, "address": "10.20.0.1", "password": "s3cret"}]
    return {
        "Network": [
            network("overlay", "Overlay", 4),
            network("vlan100", "Underlay", 100, {"network": "vlan100"}),
            network("bgp", "Underlay", 65010, {"network": "bgp"}, mode="BGP", config={"bgpPeers": peers}),
        ],
        "Subnet": [
            subnet("overlay-v4", "overlay", "100.10.0.0/16"),
            subnet("vlan100-v4", "vlan100", "192.168.56.0/24", gateway="192.168.56.1"),
        ],
        "NodeInfo": [nodeinfo("node1", "10.10.1.11")],
        "IPInstance": [
            ipinstance("shop", "100.10.0.5/16", OVERLAY, ("web-0", "pod-1"), referred=STS, index=0),
            ipinstance("db", "192.168.56.7/24", VLAN, ("pg", "pod-2"), node="node2"),
        ],
    }


def plan(
    hybridnet: dict[str, list[dict[str, Any]]], ours: dict[str, list[dict[str, Any]]] | None = None
) -> migration.Plan:
    cluster = migration.Cluster(
        hybridnet=hybridnet,
        ours=ours or {},
        node_labels=LABELS,
        namespace_uids=NS_UIDS,
        secret_namespace="hybridlay-system",
    )
    return migration.plan_migration(cluster)


def created(p: migration.Plan, kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in p.create if r["kind"] == kind}


def test_every_object_becomes_ours_in_the_order_it_must_be_created() -> None:
    p = plan(hybridnet_cluster())
    assert p.refused == [] and p.unchanged == []
    assert [r["kind"] for r in p.create] == [
        "Network",
        "Network",
        "Secret",
        "Network",
        "Subnet",
        "Subnet",
        "NodeInfo",
        "IPInstance",
        "IPInstance",
    ]
    assert all(r["apiVersion"] == names.API_VERSION for r in p.create if r["kind"] != "Secret")


def test_a_retained_address_becomes_a_cluster_scoped_claim_with_the_same_binding() -> None:
    web = created(plan(hybridnet_cluster()), "IPInstance")["100-10-0-5"]
    assert "namespace" not in web["metadata"]
    assert web["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Namespace", "name": "shop", "uid": "uid-shop"}
    ]
    binding = web["spec"]["binding"]
    assert binding["podNamespace"] == "shop" and binding["podName"] == "web-0" and binding["podUID"] == "pod-1"
    assert binding["referredObject"] == STS and binding["stateful"] == {"index": 0}
    assert web["spec"]["address"]["ip"] == "100.10.0.5/16"
    assert web["metadata"]["labels"][names.LABEL_POD_NAMESPACE] == "shop"


def test_a_plain_bgp_password_moves_into_a_secret_the_agent_reads() -> None:
    p = plan(hybridnet_cluster())
    [secret] = created(p, "Secret").values()
    assert secret["metadata"] == {"name": "hybridlay-bgp-bgp", "namespace": "hybridlay-system"}
    assert secret["stringData"] == {"peer-0": "s3cret"}
    [peer] = created(p, "Network")["bgp"]["spec"]["config"]["bgpPeers"]
    assert "password" not in peer
    assert peer["passwordSecretRef"] == {"name": "hybridlay-bgp-bgp", "key": "peer-0", "namespace": "hybridlay-system"}
    assert "s3cret" not in "\n".join(p.lines())


def test_a_second_run_after_applying_creates_nothing() -> None:
    first = plan(hybridnet_cluster())
    ours: dict[str, list[dict[str, Any]]] = {}
    for resource in first.create:
        stored = dict(resource)
        if resource["kind"] == "Secret":  # the API server keeps stringData as base64 data
            stored = {
                **resource,
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in resource["stringData"].items()},
            }
            del stored["stringData"]
        ours.setdefault(resource["kind"], []).append(stored)
    again = plan(hybridnet_cluster(), ours)
    assert again.create == [] and again.refused == []
    assert len(again.unchanged) == len(first.create)


def test_an_address_held_in_two_namespaces_is_refused_naming_both() -> None:
    cluster = hybridnet_cluster()
    cluster["IPInstance"].append(ipinstance("db", "100.10.0.5/16", OVERLAY, ("other", "pod-3")))
    p = plan(cluster)
    refused = [str(r) for r in p.refused]
    assert refused == [
        "IPInstance shop/100-10-0-5: address 100-10-0-5 is held by each of shop/100-10-0-5, db/100-10-0-5",
        "IPInstance db/100-10-0-5: address 100-10-0-5 is held by each of shop/100-10-0-5, db/100-10-0-5",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["Subnet"][1]["spec"]["range"].update(gateway="10.0.0.1"),
            "Subnet vlan100-v4: spec.range.gateway 10.0.0.1 is outside",
        ),
        (
            lambda c: c["IPInstance"][1]["spec"]["address"].update(ip="192.168.57.7/24"),
            "IPInstance db/192-168-56-7: spec.address.ip 192.168.57.7/24: is outside subnet vlan100-v4",
        ),
        (
            lambda c: c["IPInstance"][0]["spec"].update(subnet="nope"),
            "IPInstance shop/100-10-0-5: spec.subnet nope: is no subnet",
        ),
        (
            lambda c: c["IPInstance"][0]["metadata"].update(namespace="gone"),
            "IPInstance gone/100-10-0-5: namespace gone does not exist",
        ),
        (lambda c: c["Network"][1]["spec"].pop("nodeSelector"), "Network vlan100: spec.nodeSelector"),
    ],
)
def test_what_cannot_be_translated_is_refused_naming_the_object(change, expected) -> None:
    cluster = hybridnet_cluster()
    change(cluster)
    refused = [str(r) for r in plan(cluster).refused]
    assert any(r.startswith(expected) for r in refused), refused


def test_an_address_hybridlay_already_gives_another_pod_is_refused() -> None:
    p = plan(hybridnet_cluster())
    ours = {"IPInstance": [created(p, "IPInstance")["100-10-0-5"]]}
    ours["IPInstance"][0]["spec"]["binding"]["podName"] = "someone-else"
    refused = [str(r) for r in plan(hybridnet_cluster(), ours).refused]
    assert refused == ["IPInstance shop/100-10-0-5: hybridlay IPInstance 100-10-0-5 holds it for shop/someone-else"]
