"""The network and subnet modules against an API server (KMock, tests/support/kapi.py: no
kube-apiserver can run here). Each module runs as Ansible runs it (ad hoc, local connection).
The stand-in honours ``dryRun=All`` as the API documents it (answer, store nothing) and records
each dry-run write, so the check-mode test can see the module asked for one.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config

pytestmark = pytest.mark.slow

NETWORKS = "networking.hybridlay.io/v1/networks"
SUBNETS = "networking.hybridlay.io/v1/subnets"
VLAN20 = {"name": "underlay-vlan20", "type": "Underlay", "mode": "VLAN", "net_id": 20,
          "node_selector": {"networking.hybridlay.io/network-underlay-vlan20": "true"}}
SUBNET = {"name": "vlan20-a", "network": "underlay-vlan20", "cidr": "192.168.20.0/24", "gateway": "192.168.20.1"}


@pytest.fixture
def module(ansible, kubeconfig):
    def run(name: str, args: dict, *extra: str) -> dict:
        result = ansible(["ansible", "localhost", "-m", f"hybridlay.fabric.{name}", "-a",
                          json.dumps(args | {"kubeconfig": str(kubeconfig)}), *extra],
                         ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        out = json.loads(result.stdout)
        return out["plays"][0]["tasks"][0]["hosts"]["localhost"]

    return run


def test_network_create_idempotent_update_and_immutable_fields(module, kube_api):
    first = module("network", VLAN20)
    assert first["changed"] and first["result"]["spec"]["netID"] == 20
    assert [n["metadata"]["name"] for n in kube_api.objects(NETWORKS)] == ["underlay-vlan20"]
    assert not module("network", VLAN20)["changed"]
    changed_selector = module("network", VLAN20 | {"node_selector": {"rack": "rack1"}}, "--diff")
    assert changed_selector["changed"]
    assert changed_selector["diff"]["after"]["spec"]["nodeSelector"] == {"rack": "rack1"}
    refused = module("network", VLAN20 | {"net_id": 21})
    assert refused["failed"]
    assert "spec.netID 21 must not change (was 20)" in refused["msg"]
    assert kube_api.objects(NETWORKS)[0]["spec"]["netID"] == 20


def test_subnet_refused_before_any_api_call(module, kube_api):
    module("network", VLAN20)
    refused = module("subnet", SUBNET | {"gateway": "10.9.0.1", "start": "192.168.20.200", "end": "192.168.20.100"})
    assert refused["failed"]
    assert "spec.range.gateway 10.9.0.1 is outside spec.range.cidr 192.168.20.0/24" in refused["violations"]
    assert len(refused["violations"]) >= 2  # every broken rule, not only the first
    assert kube_api.objects(SUBNETS) == []
    assert module("subnet", SUBNET)["changed"]
    assert not module("subnet", SUBNET)["changed"]
    overlapping = module("subnet", SUBNET | {"name": "vlan20-b", "cidr": "192.168.20.128/25",
                                             "gateway": "192.168.20.129"})
    assert overlapping["failed"] and "overlap" in overlapping["msg"]


def test_deletes_refused_while_in_use(module, kube_api, kubeconfig):
    module("network", VLAN20)
    module("subnet", SUBNET)
    refused = module("network", {"name": "underlay-vlan20", "state": "absent"})
    assert refused["failed"] and "is still used by 1 subnet(s): vlan20-a" in refused["msg"]
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
    api.create_cluster_custom_object("networking.hybridlay.io", "v1", "ipinstances", {
        "apiVersion": "networking.hybridlay.io/v1", "kind": "IPInstance", "metadata": {"name": "192-168-20-7"},
        "spec": {"network": "underlay-vlan20", "subnet": "vlan20-a",
                 "address": {"version": "4", "ip": "192.168.20.7/24", "gateway": "192.168.20.1"},
                 "binding": {"podName": "web-0", "podNamespace": "default"}}})
    refused = module("subnet", {"name": "vlan20-a", "state": "absent"})
    assert refused["failed"] and "is still used by 1 IPInstance(s): 192-168-20-7" in refused["msg"]
    api.delete_cluster_custom_object("networking.hybridlay.io", "v1", "ipinstances", "192-168-20-7")
    assert module("subnet", {"name": "vlan20-a", "state": "absent"})["changed"]
    assert module("network", {"name": "underlay-vlan20", "state": "absent"})["changed"]
    assert kube_api.objects(SUBNETS) == [] and kube_api.objects(NETWORKS) == []
    assert not module("network", {"name": "underlay-vlan20", "state": "absent"})["changed"]


def test_check_mode_is_a_server_side_dry_run(module, kube_api):
    result = module("network", VLAN20, "--check", "--diff")
    assert result["changed"] and result["diff"]["before"] == {}
    assert len(kube_api.api.dry_runs) == 1
    assert kube_api.objects(NETWORKS) == []
