"""Benchmark: how fast hybridlay-operator gives a burst of pods their addresses, and how fast it starts.

Against the cluster in ``KUBECONFIG`` when set (a real API server), else against the local API
stand-in (tests/support/kapi.py, KMock) it starts itself on a thread. The operator runs as its own
process (``python -m hybridlay_operator``), as in a cluster; its peak RSS is read from /proc.

1. ``api_creates_per_s``: the API's own rate for plain object creates (ConfigMaps), sent with the
   operator's client and as many concurrent requests as the operator's workers, while the burst's
   pods already exist (as they do during the burst). Removed after.
2. ``pods_per_s``: 1,000 pods with ``nodeName`` set exist when the operator becomes ready; seconds
   from ready until every one has its IPInstance. Every pod costs the operator at least one write,
   so ``efficiency`` = pods_per_s / api_creates_per_s can approach 1 (goal ≥ 0.5; ≥ 100 pods/s here).
3. ``cold_start_s``: with 20,000 IPInstances in the cluster, seconds from starting the process until
   it answers /readyz (state rebuilt, ready to allocate). Goal ≤ 5 s.

Prints the figures, then as its last line a JSON object with exactly the keys above and ``peak_rss_mib``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "tests" / "operator" / "support")]

import kmock  # noqa: E402
from kapi import RunningAPI  # noqa: E402

from hybridlay import names  # noqa: E402
from hybridlay_operator.kube import Kube, core_path, custom_path, load_client  # noqa: E402

NAMESPACE = "hybridlay-bench"
NETWORK = "bench-overlay"
STATEFULSET = "bench-sts"
CONCURRENCY = 16
RUN = f"run-{os.getpid()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class OperatorProcess:
    def __init__(self, kubeconfig: str, log: Path) -> None:
        self.port = free_port()
        env = dict(
            os.environ,
            KUBECONFIG=kubeconfig,
            LEADER_ELECTION="false",
            PROBE_PORT=str(self.port),
            WORKERS=str(CONCURRENCY),
            RESYNC_SECONDS="3600",
            DEFAULT_NETWORK_TYPE="Overlay",
            POD_NAMESPACE=NAMESPACE,
        )
        self.log = log.open("w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hybridlay_operator"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    async def wait_ready(self, timeout: float = 120) -> float:
        """Seconds from process start until /readyz says 200."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/readyz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited with {self.process.returncode}; see {self.log.name}")
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError, OSError),
                urllib.request.urlopen(url, timeout=1) as response,
            ):
                if response.status == 200:
                    return time.monotonic() - self.started
            await asyncio.sleep(0.02)
        raise TimeoutError("operator not ready")

    def stop(self) -> float:
        rss = peak_rss_mib(self.process.pid) if self.process.poll() is None else 0.0
        self.process.kill()
        self.process.wait(timeout=10)
        self.log.close()
        return rss


async def run_concurrently(count: int, make: Any) -> float:
    """``make(i)`` for i in range(count) with CONCURRENCY requests in flight; seconds taken."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            await make(queue.get_nowait())

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.monotonic() - started


def pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"burst-{i}", "namespace": NAMESPACE, "labels": {"hybridlay-bench": RUN}},
        "spec": {"nodeName": f"bench-node-{i % 10}", "containers": [{"name": "c", "image": "pause"}]},
        "status": {"phase": "Pending"},
    }


def instance(i: int, base: int, owner_uid: str) -> dict[str, Any]:
    """A retained IPInstance of a scaled-down StatefulSet (kept, never an orphan: its owner lives)."""
    value = base + i
    address = f"100.{64 + value // 65536}.{(value // 256) % 256}.{value % 256}"
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_IPINSTANCE,
        "metadata": {"name": address.replace(".", "-"), "labels": {"hybridlay-bench": RUN}},
        "spec": {
            "network": NETWORK,
            "subnet": "bench-big" if value < 65536 else "bench-big2",
            "address": {"version": "4", "ip": f"{address}/16", "mac": "02:12:34:00:00:01"},
            "binding": {
                "podName": f"{STATEFULSET}-{i}",
                "podNamespace": NAMESPACE,
                "referredObject": {"kind": "StatefulSet", "name": STATEFULSET, "uid": owner_uid},
                "stateful": {"index": i},
            },
        },
    }


class Cluster:
    """Counting and bulk-loading: through the stand-in's store when it is local, else through the API."""

    def __init__(self, kube: Kube, local: Any | None) -> None:
        self.kube = kube
        self.local = local

    async def count(self, plural: str) -> int:
        if self.local is not None:
            resource = f"{names.GROUP}/{names.VERSION}/{plural}"

            async def count() -> int:
                wanted = kmock.resource(resource)
                return sum(
                    1 for (res, _, _), obj in self.local.api.objects.items() if res == wanted and not obj.deleted
                )

            return int(await asyncio.to_thread(self.local.run, count()))
        return len(await self.kube.list(custom_path(plural), label_selector=f"hybridlay-bench={RUN}"))

    async def preload_instances(self, count: int, base: int, owner_uid: str) -> None:
        if self.local is not None:
            # 20,000 creates through KMock take minutes (it scans every object per request); the
            # operator only needs them to be there, so they go straight into the store.
            async def load() -> None:
                resource = kmock.resource(f"{names.GROUP}/{names.VERSION}/{names.PLURAL_IPINSTANCE}")
                for i in range(count):
                    body = instance(i, base, owner_uid)
                    body["metadata"]["resourceVersion"] = "1"
                    self.local.api.objects[resource, None, body["metadata"]["name"]] = body

            await asyncio.to_thread(self.local.run, load())
            return
        await run_concurrently(
            count, lambda i: self.kube.create(custom_path(names.PLURAL_IPINSTANCE), instance(i, base, owner_uid))
        )


STATEFULSETS = f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets"


async def setup(kube: Kube) -> str:
    """The network, subnets, nodes and a StatefulSet; returns the StatefulSet's UID."""
    await kube.create(core_path("namespaces"), {"metadata": {"name": NAMESPACE}})
    network = {"apiVersion": names.API_VERSION, "kind": "Network", "metadata": {"name": NETWORK},
               "spec": {"type": "Overlay", "netID": 4}}  # fmt: skip
    await kube.create(custom_path(names.PLURAL_NETWORK), network)
    # 100.64.0.0/14 would exceed one pool's 65,536; two /16 pools hold the 21,000 addresses.
    for name, cidr in (("bench-big", "100.64.0.0/16"), ("bench-big2", "100.65.0.0/16")):
        subnet = {"apiVersion": names.API_VERSION, "kind": "Subnet", "metadata": {"name": name},
                  "spec": {"network": NETWORK, "range": {"version": "4", "cidr": cidr}}}  # fmt: skip
        await kube.create(custom_path(names.PLURAL_SUBNET), subnet)
    for i in range(10):
        await kube.create(core_path("nodes"), {"metadata": {"name": f"bench-node-{i}"}})
    statefulset = {
        "metadata": {"name": STATEFULSET},
        "spec": {"selector": {}, "serviceName": STATEFULSET, "template": {}},
    }
    await kube.create(STATEFULSETS, statefulset)
    created = await kube.get(f"{STATEFULSETS}/{STATEFULSET}")
    return str((created or {}).get("metadata", {}).get("uid", ""))


async def cleanup(kube: Kube) -> None:
    """Against a real cluster: remove what the run made (pods, IPInstances, events, objects)."""
    for plural in (names.PLURAL_IPINSTANCE,):
        for obj in await kube.list(custom_path(plural)):
            if obj["spec"].get("network") == NETWORK:
                await kube.delete(custom_path(plural, obj["metadata"]["name"]))
    for name in ("bench-big", "bench-big2"):
        await kube.delete(custom_path(names.PLURAL_SUBNET, name))
    await kube.delete(custom_path(names.PLURAL_NETWORK, NETWORK))
    for i in range(10):
        await kube.delete(core_path("nodes", name=f"bench-node-{i}"))
    await kube.delete(f"{STATEFULSETS}/{STATEFULSET}")
    await kube.delete(core_path("namespaces", name=NAMESPACE))


async def measure(kubeconfig: str, local: Any | None, pods: int, cold_instances: int, logs: Path) -> dict[str, float]:
    os.environ["KUBECONFIG"] = kubeconfig
    kube = Kube(load_client(), threads=CONCURRENCY)
    cluster = Cluster(kube, local)
    owner_uid = await setup(kube)

    # The burst's pods exist first; then the API's own create rate is measured in that same state
    # (a stand-in's cost per request grows with what it stores), with the operator's client and
    # concurrency, and those objects are removed again before the operator starts.
    await run_concurrently(pods, lambda i: kube.create(core_path("pods", NAMESPACE), pod(i)))

    def configmap(i: int) -> dict[str, Any]:
        return {"metadata": {"name": f"bench-{RUN}-{i}", "namespace": NAMESPACE}, "data": {"n": str(i)}}

    took = await run_concurrently(pods, lambda i: kube.create(core_path("configmaps", NAMESPACE), configmap(i)))
    api_rate = pods / took
    print(f"API: {pods} plain creates in {took:.2f} s = {api_rate:.0f}/s")
    await run_concurrently(pods, lambda i: kube.delete(core_path("configmaps", NAMESPACE, f"bench-{RUN}-{i}")))

    operator = OperatorProcess(kubeconfig, logs / "operator-burst.log")
    try:
        await operator.wait_ready()
        ready = time.monotonic()
        operator_cpu, api_cpu = cpu_seconds(operator.process.pid), time.process_time()
        while await cluster.count(names.PLURAL_IPINSTANCE) < pods:
            if time.monotonic() - ready > 600:
                raise TimeoutError("the burst did not finish in 10 minutes")
            await asyncio.sleep(0.05)
        burst = time.monotonic() - ready
        operator_cpu = cpu_seconds(operator.process.pid) - operator_cpu
        api_cpu = time.process_time() - api_cpu
    finally:
        rss_burst = operator.stop()
    pods_rate = pods / burst
    print(
        f"burst: {pods} pods got their IPInstances in {burst:.2f} s = {pods_rate:.0f} pods/s;"
        f" peak RSS {rss_burst:.0f} MiB; CPU: operator {operator_cpu:.1f} s, API and this driver {api_cpu:.1f} s"
    )

    # 3. Cold start with many IPInstances (the burst's are among them).
    await cluster.preload_instances(cold_instances - pods, base=pods + 256, owner_uid=owner_uid)
    total = await cluster.count(names.PLURAL_IPINSTANCE)
    operator = OperatorProcess(kubeconfig, logs / "operator-cold.log")
    try:
        cold = await operator.wait_ready()
    finally:
        rss_cold = operator.stop()
    print(f"cold start with {total} IPInstances: ready in {cold:.2f} s; peak RSS {rss_cold:.0f} MiB")

    if local is None:
        await cleanup(kube)
    kube.close()
    return {
        "pods_per_s": round(pods_rate, 1),
        "api_creates_per_s": round(api_rate, 1),
        "efficiency": round(pods_rate / api_rate, 3),
        "cold_start_s": round(cold, 2),
        "peak_rss_mib": round(max(rss_burst, rss_cold), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--cold-instances", type=int, default=20_000)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="hybridlay-bench-"))
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig:
        print(f"against the cluster in KUBECONFIG={kubeconfig}")
        result = asyncio.run(measure(kubeconfig, None, args.pods, args.cold_instances, logs))
    else:
        with RunningAPI() as running:
            path = running.write_kubeconfig(logs / "kubeconfig")
            print(f"against the local API stand-in (KMock) at {running.url}")
            result = asyncio.run(measure(str(path), running, args.pods, args.cold_instances, logs))
    print(f"operator logs in {logs}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
