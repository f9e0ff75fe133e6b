"""Filters the install and seed roles use that are not covered through the plan tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.hybridlay.fabric.plugins.filter import plan as filters


def test_ca_bundle_goes_into_the_named_webhook_configurations_only():
    docs = [
        {"kind": "ValidatingWebhookConfiguration", "metadata": {"name": "hybridlay"},
         "webhooks": [{"name": "a", "clientConfig": {"service": {"name": "s"}, "caBundle": ""}}, {"name": "b"}]},
        {"kind": "MutatingWebhookConfiguration", "metadata": {"name": "other"}, "webhooks": [{"name": "c"}]},
        None,
        {"kind": "Deployment", "metadata": {"name": "hybridlay"}},
    ]
    out = filters.with_ca_bundle(docs, "Q0E=", ["hybridlay"])
    assert out[0]["webhooks"] == [
        {"name": "a", "clientConfig": {"service": {"name": "s"}, "caBundle": "Q0E="}},
        {"name": "b", "clientConfig": {"caBundle": "Q0E="}},
    ]
    assert out[1] == docs[1] and out[2] == docs[3] and len(out) == 3
    assert docs[0]["webhooks"][0]["clientConfig"]["caBundle"] == ""  # input left as it was


def test_small_helpers():
    assert filters.pod_of({"podName": "web-0", "podNamespace": "shop"}) == "shop/web-0"
    assert filters.named("vlan20", "Subnet") == {"kind": "Subnet", "name": "vlan20"}



def _manifests() -> list[dict]:
    manifests = Path(__file__).resolve().parents[2] / "manifests"
    return [doc for f in sorted(manifests.glob("*.yaml")) for doc in yaml.safe_load_all(f.read_text())]


def test_systemd_mode_applies_everything_but_the_workloads():
    docs = [*_manifests(), None]
    kinds = {d["kind"] for d in filters.for_install_mode(docs, "systemd")}
    assert {"Deployment", "DaemonSet", "Service"}.isdisjoint(kinds)
    assert {"ClusterRole", "ServiceAccount", "ValidatingWebhookConfiguration", "Namespace"} <= kinds
    assert filters.for_install_mode(docs, "kubernetes") == docs[:-1]
    without_webhook = {d["kind"] for d in filters.for_install_mode(docs, "systemd", webhooks=False)}
    assert "ClusterRole" in without_webhook and not any(k.endswith("WebhookConfiguration") for k in without_webhook)
    with pytest.raises(ValueError, match="install_mode 'docker'"):
        filters.for_install_mode(docs, "docker")


def test_webhooks_call_the_operator_host_in_systemd_mode():
    docs = _manifests()
    assert filters.with_webhook_url(docs, "") is docs
    out = filters.with_webhook_url(docs, "https://10.10.1.10:9443/")
    clients = [w["clientConfig"] for d in out if d["kind"].endswith("WebhookConfiguration") for w in d["webhooks"]]
    assert clients and all("service" not in c and c["url"].startswith("https://10.10.1.10:9443/") for c in clients)
    paths = {w["clientConfig"]["service"]["path"] for d in docs if d["kind"].endswith("WebhookConfiguration")
             for w in d["webhooks"]}
    assert {c["url"].removeprefix("https://10.10.1.10:9443") for c in clients} == paths


def test_host_services_get_the_manifests_literal_settings():
    env = filters.manifest_env(_manifests(), "Deployment")
    assert env["WEBHOOK_PORT"] == "9443" and env["DEFAULT_NETWORK_TYPE"] == "Overlay"
    assert "POD_NAME" not in env  # from the downward API: the role supplies it
    assert "HYBRIDLAY_VXLAN_PARENT" in filters.manifest_env(_manifests(), "DaemonSet")
    with pytest.raises(ValueError, match="no StatefulSet"):
        filters.manifest_env(_manifests(), "StatefulSet")


def test_agent_host_env_from_the_node_settings():
    env = filters.agent_host_env({"vxlan_parent": "eth1", "vlan_parent": "eth2", "vlan_mtu": 1500}, "node1", "ns")
    assert env == {"NODE_NAME": "node1", "POD_NAMESPACE": "ns",
                   "HYBRIDLAY_VXLAN_PARENT": "eth1", "HYBRIDLAY_VLAN_PARENT": "eth2"}
