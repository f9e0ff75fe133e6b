"""Benchmark: TCP throughput through hybridlay's data plane against the bare links it runs on.

Uses the namespace test bed of tests/node (three nodes with real agents; see tests/node/nodebed.py)
and iperf3, each measurement 3 s, repeated 3 times alternately (medians), all in one run:
- overlay pod (node 1) → overlay pod (node 2) against a plain VXLAN device pair between the same
  two node namespaces (same MTU, same underlay): ``overlay_vs_vxlan``, goal ≥ 0.9;
- underlay pod (node 1) → underlay pod (node 2) against node 1 → node 2 on their own addresses:
  ``underlay_vs_node``, goal ≥ 0.95.
Run as root: ``python bench/throughput.py``. The last line is JSON.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "support"), str(HERE.parent / "tests" / "node")]

import nodebed  # noqa: E402

SECONDS = 3
ROUNDS = 3  # the machine is shared: alternate the four measurements and take each one's median


def iperf(cluster: nodebed.NodeCluster, client_ns: str, server_ns: str, target: str) -> float:
    """Received bits per second of one iperf3 run from ``client_ns`` to ``target`` in ``server_ns``."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5201"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        assert cluster.ping(client_ns, target), f"{target} unreachable from {client_ns}"
        out = nodebed.sh(client_ns, f"iperf3 -c {target} -p 5201 -t {SECONDS} -J", timeout=SECONDS + 30).stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])
    finally:
        server.wait(timeout=10)


def raw_vxlan(cluster: nodebed.NodeCluster) -> None:
    """A plain VXLAN pair between node 1 and node 2 (VNI 99, port 4789), 172.30.0.1 ↔ 172.30.0.2."""
    for me, peer, address in (("n1", "n2", "172.30.0.1"), ("n2", "n1", "172.30.0.2")):
        nodebed.sh(
            cluster.ns(me),
            f"ip link add rawvx type vxlan id 99 dstport 4789 local {nodebed.NODE_IP[me]} dev eth0 nolearning;"
            f" ip link set rawvx mtu 1450 up; ip addr add {address}/24 dev rawvx;"
            f" bridge fdb append 00:00:00:00:00:00 dev rawvx dst {nodebed.NODE_IP[peer]}",
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, nodebed.node_cluster(Path(tmp)) as cluster:
        a1 = cluster.add_pod("a1", "n1", ["10.244.0.11"])
        b1 = cluster.add_pod("b1", "n2", ["10.244.0.21"])
        u1 = cluster.add_pod("u1", "n1", ["192.168.56.101"])
        u2 = cluster.add_pod("u2", "n2", ["192.168.56.102"])
        raw_vxlan(cluster)
        runs = {
            "overlay": (a1.netns, b1.netns, "10.244.0.21"),
            "vxlan": (cluster.ns("n1"), cluster.ns("n2"), "172.30.0.2"),
            "underlay": (u1.netns, u2.netns, "192.168.56.102"),
            "node": (cluster.ns("n1"), cluster.ns("n2"), nodebed.NODE_IP["n2"]),
        }
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(ROUNDS):
            for name, (client, server, target) in runs.items():
                samples[name].append(iperf(cluster, client, server, target))
        figures = {name: statistics.median(values) for name, values in samples.items()}
    for name, bps in figures.items():
        print(f"{name:9} {bps / 1e9:.2f} Gbit/s")
    print(
        json.dumps(
            {
                "overlay_vs_vxlan": round(figures["overlay"] / figures["vxlan"], 3),
                "underlay_vs_node": round(figures["underlay"] / figures["node"], 3),
                **{f"{name}_gbps": round(bps / 1e9, 3) for name, bps in figures.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
