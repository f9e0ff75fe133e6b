"""The example objects in docs/examples/ are what a user copies first: the real API server's schemas
and our admission rules must accept every one of them.

The session's cluster already holds an Overlay network (at most one may exist), so the examples go
to the API server as dry runs, where only our webhook's cluster-state rules may refuse them, and the
admission rules themselves (what the webhook runs) check them as a cluster of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from apitopo import GROUP, VERSION, Api

from hybridlay import model, validation

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
PLURALS = {"Network": "networks", "Subnet": "subnets", "IPInstance": "ipinstances", "NodeInfo": "nodeinfos"}
# Of the objects applied in this order, each may depend on those before it.
FILES = ("networks.yaml", "subnets.yaml", "ipinstances.yaml", "nodeinfos.yaml")


def examples() -> list[dict[str, Any]]:
    return [d for f in FILES for d in yaml.safe_load_all((EXAMPLES / f).read_text()) if d]


def example_id(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("obj", examples(), ids=example_id)
def test_the_api_servers_schemas_accept_the_example(real_api: Api, obj: dict[str, Any]) -> None:
    try:
        real_api.custom.create_cluster_custom_object(GROUP, VERSION, PLURALS[obj["kind"]], obj, dry_run="All")
    except kubernetes.client.ApiException as e:
        # Only our webhook's rules about the session's own networks may refuse it: the schema passed.
        assert "admission webhook" in e.body and "denied the request" in e.body, e.body


def test_the_admission_rules_accept_the_examples_as_one_cluster() -> None:
    networks: dict[str, model.Network] = {}
    subnets: list[model.Subnet] = []
    node_labels = {"node1": {"network": "underlay-vlan100"}, "node2": {"network": "underlay-bgp"}}
    for obj in examples():
        if obj["kind"] == "Network":
            network = model.network_from_resource(obj)
            assert validation.validate_network_create(network, networks.values(), node_labels) == []
            networks[network.name] = network
        elif obj["kind"] == "Subnet":
            subnet = model.subnet_from_resource(obj)
            assert validation.validate_subnet_create(subnet, networks, subnets) == []
            subnets.append(subnet)
    assert sorted(networks) == ["overlay", "underlay-bgp", "underlay-vlan100"]
    assert len(subnets) == 4
