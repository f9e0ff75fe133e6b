"""site.yml's cluster stages (install, seed) and uninstall.yml, run for real against an API server
(KMock, tests/support/kapi.py: no kube-apiserver here) with the example inventory.

The node and switch stages run in the molecule scenarios and test_switch_routes.py; here the
nodes are not reachable, so install_nodes=false and the interface check is off.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from kubernetes import client, config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GROUP = "networking.hybridlay.io"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    target = tmp_path / "inventory"
    shutil.copytree(REPO / "inventories" / "example", target)
    return target


@pytest.fixture
def playbook(ansible, inventory, kubeconfig):
    def run(name: str, *extra: str) -> tuple[int, dict]:
        result = ansible(["ansible-playbook", "-i", str(inventory), f"playbooks/{name}", "-e",
                          json.dumps({"install_kubeconfig": str(kubeconfig), "seed_kubeconfig": str(kubeconfig),
                                      "install_nodes": False, "hybridlay_check_interfaces": False}), *extra],
                         ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        return result.returncode, json.loads(result.stdout)

    return run


def _changed(out: dict) -> int:
    return sum(host["changed"] for host in out["stats"].values())


def _failures(out: dict) -> list[str]:
    """Messages of the failed tasks (of each failed loop item)."""
    messages = []
    for play in out["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                items = [r for r in result.get("results", []) if isinstance(r, dict) and r.get("failed")]
                messages += [f"{task['task']['name']}: {r.get('msg', '')}" for r in items or [result]
                             if r.get("failed")]
    return messages


def test_site_cluster_stages_idempotent_then_uninstall(playbook, kube_api, kubeconfig):
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    for node in ("node1", "node2", "node3"):
        core.create_node(client.V1Node(api_version="v1", kind="Node", metadata=client.V1ObjectMeta(name=node)))
    # node3's rack has left a network since an earlier seed: its label goes, other labels stay.
    stale = f"{GROUP}/network-underlay-vlan30"
    core.patch_node("node3", {"metadata": {"labels": {stale: "true", "team": "db"}}})

    rc, out = playbook("site.yml", "--tags", "install,seed")
    assert rc == 0, _failures(out)
    crds = kube_api.objects("apiextensions.k8s.io/v1/customresourcedefinitions")
    assert {c["metadata"]["name"] for c in crds} >= {f"networks.{GROUP}", f"subnets.{GROUP}", f"ipinstances.{GROUP}"}
    networks = sorted(n["metadata"]["name"] for n in kube_api.objects(f"{GROUP}/v1/networks"))
    assert networks == ["init", "underlay-vlan20"]
    subnets = {s["metadata"]["name"]: s["spec"] for s in kube_api.objects(f"{GROUP}/v1/subnets")}
    assert subnets["vlan20-a"]["range"]["gateway"] == "192.168.20.1"
    labels = {n.metadata.name: n.metadata.labels or {} for n in core.list_node().items}
    selector = f"{GROUP}/network-underlay-vlan20"
    assert labels["node1"].get(selector) == "true" and labels["node2"].get(selector) == "true"
    assert selector not in labels["node3"] and stale not in labels["node3"] and labels["node3"]["team"] == "db"
    tls = [s for s in kube_api.objects("v1/secrets") if s["metadata"]["name"] == "hybridlay-webhook-tls"]
    assert len(tls) == 1
    tls_data = tls[0]["data"]
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(tls_data)
    webhooks = kube_api.objects("admissionregistration.k8s.io/v1/validatingwebhookconfigurations")
    webhooks += kube_api.objects("admissionregistration.k8s.io/v1/mutatingwebhookconfigurations")
    assert webhooks and {w["clientConfig"]["caBundle"] for c in webhooks for w in c["webhooks"]} == {tls_data["ca.crt"]}
    ca = x509.load_pem_x509_certificate(base64.b64decode(tls_data["ca.crt"]))
    served = x509.load_pem_x509_certificate(base64.b64decode(tls_data["tls.crt"]))
    assert served.issuer == ca.subject
    assert "hybridlay-webhook.hybridlay-system.svc" in served.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert [d["metadata"]["name"] for d in kube_api.objects("apps/v1/daemonsets")]
    assert [d["metadata"]["name"] for d in kube_api.objects("apps/v1/deployments")]

    rc, out = playbook("site.yml", "--tags", "install,seed")
    assert rc == 0 and _changed(out) == 0, _failures(out)

    custom.create_cluster_custom_object(GROUP, "v1", "ipinstances", {
        "apiVersion": f"{GROUP}/v1", "kind": "IPInstance", "metadata": {"name": "192-168-20-7"},
        "spec": {"network": "underlay-vlan20", "subnet": "vlan20-a",
                 "address": {"version": "4", "ip": "192.168.20.7/24"},
                 "binding": {"podName": "web-0", "podNamespace": "shop"}}})
    rc, out = playbook("uninstall.yml", "--tags", "seed,install")
    assert rc != 0
    assert any("1 hybridlay address(es) still in use, by shop/web-0" in m for m in _failures(out)), _failures(out)
    assert len(kube_api.objects(f"{GROUP}/v1/subnets")) == 2  # refused before any change

    rc, out = playbook("uninstall.yml", "--tags", "seed,install", "-e", "seed_force=true")
    assert rc == 0, _failures(out)
    assert kube_api.objects(f"{GROUP}/v1/subnets") == [] and kube_api.objects(f"{GROUP}/v1/networks") == []
    assert kube_api.objects("apiextensions.k8s.io/v1/customresourcedefinitions") == []
    assert kube_api.objects("apps/v1/daemonsets") == [] and kube_api.objects("apps/v1/deployments") == []
    assert all(selector not in (n.metadata.labels or {}) for n in core.list_node().items)


def test_bad_plan_fails_before_the_first_change(playbook, kube_api):
    rc, out = playbook("site.yml", "--tags", "install,seed", "-e", json.dumps({"hybridlay_subnets": [
        {"name": "a", "network": "underlay-vlan20", "cidr": "192.168.20.0/24", "gateway": "10.0.0.1"},
        {"name": "b", "network": "underlay-vlan20", "cidr": "192.168.20.0/25", "gateway": "192.168.20.1"}]}))
    assert rc != 0
    failures = _failures(out)
    assert len(failures) == 1 and "the network plan has" in failures[0]
    assert "hybridlay_subnets[0].gateway: 10.0.0.1 is outside cidr 192.168.20.0/24" in failures[0]
    assert "hybridlay_subnets[1].cidr" in failures[0]
    assert kube_api.objects("apiextensions.k8s.io/v1/customresourcedefinitions") == []


def test_bgp_password_reaches_its_secret_and_never_the_output(ansible, inventory, kubeconfig, kube_api):
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["children"]["hybridlay_switches"]["hosts"]["tor-rack2"] = None
    (inventory / "host_vars" / "tor-rack2.yml").write_text(
        yaml.safe_dump({"hybridlay_switch": {"rack": "rack2", "platform": "frr"}}))
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    secret = "bgp-Pa55-w0rd"
    plan = yaml.safe_load((inventory / "group_vars/all/network_plan.yml").read_text())
    plan["hybridlay_networks"].append({"name": "bgp-rack2", "type": "Underlay", "mode": "BGP", "netID": 65010,
                                       "racks": ["rack2"],
                                       "bgpPeers": [{"asn": 65000, "address": "10.10.2.1", "password": secret}]})
    (inventory / "group_vars/all/network_plan.yml").write_text(yaml.safe_dump(plan))
    result = ansible(["ansible-playbook", "-vvv", "-i", str(inventory), "playbooks/seed.yml", "-e",
                      json.dumps({"seed_kubeconfig": str(kubeconfig), "hybridlay_check_interfaces": False})])
    assert result.returncode == 0, result.stdout[-3000:]
    output = result.stdout + result.stderr
    assert secret not in output, output[max(0, output.find(secret) - 3000) : output.find(secret) + 200]
    stored = [s for s in kube_api.objects("v1/secrets") if s["metadata"]["name"] == "hybridlay-bgp-bgp-rack2"]
    assert stored[0]["metadata"]["namespace"] == "kube-system"
    assert (stored[0].get("stringData") or {}).get("peer-0") == secret or base64.b64decode(
        stored[0]["data"]["peer-0"]).decode() == secret
    network = next(n for n in kube_api.objects(f"{GROUP}/v1/networks") if n["metadata"]["name"] == "bgp-rack2")
    assert network["spec"]["config"]["bgpPeers"][0]["passwordSecretRef"] == {
        "name": "hybridlay-bgp-bgp-rack2", "key": "peer-0", "namespace": "kube-system"}
    assert secret not in json.dumps(network)
