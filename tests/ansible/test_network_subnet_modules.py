"""The network and subnet modules against the real API server (the session's control plane, with the
operator's webhooks registered). Each module runs as Ansible runs it (ad hoc, local connection),
with an admin's kubeconfig, as the seed role runs them from the controller.

The session's cluster is shared: each test works on a VLAN network, subnet, CIDR and node of its own
(``plan``), removed afterwards, so what it asserts about names and counts is its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from apitopo import GROUP, VERSION, Api, until
from realcluster import RealCluster

from hybridlay import names

pytestmark = pytest.mark.slow

Module = Callable[..., dict[str, Any]]
# Each test's VLAN id and /24 (192.168.<n>.0/24): none of the session's shared networks uses them.
_vlans = iter(range(20, 90))


@dataclass(frozen=True)
class Plan:
    network: dict[str, Any]  # the network module's arguments
    subnet: dict[str, Any]  # the subnet module's arguments
    vlan: int
    label: dict[str, str]  # the network's node selector

    def ip(self, host: int) -> str:
        return f"192.168.{self.vlan}.{host}"


@pytest.fixture
def plan(real_api: Api) -> Iterator[Plan]:
    """A VLAN network and subnet of this test's own (not created), removed after the test."""
    vlan, tag = next(_vlans), uuid.uuid4().hex[:6]
    network = f"underlay-vlan{vlan}-{tag}"
    label = {f"{GROUP}/network-{network}": "true"}
    yield Plan(
        network={"name": network, "type": "Underlay", "mode": "VLAN", "net_id": vlan, "node_selector": label},
        subnet={
            "name": f"vlan{vlan}-a-{tag}",
            "network": network,
            "cidr": f"192.168.{vlan}.0/24",
            "gateway": f"192.168.{vlan}.1",
        },
        vlan=vlan,
        label=label,
    )
    for plural, name in (("subnets", f"vlan{vlan}-b-{tag}"), ("subnets", f"vlan{vlan}-a-{tag}"), ("networks", network)):
        try:
            real_api.custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise


@pytest.fixture
def admin_kubeconfig(real_cluster: RealCluster, tmp_path: Path) -> Path:
    return real_cluster.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def module(ansible: Callable[..., Any], admin_kubeconfig: Path) -> Module:
    def run(name: str, args: dict[str, Any], *extra: str) -> dict[str, Any]:
        result = ansible(
            [
                "ansible",
                "localhost",
                "-m",
                f"hybridlay.fabric.{name}",
                "-a",
                json.dumps(args | {"kubeconfig": str(admin_kubeconfig)}),
                *extra,
            ],
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        )
        out = json.loads(result.stdout)
        return dict(out["plays"][0]["tasks"][0]["hosts"]["localhost"])

    return run


def stored(api: Api, plural: str, name: str) -> dict[str, Any] | None:
    try:
        return api.get(plural, name)
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return None
        raise


def test_network_create_idempotent_update_and_immutable_fields(module: Module, real_api: Api, plan: Plan) -> None:
    name, vlan = plan.network["name"], plan.vlan
    first = module("network", plan.network)
    assert first["changed"] and first["result"]["spec"]["netID"] == vlan
    assert (stored(real_api, "networks", name) or {})["spec"]["netID"] == vlan
    assert not module("network", plan.network)["changed"]
    # What others keep in the Network's metadata is theirs: an update of its spec leaves it.
    theirs = {"metadata": {"labels": {"team": "net"}, "annotations": {"example.org/owner": "net-team"}}}
    real_api.custom.patch_cluster_custom_object(GROUP, VERSION, "networks", name, theirs)
    rack = {"rack": f"rack-{name}"}
    changed_selector = module("network", plan.network | {"node_selector": rack}, "--diff")
    assert changed_selector["changed"]
    assert changed_selector["diff"]["after"]["spec"]["nodeSelector"] == rack
    updated = stored(real_api, "networks", name) or {}
    assert updated["spec"]["nodeSelector"] == rack
    assert updated["metadata"]["labels"] == {"team": "net"}
    assert updated["metadata"]["annotations"] == {"example.org/owner": "net-team"}
    refused = module("network", plan.network | {"net_id": vlan + 100})
    assert refused["failed"]
    assert f"spec.netID {vlan + 100} must not change (was {vlan})" in refused["msg"]
    assert (stored(real_api, "networks", name) or {})["spec"]["netID"] == vlan


def test_subnet_refused_before_any_api_call(module: Module, real_api: Api, plan: Plan) -> None:
    module("network", plan.network)
    cidr, name = plan.subnet["cidr"], plan.subnet["name"]
    refused = module("subnet", plan.subnet | {"gateway": "10.9.0.1", "start": plan.ip(200), "end": plan.ip(100)})
    assert refused["failed"]
    assert f"spec.range.gateway 10.9.0.1 is outside spec.range.cidr {cidr}" in refused["violations"]
    assert len(refused["violations"]) >= 2  # every broken rule, not only the first
    assert stored(real_api, "subnets", name) is None
    assert module("subnet", plan.subnet)["changed"]
    assert not module("subnet", plan.subnet)["changed"]
    other = name.replace("-a-", "-b-")
    overlapping = module("subnet", plan.subnet | {"name": other, "cidr": f"{plan.ip(128)}/25", "gateway": plan.ip(129)})
    assert overlapping["failed"] and "overlap" in overlapping["msg"]
    assert stored(real_api, "subnets", other) is None


def test_deletes_refused_while_in_use(module: Module, real_api: Api, real_namespace: str, plan: Plan) -> None:
    network, subnet = plan.network["name"], plan.subnet["name"]
    module("network", plan.network)
    module("subnet", plan.subnet)
    refused = module("network", {"name": network, "state": "absent"})
    assert refused["failed"] and f"is still used by 1 subnet(s): {subnet}" in refused["msg"]

    # A pod on a node of the network holds an address of the subnet.
    node = f"{network}-node"
    real_api.node(node, plan.label)
    pod = {
        "metadata": {"name": "web-0", "annotations": {names.ANNOTATION_SPECIFIED_SUBNET: subnet}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }
    real_api.core.create_namespaced_pod(real_namespace, pod)
    [address] = until(lambda: real_api.instances_of(real_namespace, "web-0"), "web-0's address")
    refused = module("subnet", {"name": subnet, "state": "absent"})
    assert refused["failed"] and f"is still used by 1 IPInstance(s): {address}" in refused["msg"]
    assert stored(real_api, "subnets", subnet) is not None

    real_api.core.delete_namespaced_pod("web-0", real_namespace, grace_period_seconds=0)
    until(lambda: not real_api.instances_of(real_namespace), "web-0's address freed with it")
    assert module("subnet", {"name": subnet, "state": "absent"})["changed"]
    assert module("network", {"name": network, "state": "absent"})["changed"]
    assert stored(real_api, "subnets", subnet) is None and stored(real_api, "networks", network) is None
    assert not module("network", {"name": network, "state": "absent"})["changed"]


def test_check_mode_is_a_server_side_dry_run(module: Module, real_api: Api, plan: Plan) -> None:
    result = module("network", plan.network, "--check", "--diff")
    assert result["changed"] and result["diff"]["before"] == {}
    # The API server answered the write (its own fields are filled in) and stored nothing.
    answer = result["result"]["metadata"]
    assert answer["name"] == plan.network["name"] and answer["uid"] and answer["creationTimestamp"]
    assert stored(real_api, "networks", plan.network["name"]) is None
