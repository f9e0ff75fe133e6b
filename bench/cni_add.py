"""CNI ADD/DEL latency: hybridlay (plugin → agent socket → plumbing) against bridge + host-local.

Every call is a real plugin process started from this process, which sits in a node namespace
(so the reference bridge plugin builds its bridge there, not on the host). The agent is the real
CNIServer in a process of its own, as on a node, with the tests' stand-in view (IPInstances
already allocated: it answers at once). Usage: python bench/cni_add.py [--runs 60].
Last line: JSON with the figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "cni"))

from cnitest import PLUGIN, Agent, Node, StaticView, netns_add, netns_del, pod_instances

CONCURRENT = 20
REFERENCE_DIR = Path("/usr/lib/cni")


def enter_netns(path: str) -> None:
    """Move this (main) thread into ``path``: plugin processes forked from it start there."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


Plugin = tuple[Path, dict]  # executable, network config


def call(plugin: Plugin, command: str, container_id: str, netns: str, pod: str) -> subprocess.Popen:
    binary, config = plugin
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(REFERENCE_DIR),
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={pod}",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    proc = subprocess.Popen([str(binary)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(config).encode())
    proc.stdin.close()
    return proc


def timed(start: Callable[[], subprocess.Popen]) -> float:
    began = time.perf_counter()
    proc = start()
    out = proc.stdout.read() if proc.stdout else b""
    if proc.wait() != 0:
        raise RuntimeError(f"plugin failed: {out.decode()[:500]}")
    return (time.perf_counter() - began) * 1000


def concurrent_adds(plugin: Plugin, pods: list[tuple[str, str]]) -> list[float]:
    """All ADDs started at once; each one's latency from its own start to its exit."""
    with concurrent.futures.ThreadPoolExecutor(len(pods)) as pool:
        futures = [
            pool.submit(timed, lambda i=i, netns=netns, name=name: call(plugin, "ADD", f"cc{i}", netns, name))
            for i, (netns, name) in enumerate(pods)
        ]
        return [future.result() for future in futures]


def pod_ip(i: int) -> str:
    return f"10.98.{i // 250}.{i % 250 + 1}/16"


def serve_agent(node_path: str, count: int) -> None:
    """The agent process: inside the node namespace, as on a node; stand-in view; until stdin closes."""
    view = StaticView()
    for i in range(count):
        view.pods[("bench", f"pod-{i}")] = pod_instances("bench", f"pod-{i}", pod_ip(i))
    enter_netns(node_path)  # before the agent's threads start: they inherit it
    agent = Agent(None, view)
    print(agent.socket, flush=True)
    sys.stdin.read()
    agent.stop()


def start_agent(node_path: str, count: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, __file__, "--agent", node_path, "--pods", str(count)]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 20 concurrent ADDs")
    parser.add_argument("--agent", help=argparse.SUPPRESS)  # internal: run as the agent process
    parser.add_argument("--pods", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.agent:
        serve_agent(options.agent, options.pods)
        return

    prefix = "hlb" + secrets.token_hex(3)
    node = Node(prefix)
    runs = options.runs
    agent, socket_path = start_agent(node.path, max(runs, CONCURRENT))
    work = Path(tempfile.mkdtemp(prefix="hlb-"))
    pods: list[str] = []
    try:
        enter_netns(node.path)
        ours_config = {"cniVersion": "1.0.0", "name": "hybridlay", "type": "hybridlay", "socket": socket_path}
        ours: Plugin = (PLUGIN, ours_config)
        reference_config = {
            "cniVersion": "1.0.0",
            "name": "ref",
            "type": "bridge",
            "bridge": f"{prefix}br",
            "isGateway": True,
            "ipam": {"type": "host-local", "subnet": "10.99.0.0/16", "dataDir": str(work / "ipam")},
        }
        reference: Plugin = (REFERENCE_DIR / "bridge", reference_config)
        pods = [f"{prefix}p{i}" for i in range(max(runs, CONCURRENT))]
        paths = [netns_add(name) for name in pods]

        results: dict[str, list[float]] = {"add": [], "del": [], "ref_add": [], "ref_del": []}
        for warmup in (True, False):  # one untimed pass warms caches (page cache, pyc, the agent's pool)
            for i in range(2 if warmup else runs):
                cid = f"c{i}"
                add = timed(lambda i=i, cid=cid: call(ours, "ADD", cid, paths[i], f"pod-{i}"))
                delete = timed(lambda i=i, cid=cid: call(ours, "DEL", cid, paths[i], f"pod-{i}"))
                ref_add = timed(lambda i=i, cid=cid: call(reference, "ADD", cid, paths[i], f"pod-{i}"))
                ref_del = timed(lambda i=i, cid=cid: call(reference, "DEL", cid, paths[i], f"pod-{i}"))
                if not warmup:
                    for key, value in zip(results, (add, delete, ref_add, ref_del), strict=True):
                        results[key].append(value)

        concurrent: list[float] = []
        batch = [(paths[i], f"pod-{i}") for i in range(CONCURRENT)]
        for _ in range(options.rounds):
            concurrent += concurrent_adds(ours, batch)
            for i, (netns, name) in enumerate(batch):
                timed(lambda i=i, netns=netns, name=name: call(ours, "DEL", f"cc{i}", netns, name))

        print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}")
        for key, values in results.items():
            print(f"{key:24}{statistics.median(values):10.1f}{p(values, 99):10.1f}")
        print(f"{'add, 20 concurrent':24}{statistics.median(concurrent):10.1f}{p(concurrent, 99):10.1f}")
        figures = {
            "add_p50_ms": round(statistics.median(results["add"]), 2),
            "add_p99_ms": round(p(results["add"], 99), 2),
            "ref_add_p50_ms": round(statistics.median(results["ref_add"]), 2),
            "ref_add_p99_ms": round(p(results["ref_add"], 99), 2),
            "add_p50_ratio": round(statistics.median(results["add"]) / statistics.median(results["ref_add"]), 3),
            "del_p50_ms": round(statistics.median(results["del"]), 2),
            "ref_del_p50_ms": round(statistics.median(results["ref_del"]), 2),
            "add_p99_ms_concurrent20": round(p(concurrent, 99), 2),
            "runs": runs,
        }
        print(json.dumps(figures))
    finally:
        assert agent.stdin is not None
        agent.stdin.close()
        agent.wait(30)
        for name in pods:
            netns_del(name)
        node.delete()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
