"""Claims stay unique and nothing leaks across restarts, kills and concurrent operators.

Against KMock (no kube-apiserver runs here); what these tests rely on is the one guarantee KMock
shares with the real API: a second create of one name gets 409.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request
from collections import Counter

import pytest
from opsupport import NS, eventually
from realcluster import free_port

from hybridlay import names

FAMILY = names.ANNOTATION_IP_FAMILY


def instance_body(name, ip, pod, pod_uid, *, subnet="overlay-subnet", referred=None, version="4"):
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": "IPInstance",
        "metadata": {"name": name},
        "spec": {
            "network": "overlay-network",
            "subnet": subnet,
            "address": {"version": version, "ip": ip},
            "binding": {
                "podName": pod,
                "podNamespace": NS,
                "podUID": pod_uid,
                "nodeName": "node1",
                "referredObject": referred or {"kind": "Pod", "name": pod, "uid": pod_uid},
            },
        },
    }


async def test_start_rebuilds_state_collects_orphans_and_reports_conflicts(cluster, start_operator):
    keep_uid = cluster.create_pod("keep")
    odd_uid = cluster.create_pod("odd")
    web_uid = cluster.statefulset("web")
    create = cluster.create_custom
    create("ipinstances", instance_body("100-10-0-7", "100.10.0.7/24", "keep", keep_uid))
    create("ipinstances", instance_body("100-10-0-8", "100.10.0.8/24", "gone", "uid-of-a-gone-pod"))
    retained = {"kind": "StatefulSet", "name": "web", "uid": web_uid}
    create("ipinstances", instance_body("100-10-0-9", "100.10.0.9/24", "web-0", "", referred=retained))
    dead_sts = {"kind": "StatefulSet", "name": "old", "uid": "uid-of-a-deleted-statefulset"}
    create("ipinstances", instance_body("100-10-0-10", "100.10.0.10/24", "old-0", "", referred=dead_sts))
    # A name that is not its address: reported, and both addresses stay blocked.
    create("ipinstances", instance_body("100-10-0-20", "100.10.0.21/24", "odd", odd_uid))

    operator = await start_operator()
    await eventually(
        lambda: sorted(cluster.instances()) == ["100-10-0-20", "100-10-0-7", "100-10-0-9"],
        what="orphans (pod gone; StatefulSet gone) collected, the rest kept",
    )
    [conflict] = await eventually(lambda: cluster.events("IPAddressConflict", about="100-10-0-20"))
    assert "does not match the address" in conflict["message"]

    # The pod already holding an address gets no second one; new pods get none of the held ones.
    for i in range(5):
        cluster.create_pod(f"new-{i}")
    await eventually(lambda: all(cluster.instances_of(f"new-{i}") for i in range(5)))
    await eventually(lambda: operator.controller.queue.idle)
    assert [i["metadata"]["name"] for i in cluster.instances_of("keep")] == ["100-10-0-7"]
    assert [i["metadata"]["name"] for i in cluster.instances_of("odd")] == ["100-10-0-20"]
    taken = {i["spec"]["address"]["ip"] for n in range(5) for i in cluster.instances_of(f"new-{n}")}
    assert not taken & {"100.10.0.7/24", "100.10.0.9/24", "100.10.0.20/24", "100.10.0.21/24"}


def add_big_subnets(cluster):
    cluster.subnet("overlay-big", "overlay-network", "100.64.0.0/21")
    cluster.subnet("overlay-big6", "overlay-network", "fd00::/112", version="6")


def create_pods(cluster, count, prefix, annotations=None):
    for i in range(count):
        cluster.create_pod(f"{prefix}-{i}", node=f"node{1 + i % 3}", annotations=annotations)


def holders(cluster):
    """Pod name → its IPInstances' IP versions."""
    held: dict[str, list[str]] = {}
    for instance in cluster.instances().values():
        held.setdefault(instance["spec"]["binding"]["podName"], []).append(instance["spec"]["address"]["version"])
    return held


def metric_sum(port, name, usage):
    """Sum of one usage of a gauge over its label sets, read from an operator's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and f'usageType="{usage}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.slow
async def test_two_active_operators_and_a_burst_of_500_pods_hold_no_address_twice(cluster, operator_env, tmp_path):
    """Two operator processes, both active (no Lease): uniqueness rests on the API's one object per name."""
    add_big_subnets(cluster)
    ports = [free_port(), free_port()]
    logs = [(tmp_path / f"operator-{i}.log").open("w") for i in range(2)]
    processes = [
        start_operator_process(dict(operator_env, PROBE_PORT=str(port), POD_NAME=f"op-{i}"), log)
        for i, (port, log) in enumerate(zip(ports, logs, strict=True))
    ]
    try:
        await eventually(lambda: all(ready(port) for port in ports), timeout=30, what="both operators ready")
        await asyncio.to_thread(create_pods, cluster, 500, "burst")
        # Both may claim for one pod at the same moment; they agree on which claim stays.
        await eventually(
            lambda: len(holders(cluster)) == 500 and len(cluster.instances()) == 500,
            timeout=120,
            what="every pod holding exactly one address",
        )
        held = holders(cluster)
        assert all(versions == ["4"] for versions in held.values())
        addresses = Counter(i["spec"]["address"]["ip"] for i in cluster.instances().values())
        assert max(addresses.values()) == 1
        # Each operator's own accounting (its metrics) agrees with the API: 500 addresses in use.
        for port in ports:
            await eventually(lambda port=port: metric_sum(port, "subnet_ip_usage", "used") == 500, timeout=30)
        # Both took part: each reported allocations of its own (Events name the reporting instance).
        await eventually(
            lambda: {e.get("reportingInstance") for e in cluster.events("IPAllocationSucceed")} == {"op-0", "op-1"},
            timeout=30,
            what="allocations by both operators",
        )
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)
        for log in logs:
            log.close()


def start_operator_process(env, log):
    return subprocess.Popen([sys.executable, "-m", "hybridlay_operator"], env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
async def test_killing_the_operator_mid_burst_then_restarting_leaves_one_address_per_family(
    cluster, operator_env, tmp_path
):
    add_big_subnets(cluster)
    count = 300
    log = (tmp_path / "operator.log").open("w")
    process = start_operator_process(operator_env, log)
    try:
        await asyncio.to_thread(create_pods, cluster, count, "ds", {FAMILY: "DualStack"})
        await eventually(lambda: len(cluster.instances()) >= 60, timeout=60, what="the burst under way")
        process.send_signal(signal.SIGKILL)  # no cleanup, no lease hand-over: mid-claim
        process.wait(timeout=10)
        killed_with = len(cluster.instances())
        assert killed_with < 2 * count, "killed too late to test anything"

        process = start_operator_process(operator_env, log)
        await eventually(lambda: len(holders(cluster)) == count, timeout=120, what="every pod holding addresses")
        await eventually(lambda: len(cluster.instances()) >= 2 * count, timeout=60, what="every pod dual-stack")
    finally:
        process.kill()
        process.wait(timeout=10)
        log.close()
    held = holders(cluster)
    assert {pod: sorted(v) for pod, v in held.items()} == {f"ds-{i}": ["4", "6"] for i in range(count)}
    pod_uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.api.objects("v1/pods")}
    orphans = [
        i["metadata"]["name"]
        for i in cluster.instances().values()
        if pod_uids.get(i["spec"]["binding"]["podName"]) != i["spec"]["binding"]["podUID"]
    ]
    assert orphans == []
