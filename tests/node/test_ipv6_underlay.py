"""VXLAN over an IPv6 underlay: the same agents, told to use the nodes' IPv6 addresses as VTEPs."""

from __future__ import annotations

from collections.abc import Iterator

import nodebed
import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.fixture(scope="module")
def v6_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nodebed.NodeCluster]:
    with nodebed.node_cluster(tmp_path_factory.mktemp("v6nodes"), vtep_ipv6=True) as cluster:
        cluster.add_pod("a1", "n1", ["10.244.0.11", "fd00:10::11"])
        cluster.add_pod("b1", "n2", ["10.244.0.21", "fd00:10::21"])
        yield cluster


def test_tunnel_runs_over_ipv6(v6_cluster: nodebed.NodeCluster) -> None:
    details = nodebed.sh(v6_cluster.ns("n1"), "ip -d link show eth0.vxlan4").stdout
    assert f"local {nodebed.NODE_IP6['n1']}" in details
    fdb = nodebed.sh(v6_cluster.ns("n1"), "bridge fdb show dev eth0.vxlan4").stdout
    assert f"dst {nodebed.NODE_IP6['n2']}" in fdb


@pytest.mark.parametrize("target", ["10.244.0.21", "fd00:10::21"])
def test_overlay_pods_reach_each_other_across_nodes(v6_cluster: nodebed.NodeCluster, target: str) -> None:
    assert v6_cluster.ping(v6_cluster.pods["a1"].netns, target)
