"""The networks every real-API test shares, and fresh ones for a test that needs its own.

A cluster has at most one Overlay network and nodes in at most one underlay network, so the session
makes one topology (reference §6's, with larger subnets) once, and a test that asserts on addresses,
counts or statuses makes its own underlay network on its own nodes with :func:`fresh_underlay`.
Everything goes through the API as a user would (the webhooks are called).
"""

from __future__ import annotations

import ipaddress
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import kubernetes
import pytest

GROUP, VERSION = "networking.hybridlay.io", "v1"
API_VERSION = f"{GROUP}/{VERSION}"

OVERLAY, OVERLAY_SUBNET, OVERLAY_SUBNET6 = "overlay-network", "overlay-subnet", "overlay-subnet6"
UNDERLAY, UNDERLAY_SUBNET = "underlay-network", "underlay-subnet"
UNDERLAY_LABEL = {"network": UNDERLAY}
SHARED_NODES = {"node1": UNDERLAY_LABEL, "node2": UNDERLAY_LABEL, "node3": {}}

T = TypeVar("T")


def until(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy (and return that); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}", pytrace=False)
        time.sleep(0.05)


def unique(prefix: str) -> str:
    """A name no other test uses: the cluster is shared by the whole session."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# Fresh underlay networks: netIDs and /24s no shared network uses (the webhooks refuse overlaps).
_fresh = itertools.count(1)


@dataclass(frozen=True)
class Underlay:
    network: str
    subnet: str
    cidr: str
    gateway: str
    nodes: tuple[str, ...]
    label: dict[str, str]


class Api:
    """Typed clients of one identity, and the writes tests repeat."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self.apps = kubernetes.client.AppsV1Api(client)

    def network(self, name: str, type_: str, net_id: int | None = None, selector: dict[str, str] | None = None) -> None:
        spec: dict[str, Any] = {"type": type_}
        if net_id is not None:
            spec["netID"] = net_id
        if selector:
            spec["nodeSelector"] = selector
        body = {"apiVersion": API_VERSION, "kind": "Network", "metadata": {"name": name}, "spec": spec}
        self.custom.create_cluster_custom_object(GROUP, VERSION, "networks", body)

    def subnet(self, name: str, network: str, cidr: str, version: str = "4", **range_: Any) -> None:
        spec = {"network": network, "range": {"version": version, "cidr": cidr, **range_}}
        body = {"apiVersion": API_VERSION, "kind": "Subnet", "metadata": {"name": name}, "spec": spec}
        self.custom.create_cluster_custom_object(GROUP, VERSION, "subnets", body)

    def node(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.core.create_node({"metadata": {"name": name, "labels": labels or {}}})

    def instances(self, label_selector: str = "") -> dict[str, dict[str, Any]]:
        listing = self.custom.list_cluster_custom_object(GROUP, VERSION, "ipinstances", label_selector=label_selector)
        return {o["metadata"]["name"]: o for o in listing["items"]}

    def instances_of(self, namespace: str, pod: str | None = None) -> dict[str, dict[str, Any]]:
        """The IPInstances bound to pods of ``namespace`` (to ``pod`` only, when given)."""
        return {
            name: o
            for name, o in self.instances().items()
            if o["spec"]["binding"].get("podNamespace") == namespace
            and (pod is None or o["spec"]["binding"].get("podName") == pod)
        }

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return dict(self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name))


def make_shared_topology(api: Api) -> None:
    """Reference §6's cluster: node1 and node2 in the underlay VLAN 100 (192.168.56.0/24, gateway .1),
    node3 in the overlay only; the overlay (VNI 4) with an IPv4 and an IPv6 subnet."""
    for name, labels in SHARED_NODES.items():
        api.node(name, labels)
    api.network(UNDERLAY, "Underlay", 100, UNDERLAY_LABEL)
    api.network(OVERLAY, "Overlay", 4)
    api.subnet(UNDERLAY_SUBNET, UNDERLAY, "192.168.56.0/24", gateway="192.168.56.1")
    api.subnet(OVERLAY_SUBNET, OVERLAY, "100.64.0.0/16")
    api.subnet(OVERLAY_SUBNET6, OVERLAY, "fd00:64::/112", version="6")


def fresh_underlay(api: Api, nodes: int = 1, **range_: Any) -> Underlay:
    """A new underlay network with ``nodes`` nodes of its own and one /24 subnet no other test uses
    (gateway .1; ``range_`` adds range fields such as ``start``, ``end``, ``reservedIPs``)."""
    n = next(_fresh)
    tag = uuid.uuid4().hex[:6]
    network, subnet = f"ul-{n}-{tag}", f"ul-{n}-{tag}-subnet"
    cidr = ipaddress.ip_network(f"10.{200 + n // 256}.{n % 256}.0/24")
    gateway = str(cidr.network_address + 1)
    label = {"hybridlay-test/underlay": network}
    names = tuple(f"{network}-node{i}" for i in range(1, nodes + 1))
    for name in names:
        api.node(name, label)
    api.network(network, "Underlay", 1000 + n, label)
    api.subnet(subnet, network, str(cidr), gateway=gateway, **range_)
    return Underlay(network, subnet, str(cidr), gateway, names, label)
