"""The connectivity matrix of hybridlay's data plane, with real traffic between namespaces.

Each cell runs through the agents' real kernel state (policy rules, VXLAN with static neighbours
and FDB, proxy ARP/NDP, iptables/ipset); see nodebed.py for the topology and its stand-ins.
"""

from __future__ import annotations

import pytest
from nodebed import EXTERNAL_IP, NODE_IP, NodeCluster, sh

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.fixture(scope="module")
def pods(node_cluster: NodeCluster) -> NodeCluster:
    c = node_cluster
    c.add_pod("a1", "n1", ["10.244.0.11", "fd00:10::11"])
    c.add_pod("a2", "n1", ["10.244.0.12"])
    c.add_pod("b1", "n2", ["10.244.0.21", "fd00:10::21"])
    c.add_pod("u1", "n1", ["192.168.56.101", "fd00:56::101"])
    c.add_pod("u2", "n2", ["192.168.56.102", "fd00:56::102"])
    c.add_pod("r3", "n3", ["10.245.0.31"])  # the autoNatOutgoing: false subnet
    return c


def ns(c: NodeCluster, pod: str) -> str:
    return c.pods[pod].netns


@pytest.mark.parametrize(
    ("src", "dst", "target"),
    [
        ("a1", "a2", "10.244.0.12"),  # overlay, same node
        ("a1", "b1", "10.244.0.21"),  # overlay, other node
        ("b1", "a1", "fd00:10::11"),  # overlay IPv6, other node
        ("u1", "u2", "192.168.56.102"),  # underlay across nodes via the switch
        ("u2", "u1", "fd00:56::101"),  # underlay IPv6 across nodes: proxy NDP
        ("a1", "u2", "192.168.56.102"),  # overlay → underlay, other node
        ("u2", "a1", "10.244.0.11"),  # underlay → overlay, other node
        ("r3", "a1", "10.244.0.11"),  # overlay subnets reach each other whatever their NAT setting
    ],
)
def test_pod_to_pod_without_nat(pods: NodeCluster, src: str, dst: str, target: str) -> None:
    assert pods.ping(ns(pods, src), target), f"{src} cannot reach {dst} at {target}"
    source = pods.pods[src].ips[1] if ":" in target else pods.pods[src].ips[0]
    assert pods.seen_source(ns(pods, src), ns(pods, dst), target) == source


@pytest.mark.parametrize("pod", ["a1", "u1"])
@pytest.mark.parametrize("node", ["n1", "n2"])
def test_pod_to_nodes_and_back(pods: NodeCluster, pod: str, node: str) -> None:
    assert pods.ping(ns(pods, pod), NODE_IP[node]), f"{pod} cannot reach node {node}"
    assert pods.ping(pods.ns(node), pods.pods[pod].ips[0]), f"node {node} cannot reach {pod}"


def test_underlay_pod_reaches_external_host_unmasqueraded(pods: NodeCluster) -> None:
    assert pods.seen_source(ns(pods, "u1"), pods.ns("ext"), EXTERNAL_IP) == "192.168.56.101"


def test_overlay_pod_to_external_is_masqueraded_with_auto_nat(pods: NodeCluster) -> None:
    assert pods.seen_source(ns(pods, "a1"), pods.ns("ext"), EXTERNAL_IP) == NODE_IP["n1"]


def test_overlay_pod_to_external_keeps_its_address_without_auto_nat(pods: NodeCluster) -> None:
    """autoNatOutgoing: false routes (Hybridnet only REJECTs): the reply returns via node 1 and the tunnel."""
    assert pods.seen_source(ns(pods, "r3"), pods.ns("ext"), EXTERNAL_IP) == "10.245.0.31"
    assert pods.ping(ns(pods, "r3"), EXTERNAL_IP)


def test_external_host_cannot_open_connections_to_masqueraded_overlay_pods(pods: NodeCluster) -> None:
    """The gateway routes both overlay subnets to node 1; only the non-NAT one is reachable."""
    assert pods.ping(pods.ns("ext"), "10.245.0.31"), "the routed (non-NAT) overlay pod is reachable"
    assert not pods.ping(pods.ns("ext"), "10.244.0.21", wait_s=2)
    assert not pods.ping(pods.ns("ext"), "10.244.0.11", wait_s=2)


def test_vlan_enhanced_address_does_not_capture_the_pods_traffic(pods: NodeCluster) -> None:
    """Node 1 carries u1's address on eth0 (so its ARP requests have a sender in the subnet) without the
    kernel's local route for it: packets for u1 still reach the pod, not the node."""
    addresses = sh(pods.ns("n1"), "ip -4 addr show dev eth0").stdout
    assert "inet 192.168.56.101/24 scope link noprefixroute eth0" in addresses
    assert "local 192.168.56.101 " not in sh(pods.ns("n1"), "ip route show table local").stdout
    assert pods.seen_source(pods.ns("gw"), ns(pods, "u1"), "192.168.56.101") == "192.168.56.1"


def test_tunnel_refuses_destinations_outside_the_cluster(pods: NodeCluster) -> None:
    """A route that would send a pod's packets for a foreign address into the tunnel (a user's, or a
    stale one) does not leak them to the other nodes: the node answers port unreachable."""
    sh(pods.ns("n1"), "ip route add 198.51.100.0/24 dev eth0.vxlan4")
    try:
        out = sh(ns(pods, "a1"), "ping -n -c 1 -W 2 198.51.100.7", check=False).stdout
    finally:
        sh(pods.ns("n1"), "ip route del 198.51.100.0/24 dev eth0.vxlan4")
    assert f"From {NODE_IP['n1']} icmp_seq=1 Destination Port Unreachable" in out, out
