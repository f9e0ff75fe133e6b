"""Liveness, readiness, the Prometheus metrics and the view of memory, read over HTTP from a running operator."""

from __future__ import annotations

import json

import aiohttp
from opsupport import eventually, operator_config
from prometheus_client.parser import text_string_to_metric_families

from hybridlay import names
from hybridlay_operator.controller import Controller
from hybridlay_operator.kube import Kube, load_client
from hybridlay_operator.probes import build_app, serve


async def get(port, path):
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


def sample(text, name, **labels):
    """The value of one sample of a metric with exactly these labels (in any order), or None."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


async def test_probes_and_metrics(cluster, start_operator):
    operator = await start_operator()
    port = operator.probe_port
    assert await get(port, "/healthz") == (200, "ok")
    assert await get(port, "/readyz") == (200, "ready")

    cluster.create_pod("p1", annotations={names.ANNOTATION_NETWORK_TYPE: "Underlay"})
    cluster.create_pod("p2")
    await eventually(lambda: cluster.instances_of("p1") and cluster.instances_of("p2"))

    async def metrics():
        return (await get(port, "/metrics"))[1]

    text = await eventually(lambda: _both_used(metrics), what="both allocations in the metrics")
    assert sample(text, "subnet_ip_usage", subnetName="underlay-subnet", usageType="total") == 253
    assert sample(text, "subnet_ip_usage", subnetName="underlay-subnet", usageType="available") == 252
    assert sample(text, "ip_usage", networkName="overlay-network", ipFamily="IPv4", usageType="used") == 1
    assert sample(text, "ip_usage", networkName="overlay-network", ipFamily="IPv6", usageType="total") == 255
    assert sample(text, "ip_allocation_period_seconds_count") == 2


async def _both_used(metrics):
    text = await metrics()
    # One flush writes subnets, then networks: wait for the last of them.
    underlay = sample(text, "subnet_ip_usage", subnetName="underlay-subnet", usageType="used")
    overlay = sample(text, "ip_usage", networkName="overlay-network", ipFamily="IPv4", usageType="used")
    return text if underlay == overlay == 1 else None


async def test_state_shows_what_the_operator_holds_in_memory(cluster, start_operator):
    """/state: the IPInstances the operator knows, its claims in flight and IPAM's counts, read-only."""
    operator = await start_operator()
    port = operator.probe_port
    uid = cluster.create_pod("p1", annotations={names.ANNOTATION_NETWORK_TYPE: "Underlay"})
    [instance] = await eventually(lambda: cluster.instances_of("p1"))
    await eventually(lambda: operator.controller.queue.idle)

    status, text = await get(port, "/state")
    view = json.loads(text)
    assert status == 200
    assert (view["ready"], view["active"], view["details"], view["inflight"]) == (True, True, True, [])
    assert view["instances"] == {
        "192-168-56-2": {
            "address": "192.168.56.2/24",
            "subnet": "underlay-subnet",
            "pod": "default/p1",
            "podUID": uid,
            "uid": instance["metadata"]["uid"],
        }
    }
    assert view["subnets"]["underlay-subnet"] == {"total": 253, "used": 1, "available": 252}
    assert view["subnets"]["overlay-subnet"]["used"] == 0
    summary = json.loads((await get(port, "/state?instances=0"))[1])
    assert (summary["count"], summary["instances"]) == (1, {})
    async with aiohttp.ClientSession() as session, session.post(f"http://127.0.0.1:{port}/state") as response:
        assert response.status == 405


async def test_not_ready_until_the_state_is_rebuilt(cluster):
    """/readyz answers 503 while the IPInstances are still being read, 200 after."""

    controller = Controller(Kube(load_client()), operator_config())
    runner, port = await serve(build_app(controller.metrics, lambda: controller.ready), "127.0.0.1", 0)
    try:
        assert (await get(port, "/readyz"))[0] == 503
        assert (await get(port, "/healthz"))[0] == 200
        await controller.start()
        assert (await get(port, "/readyz"))[0] == 200
    finally:
        await controller.stop()
        await runner.cleanup()
        controller.kube.close()
