"""site.yml's cluster stages (install, seed) and uninstall.yml, run for real against a real API server
with the example inventory.

The install role applies the CRDs, the RBAC, the webhook configurations and (kubernetes mode) the
workloads, and removes them all again: it cannot share the session's cluster, so this module runs a
control plane of its own that starts without any of our manifests (each test starts from that bare
state). There is no kubelet and no kube-proxy: in kubernetes mode nothing runs the operator's
Deployment and the API server cannot reach the webhook Service, so that mode is checked up to the
objects the API server accepts. The seed and uninstall run in the bare-metal mode (``systemd``, the
webhooks called at an address): the test plays the ``hybridlay_operators`` host, running the operator
with the certificate and port the install role gave it, and the webhooks check every seeded object.

The node and switch stages run in the molecule scenarios and test_switch_routes.py; here the nodes
are not reachable, so install_nodes=false and the interface check is off.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import realcluster
import yaml
from apitopo import until
from cryptography import x509
from realcluster import SYSTEM_NAMESPACE, OperatorProcess, RealCluster, free_port

from hybridlay import names

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GROUP = names.GROUP
NODES = ("node1", "node2", "node3")
SELECTOR = f"{GROUP}/network-underlay-vlan20"
Playbook = Callable[..., tuple[int, dict[str, Any]]]
# The controller manager runs the operator's Deployment here, but no kubelet ever makes it ready.
NO_OPERATOR_WAIT = {"install_wait_seconds": 0}


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    # Bare: the install role is what applies our manifests here.
    for cluster in realcluster.own_cluster(tmp_path_factory.mktemp("playbooks-kube"), with_manifests=False):
        core = kubernetes.client.CoreV1Api(cluster.client())
        for node in NODES:
            core.create_node({"metadata": {"name": node}})
        yield cluster


class Objects:
    """What a test reads back, as the cluster's admin."""

    def __init__(self, cluster: RealCluster) -> None:
        api = cluster.client()
        self.core = kubernetes.client.CoreV1Api(api)
        self.apps = kubernetes.client.AppsV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.ext = kubernetes.client.ApiextensionsV1Api(api)
        self.admission = kubernetes.client.AdmissionregistrationV1Api(api)

    def crds(self) -> list[str]:
        return sorted(
            c.metadata.name for c in self.ext.list_custom_resource_definition().items if c.spec.group == GROUP
        )

    def ours(self, plural: str) -> dict[str, dict[str, Any]]:
        try:
            items = self.custom.list_cluster_custom_object(GROUP, names.VERSION, plural)["items"]
        except kubernetes.client.ApiException as e:
            if e.status == 404:  # the CRD is gone
                return {}
            raise
        return {o["metadata"]["name"]: o for o in items}

    def webhook_configurations(self) -> list[Any]:
        return [
            *self.admission.list_validating_webhook_configuration().items,
            *self.admission.list_mutating_webhook_configuration().items,
        ]

    def namespace_exists(self, name: str) -> bool:
        try:
            self.core.read_namespace(name)
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def labels(self) -> dict[str, dict[str, str]]:
        return {n.metadata.name: n.metadata.labels or {} for n in self.core.list_node().items}

    def webhook_secret(self) -> dict[str, str]:
        secret = self.core.read_namespaced_secret("hybridlay-webhook-tls", SYSTEM_NAMESPACE)
        return dict(secret.data)


@pytest.fixture
def objects(own_cluster: RealCluster) -> Objects:
    """The module's cluster, bare again: whatever an earlier test left installed is removed first."""
    found = Objects(own_cluster)
    for delete in (
        found.admission.delete_validating_webhook_configuration,
        found.admission.delete_mutating_webhook_configuration,
    ):
        with contextlib.suppress(kubernetes.client.ApiException):
            delete("hybridlay")
    for crd in found.crds():
        with contextlib.suppress(kubernetes.client.ApiException):
            found.ext.delete_custom_resource_definition(crd)
    with contextlib.suppress(kubernetes.client.ApiException):
        found.core.delete_namespace(SYSTEM_NAMESPACE)
    until(lambda: not found.crds() and not found.namespace_exists(SYSTEM_NAMESPACE), "a bare cluster", timeout=60)
    return found


@pytest.fixture
def kubeconfig(own_cluster: RealCluster, tmp_path: Path) -> Path:
    """The admin's kubeconfig: the roles run from the controller as the cluster's owner."""
    return own_cluster.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    target = tmp_path / "inventory"
    shutil.copytree(REPO / "inventories" / "example", target)
    return target


@pytest.fixture
def playbook(ansible: Callable[..., Any], inventory: Path, kubeconfig: Path) -> Playbook:
    def run(name: str, *extra: str, **variables: Any) -> tuple[int, dict[str, Any]]:
        settings = {
            "install_kubeconfig": str(kubeconfig),
            "seed_kubeconfig": str(kubeconfig),
            "install_nodes": False,
            "hybridlay_check_interfaces": False,
            **variables,
        }
        result = ansible(
            ["ansible-playbook", "-i", str(inventory), f"playbooks/{name}", "-e", json.dumps(settings), *extra],
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        )
        return result.returncode, json.loads(result.stdout)

    return run


def _changed(out: dict[str, Any]) -> int:
    return sum(host["changed"] for host in out["stats"].values())


def _failures(out: dict[str, Any]) -> list[str]:
    """Messages of the failed tasks (of each failed loop item)."""
    messages = []
    for play in out["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                items = [r for r in result.get("results", []) if isinstance(r, dict) and r.get("failed")]
                messages += [
                    f"{task['task']['name']}: {r.get('msg', '')}" for r in items or [result] if r.get("failed")
                ]
    return messages


def check_webhook_certificate(secret: dict[str, str], configurations: list[Any]) -> x509.SubjectAlternativeName:
    """The install role's CA is in every webhook's caBundle and signed the served certificate, which
    names the webhook Service; returns the names it is valid for."""
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret)
    bundles = {w.client_config.ca_bundle for c in configurations for w in c.webhooks}
    assert bundles == {secret["ca.crt"]}
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["ca.crt"]))
    served = x509.load_pem_x509_certificate(base64.b64decode(secret["tls.crt"]))
    assert served.issuer == ca.subject
    served_for = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hybridlay-webhook.hybridlay-system.svc" in served_for.get_values_for_type(x509.DNSName)
    return served_for


@contextlib.contextmanager
def operator_host(cluster: RealCluster, secret: dict[str, str], port: int, workdir: Path) -> Iterator[OperatorProcess]:
    """The operator as the install role's host service runs it: as its ServiceAccount, serving the
    webhook on ``port`` with the certificate from the role's Secret."""
    certificate = workdir / "webhook"  # OperatorProcess makes test certificates of its own in workdir
    certificate.mkdir(parents=True)
    for key in ("tls.crt", "tls.key"):
        (certificate / key).write_bytes(base64.b64decode(secret[key]))
        (certificate / key).chmod(0o600)
    operator = OperatorProcess(
        cluster,
        workdir,
        settings={"WEBHOOK_CERTFILE": str(certificate / "tls.crt"), "WEBHOOK_KEYFILE": str(certificate / "tls.key")},
        webhook_port=port,
    )
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def test_site_cluster_stages_idempotent_then_uninstall(
    playbook: Playbook, objects: Objects, own_cluster: RealCluster, tmp_path: Path
) -> None:
    core = objects.core
    # node3's rack has left a network since an earlier seed: its label goes, other labels stay.
    stale = f"{GROUP}/network-underlay-vlan30"
    core.patch_node("node3", {"metadata": {"labels": {stale: "true", "team": "db"}}})
    port = free_port()
    bare_metal = {"install_mode": "systemd", "install_webhook_host": "127.0.0.1", "install_webhook_port": port}

    rc, out = playbook("site.yml", "--tags", "install", **bare_metal)
    assert rc == 0, _failures(out)
    assert set(objects.crds()) >= {f"ipinstances.{GROUP}", f"networks.{GROUP}", f"subnets.{GROUP}"}
    configurations = objects.webhook_configurations()
    urls = {w.client_config.url for c in configurations for w in c.webhooks}
    assert urls == {
        f"https://127.0.0.1:{port}/{p}" for p in ("validate-network", "validate-subnet", "validate-pod", "mutate-pod")
    }
    secret = objects.webhook_secret()
    served_for = check_webhook_certificate(secret, configurations)
    assert "127.0.0.1" in [str(a) for a in served_for.get_values_for_type(x509.IPAddress)]
    # The workloads are host services in this mode.
    assert not objects.apps.list_namespaced_deployment(SYSTEM_NAMESPACE).items
    assert not objects.apps.list_namespaced_daemon_set(SYSTEM_NAMESPACE).items

    # Every Network and Subnet the seed makes now passes the operator's webhooks (failurePolicy Fail).
    with operator_host(own_cluster, secret, port, tmp_path / "operator"):
        rc, out = playbook("site.yml", "--tags", "seed", **bare_metal)
        assert rc == 0, _failures(out)
        assert sorted(objects.ours("networks")) == ["init", "underlay-vlan20"]
        subnets = {name: s["spec"] for name, s in objects.ours("subnets").items()}
        assert subnets["vlan20-a"]["range"]["gateway"] == "192.168.20.1"
        labels = objects.labels()
        assert labels["node1"].get(SELECTOR) == "true" and labels["node2"].get(SELECTOR) == "true"
        assert SELECTOR not in labels["node3"] and stale not in labels["node3"] and labels["node3"]["team"] == "db"

        rc, out = playbook("site.yml", "--tags", "install,seed", **bare_metal)
        assert rc == 0 and _changed(out) == 0, _failures(out)

        # A pod holds an address of the seeded VLAN subnet: uninstalling is refused.
        core.create_namespace({"metadata": {"name": "shop"}})
        pod = {
            "metadata": {"name": "web-0", "annotations": {names.ANNOTATION_SPECIFIED_NETWORK: "underlay-vlan20"}},
            "spec": {"nodeName": "node1", "containers": [{"name": "app", "image": "registry.example/app:1"}]},
        }
        core.create_namespaced_pod("shop", pod)
        until(lambda: objects.ours("ipinstances"), "web-0's address")
        rc, out = playbook("uninstall.yml", "--tags", "seed,install", **bare_metal)
        assert rc != 0
        assert any("1 hybridlay address(es) still in use, by shop/web-0" in m for m in _failures(out)), _failures(out)
        assert len(objects.ours("subnets")) == 2  # refused before any change

        # The host services' part of the uninstall runs on the hosts, which are not reachable here (and
        # in systemd mode it goes to the nodes even with install_nodes=false): the cluster part is the
        # same in both modes.
        cluster_part = bare_metal | {"install_mode": "kubernetes"}
        rc, out = playbook("uninstall.yml", "--tags", "seed,install", "-e", "seed_force=true", **cluster_part)
        assert rc == 0, _failures(out)
    core.delete_namespaced_pod("web-0", "shop", grace_period_seconds=0)
    core.delete_namespace("shop")
    assert objects.ours("subnets") == {} and objects.ours("networks") == {}
    until(lambda: not objects.crds(), "the CRDs removed", timeout=60)
    assert not objects.webhook_configurations()
    assert all(SELECTOR not in node_labels for node_labels in objects.labels().values())


def test_kubernetes_mode_installs_what_the_api_server_accepts_idempotently_and_removes_it(
    playbook: Playbook, objects: Objects
) -> None:
    """The default mode: the operator Deployment, the agent DaemonSet, the webhook Service and
    webhook configurations calling it, all accepted by the real API server (nothing runs them here)."""
    rc, out = playbook("site.yml", "--tags", "install", **NO_OPERATOR_WAIT)
    assert rc == 0, _failures(out)
    assert [d.metadata.name for d in objects.apps.list_namespaced_deployment(SYSTEM_NAMESPACE).items]
    assert [d.metadata.name for d in objects.apps.list_namespaced_daemon_set(SYSTEM_NAMESPACE).items]
    configurations = objects.webhook_configurations()
    services = {
        (w.client_config.service.namespace, w.client_config.service.name) for c in configurations for w in c.webhooks
    }
    assert services == {(SYSTEM_NAMESPACE, "hybridlay-webhook")}
    assert objects.core.read_namespaced_service("hybridlay-webhook", SYSTEM_NAMESPACE)
    check_webhook_certificate(objects.webhook_secret(), configurations)

    rc, out = playbook("site.yml", "--tags", "install", **NO_OPERATOR_WAIT)
    assert rc == 0 and _changed(out) == 0, _failures(out)

    rc, out = playbook("uninstall.yml", "--tags", "install")
    assert rc == 0, _failures(out)
    assert not objects.webhook_configurations()
    until(lambda: not objects.crds(), "the CRDs removed", timeout=60)
    assert not objects.apps.list_namespaced_deployment(SYSTEM_NAMESPACE).items
    assert not objects.apps.list_namespaced_daemon_set(SYSTEM_NAMESPACE).items


def test_bad_plan_fails_before_the_first_change(playbook: Playbook, objects: Objects) -> None:
    subnets = [
        {"name": "a", "network": "underlay-vlan20", "cidr": "192.168.20.0/24", "gateway": "10.0.0.1"},
        {"name": "b", "network": "underlay-vlan20", "cidr": "192.168.20.0/25", "gateway": "192.168.20.1"},
    ]
    rc, out = playbook("site.yml", "--tags", "install,seed", hybridlay_subnets=subnets)
    assert rc != 0
    failures = _failures(out)
    assert len(failures) == 1 and "the network plan has" in failures[0]
    assert "hybridlay_subnets[0].gateway: 10.0.0.1 is outside cidr 192.168.20.0/24" in failures[0]
    assert "hybridlay_subnets[1].cidr" in failures[0]
    assert objects.crds() == []
    assert not objects.namespace_exists(SYSTEM_NAMESPACE)


def test_bgp_password_reaches_its_secret_and_never_the_output(
    ansible: Callable[..., Any], inventory: Path, kubeconfig: Path, objects: Objects, own_cluster: RealCluster
) -> None:
    """The seed alone (seed.yml), on a cluster with our CRDs and no webhooks."""
    for path in sorted((REPO / "manifests" / "crds").glob("*.yaml")):
        RealCluster.create_documents(own_cluster.client(), path)
    until(lambda: len(objects.crds()) >= 3 and objects.ours("networks") == {}, "our CRDs served")
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["children"]["hybridlay_switches"]["hosts"]["tor-rack2"] = None
    (inventory / "host_vars" / "tor-rack2.yml").write_text(
        yaml.safe_dump({"hybridlay_switch": {"rack": "rack2", "platform": "frr"}})
    )
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    secret = "bgp-Pa55-w0rd"
    plan = yaml.safe_load((inventory / "group_vars/all/network_plan.yml").read_text())
    plan["hybridlay_networks"].append(
        {
            "name": "bgp-rack2",
            "type": "Underlay",
            "mode": "BGP",
            "netID": 65010,
            "racks": ["rack2"],
            "bgpPeers": [{"asn": 65000, "address": "10.10.2.1", "password": secret}],
        }
    )
    (inventory / "group_vars/all/network_plan.yml").write_text(yaml.safe_dump(plan))
    settings = {"seed_kubeconfig": str(kubeconfig), "hybridlay_check_interfaces": False}
    result = ansible(
        ["ansible-playbook", "-vvv", "-i", str(inventory), "playbooks/seed.yml", "-e", json.dumps(settings)]
    )
    assert result.returncode == 0, result.stdout[-3000:]
    output = result.stdout + result.stderr
    assert secret not in output, output[max(0, output.find(secret) - 3000) : output.find(secret) + 200]
    stored = objects.core.read_namespaced_secret("hybridlay-bgp-bgp-rack2", "kube-system")
    assert base64.b64decode(stored.data["peer-0"]).decode() == secret
    network = objects.ours("networks")["bgp-rack2"]
    assert network["spec"]["config"]["bgpPeers"][0]["passwordSecretRef"] == {
        "name": "hybridlay-bgp-bgp-rack2",
        "key": "peer-0",
        "namespace": "kube-system",
    }
    assert secret not in json.dumps(network)
