"""Benchmark: TCP throughput through hybridlay's data plane against the bare links it runs on.

Uses the namespace test bed of tests/node (three nodes with real agents resyncing at their default
period; see tests/node/nodebed.py) and iperf3, each measurement 4 s, repeated 7 times alternately
(medians), all in one run:
- overlay pod (node 1) → overlay pod (node 2) against a plain VXLAN device pair between the same
  two node namespaces (same MTU, same underlay): ``overlay_vs_vxlan``, goal ≥ 0.9;
- underlay pod (node 1) → underlay pod (node 2) against node 1 → node 2 on their own addresses:
  ``underlay_vs_node``, goal ≥ 0.95.
Run as root: ``python bench/throughput.py``. The last line is JSON. Each round runs a path and its
reference back to back; ``round_ratio_quartiles`` gives the quartiles of those per-round ratios, so a
reader can see how far the machine's noise reaches next to the goals.

Node namespaces share this machine's CPUs, and a veth hands a packet on to the next namespace on
the sending CPU: without care, the sender's CPU would also do all of the receiving node's work, which
on real machines runs on the receiver's own CPUs. The goals are measured "as on
separate machines" (needs two CPUs or more): each of the two nodes gets a CPU of its own, iperf3 is
pinned to it, and the packets the node receives on its uplink are steered to it (RPS). The same
figures measured "on one sending CPU" (no pinning, no steering) follow under ``shared_cpu``: they show
what the extra routed hop of each node costs in CPU. Both the hybridlay paths and the references
run in each arrangement.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "support"), str(HERE.parent / "tests" / "node")]

import nodebed  # noqa: E402

SECONDS = 4
ROUNDS = 7  # the machine is shared: alternate the four measurements and take each one's median
NODE_CPU = {"n1": 0, "n2": 1}


def steer(cluster: nodebed.NodeCluster, one_cpu_per_node: bool) -> None:
    """Process what each node receives on its uplink on the node's own CPU, or on the sending CPU."""
    for node, cpu in NODE_CPU.items():
        mask = f"{1 << cpu:x}" if one_cpu_per_node else "0"
        nodebed.sh(cluster.ns(node), f"for q in /sys/class/net/eth0/queues/rx-*; do echo {mask} >$q/rps_cpus; done")


Endpoint = tuple[str, str]  # (network namespace, node)


def iperf(cluster: nodebed.NodeCluster, client: Endpoint, server: Endpoint, target: str, pin: bool) -> float:
    """Received bits per second of one iperf3 run from ``client`` to ``target`` in ``server``."""

    def affinity(endpoint: Endpoint) -> list[str]:
        return ["-A", str(NODE_CPU[endpoint[1]])] if pin else []

    process = subprocess.Popen(
        ["ip", "netns", "exec", server[0], "iperf3", "-s", "-1", "-p", "5201", *affinity(server)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.3)
        assert cluster.ping(client[0], target), f"{target} unreachable from {client[0]}"
        command = ["iperf3", "-c", target, "-p", "5201", "-t", str(SECONDS), "-J", *affinity(client)]
        out = nodebed.sh(client[0], " ".join(command), timeout=SECONDS + 30).stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])
    finally:
        process.wait(timeout=10)


def round_ratio_quartiles(path: list[float], reference: list[float]) -> list[float]:
    """Quartiles of the path/reference ratios of the rounds (each pair measured back to back)."""
    ratios = [p / r for p, r in zip(path, reference, strict=True)]
    return [round(q, 3) for q in statistics.quantiles(ratios, n=4)]


def measure(
    cluster: nodebed.NodeCluster, runs: dict[str, tuple[Endpoint, Endpoint, str]], separate: bool
) -> dict[str, Any]:
    """The two ratios, the four medians (Gbit/s) and the ratios' per-round quartiles, with one CPU per node
    (``separate``) or not."""
    steer(cluster, separate)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, (client, server, target) in runs.items():
            samples[name].append(iperf(cluster, client, server, target, pin=separate))
    gbps = {name: statistics.median(values) / 1e9 for name, values in samples.items()}
    pairs = {"overlay_vs_vxlan": ("overlay", "vxlan"), "underlay_vs_node": ("underlay", "node")}
    return {
        **{key: round(gbps[path] / gbps[reference], 3) for key, (path, reference) in pairs.items()},
        **{f"{name}_gbps": round(value, 3) for name, value in gbps.items()},
        "round_ratio_quartiles": {
            key: round_ratio_quartiles(samples[path], samples[reference]) for key, (path, reference) in pairs.items()
        },
    }


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
    if (os.cpu_count() or 1) < 2:
        sys.exit("throughput.py needs two CPUs or more: each node of the measurement gets one")
    with tempfile.TemporaryDirectory() as tmp, nodebed.node_cluster(Path(tmp), resync_seconds=30) as cluster:
        a1 = cluster.add_pod("a1", "n1", ["10.244.0.11"])
        b1 = cluster.add_pod("b1", "n2", ["10.244.0.21"])
        u1 = cluster.add_pod("u1", "n1", ["192.168.56.101"])
        u2 = cluster.add_pod("u2", "n2", ["192.168.56.102"])
        raw_vxlan(cluster)
        n1, n2 = (cluster.ns("n1"), "n1"), (cluster.ns("n2"), "n2")
        runs = {
            "overlay": ((a1.netns, "n1"), (b1.netns, "n2"), "10.244.0.21"),
            "vxlan": (n1, n2, "172.30.0.2"),
            "underlay": ((u1.netns, "n1"), (u2.netns, "n2"), "192.168.56.102"),
            "node": (n1, n2, nodebed.NODE_IP["n2"]),
        }
        figures = measure(cluster, runs, separate=True)
        figures["shared_cpu"] = measure(cluster, runs, separate=False)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
