"""``hybridlay migrate`` against a real API server with Hybridnet's CRDs and a few hundred of its objects.

This module runs a control plane of its own: a migration happens in a cluster where hybridlay's
CRDs are installed but its operator and webhooks are not yet (the operator would give the running
pods new addresses before their Hybridnet ones are carried over), and the session's shared cluster
already has an operator, networks and webhooks. After the migration the operator starts here, and
must find every carried address claimed: no pod gets a new one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import realcluster
from hybridnet_objects import ipinstance, network, nodeinfo, subnet
from realcluster import OperatorProcess, RealCluster

from hybridlay_cli.main import main as cli

HYBRIDNET = ("networking.alibaba.com", "v1")
OURS = ("networking.hybridlay.io", "v1")
CRDS = Path(__file__).resolve().parents[1] / "support" / "hybridnet_crds.yaml"
NAMESPACES = ("shop", "db", "batch")
PODS_PER_NAMESPACE = 100
OVERLAY, VLAN = ("overlay", "overlay-v4"), ("vlan100", "vlan100-v4")
STS = {"kind": "StatefulSet", "name": "web"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    for own in realcluster.own_cluster(tmp_path_factory.mktemp("migrate-kube")):
        RealCluster.create_documents(own.client(), CRDS)
        yield own


def create(api: kubernetes.client.ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    custom = kubernetes.client.CustomObjectsApi(api)
    plural = {"Network": "networks", "Subnet": "subnets", "NodeInfo": "nodeinfoes", "IPInstance": "ipinstances"}
    namespace = obj["metadata"].get("namespace")
    for _ in range(100):  # a CRD just made is served within moments
        try:
            if namespace:
                return dict(custom.create_namespaced_custom_object(*HYBRIDNET, namespace, plural[obj["kind"]], obj))
            return dict(custom.create_cluster_custom_object(*HYBRIDNET, plural[obj["kind"]], obj))
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise
            time.sleep(0.1)
    raise AssertionError(f"{obj['kind']} never served")


def ours(api: kubernetes.client.ApiClient, plural: str) -> dict[str, dict[str, Any]]:
    items = kubernetes.client.CustomObjectsApi(api).list_cluster_custom_object(*OURS, plural)["items"]
    return {o["metadata"]["name"]: o for o in items}


def run(kubeconfig: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = cli(["--kubeconfig", str(kubeconfig), "migrate", *args])
    return code, capsys.readouterr().out.splitlines()


@pytest.fixture(scope="module")
def hybridnet_cluster(cluster: RealCluster) -> dict[str, Any]:
    """Hybridnet's objects: three networks (one BGP with a plain password), three subnets, node infos,
    and 300 addresses of running pods, 100 of them kept for a StatefulSet's ordinals."""
    api = cluster.client()
    core = kubernetes.client.CoreV1Api(api)
    for name, labels in (("node1", {"network": "vlan100"}), ("node2", {"network": "vlan100"}), ("node3", {})):
        core.create_node({"metadata": {"name": name, "labels": labels}})
    peers = [{"asn": 65000, "address": "10.20.0.1", "password": "s3cret"}]
    for obj in (
        network("overlay", "Overlay", 4),
        network("vlan100", "Underlay", 100, {"network": "vlan100"}),
        network("bgp", "Underlay", 65010, {"network": "bgp"}, mode="BGP", config={"bgpPeers": peers}),
        subnet("overlay-v4", "overlay", "100.10.0.0/16"),
        subnet("vlan100-v4", "vlan100", "192.168.56.0/24", gateway="192.168.56.1"),
        subnet("bgp-v4", "bgp", "10.30.0.0/24"),
        nodeinfo("node1", "10.10.1.11"),
        nodeinfo("node2", "10.10.1.12"),
    ):
        create(api, obj)
    pods: dict[str, str] = {}  # "namespace/pod" → the address Hybridnet gave it
    for n, namespace in enumerate(NAMESPACES):
        core.create_namespace({"metadata": {"name": namespace}})
        for i in range(PODS_PER_NAMESPACE):
            name = f"web-{i}" if namespace == "shop" else f"p{i}"
            node = "node3" if namespace != "db" else f"node{1 + i % 2}"
            spec = {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}
            uid = core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": spec}).metadata.uid
            if namespace == "db":
                address, placed = f"192.168.56.{10 + i}/24", VLAN
            else:
                address, placed = f"100.10.{n}.{10 + i}/16", OVERLAY
            kept = {"referred": {**STS, "uid": "sts-uid"}, "index": i} if namespace == "shop" else {}
            create(api, ipinstance(namespace, address, placed, (name, uid), node=node, **kept))
            pods[f"{namespace}/{name}"] = address.partition("/")[0]
    return pods


def test_a_conflict_is_refused_naming_both_holders_and_nothing_is_created(
    cluster: RealCluster, hybridnet_cluster: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = cluster.client()
    # Hybridnet's IPInstances are namespaced: nothing stopped a second holder of one address.
    duplicate = ipinstance("batch", "100.10.0.10/16", OVERLAY, ("stray", "stray-uid"))
    create(api, duplicate)
    kubeconfig = cluster.write_kubeconfig(tmp_path / "admin")
    try:
        code, lines = run(kubeconfig, "--apply", capsys=capsys)
        assert code == 1
        held = "address 100-10-0-10 is held by each of batch/100-10-0-10, shop/100-10-0-10"
        refused = [line for line in lines if line.startswith("refuse ")]
        assert refused == [f"refuse IPInstance {n}/100-10-0-10: {held}" for n in ("batch", "shop")]
        assert lines[-1] == "2 object(s) refused: nothing created"
        assert ours(api, "networks") == {} and ours(api, "ipinstances") == {}
    finally:
        kubernetes.client.CustomObjectsApi(api).delete_namespaced_custom_object(
            *HYBRIDNET, "batch", "ipinstances", "100-10-0-10"
        )


def test_the_dry_run_plans_everything_and_changes_nothing(
    cluster: RealCluster, hybridnet_cluster: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run(cluster.write_kubeconfig(tmp_path / "admin"), capsys=capsys)
    assert code == 0
    creates = [line for line in lines if line.startswith("create ")]
    # 3 networks, their one Secret, 3 subnets, 2 node infos, 300 addresses
    assert len(creates) == 3 + 1 + 3 + 2 + len(NAMESPACES) * PODS_PER_NAMESPACE
    assert "create Secret hybridlay-system/hybridlay-bgp-bgp" in lines
    assert "s3cret" not in "\n".join(lines)
    assert lines[-1] == f"dry run: {len(creates)} object(s) to create; --apply creates them"
    assert ours(cluster.client(), "networks") == {}


def test_apply_carries_every_address_over_and_a_second_run_changes_nothing(
    cluster: RealCluster, hybridnet_cluster: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = cluster.client()
    kubeconfig = cluster.write_kubeconfig(tmp_path / "admin")
    code, lines = run(kubeconfig, "--apply", capsys=capsys)
    assert code == 0, lines
    instances = ours(api, "ipinstances")
    carried = {
        f"{o['spec']['binding']['podNamespace']}/{o['spec']['binding']['podName']}": o for o in instances.values()
    }
    assert {k: o["spec"]["address"]["ip"].partition("/")[0] for k, o in carried.items()} == hybridnet_cluster
    web = carried["shop/web-7"]
    assert web["spec"]["binding"]["referredObject"] == {**STS, "uid": "sts-uid"}
    assert web["spec"]["binding"]["stateful"] == {"index": 7}
    shop_uid = kubernetes.client.CoreV1Api(api).read_namespace("shop").metadata.uid
    assert web["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Namespace", "name": "shop", "uid": shop_uid}
    ]
    [peer] = ours(api, "networks")["bgp"]["spec"]["config"]["bgpPeers"]
    assert peer["passwordSecretRef"]["namespace"] == "hybridlay-system"
    secret = kubernetes.client.CoreV1Api(api).read_namespaced_secret("hybridlay-bgp-bgp", "hybridlay-system")
    assert set(secret.data) == {"peer-0"}

    code, lines = run(kubeconfig, "--apply", capsys=capsys)
    assert code == 0
    assert not [line for line in lines if line.startswith(("create", "created", "refuse"))], lines
    assert len(lines) == 3 + 1 + 3 + 2 + len(NAMESPACES) * PODS_PER_NAMESPACE


def test_the_operator_started_after_the_migration_gives_no_pod_a_new_address(
    cluster: RealCluster, hybridnet_cluster: dict[str, str], tmp_path: Path
) -> None:
    api = cluster.client()
    before = ours(api, "ipinstances")
    assert len(before) == len(hybridnet_cluster)  # the previous test migrated
    operator = OperatorProcess(
        cluster, tmp_path / "operator", serve_webhooks=False, settings={"LEADER_ELECTION": "false"}
    )
    operator.start()
    try:
        # A pod made now is queued after the 300 it found at start: once it has its address, the
        # operator has looked at every migrated pod.
        spec = {"nodeName": "node3", "containers": [{"name": "c", "image": "x"}]}
        kubernetes.client.CoreV1Api(api).create_namespaced_pod("batch", {"metadata": {"name": "fresh"}, "spec": spec})
        deadline = time.monotonic() + 60
        while not (new := set(ours(api, "ipinstances")) - set(before)):
            assert time.monotonic() < deadline, operator.log()[-2000:]
            time.sleep(0.2)
        [fresh] = new
        assert ours(api, "ipinstances")[fresh]["spec"]["binding"]["podName"] == "fresh"
        assert set(ours(api, "ipinstances")) == {*before, fresh}, "the operator gave a migrated pod a new address"
    finally:
        operator.close()
