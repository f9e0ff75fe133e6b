"""Claims stay unique and nothing leaks across restarts, kills and concurrent operators.

On the real API (the session's control plane and operator, see tests/conftest.py): a restarted
operator keeps every address that is held, collects the orphans and reports conflicts; an operator
killed with -9 mid-burst leaves, once restarted, one address per family and pod. Two operators
claiming at once (no Lease), with a kill and deletions, are in tests/api/test_racing_operators.py.

Only the convergence of an operator's memory after it drifted stays on KMock: that drift is a fault
injected into the operator's state in-process, which no API server can produce on demand.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from apitopo import Api, Underlay, fresh_underlay
from opsupport import eventually
from podlife import PodLifecycle
from realcluster import OperatorProcess

from hybridlay import names

TYPE, FAMILY = names.ANNOTATION_NETWORK_TYPE, names.ANNOTATION_IP_FAMILY
UNDERLAY = {TYPE: "Underlay"}


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)
    return found


def host(net: Underlay, n: int) -> str:
    return str(ipaddress.ip_network(net.cidr)[n])


def pod_body(name: str, node: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": {**UNDERLAY, **(annotations or {})}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
    }


def instance_body(
    net: Underlay, n: int, pod: str, namespace: str, pod_uid: str, *, name_of: int | None = None, referred: Any = None
) -> dict[str, Any]:
    ip = host(net, n)
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_IPINSTANCE,
        "metadata": {"name": host(net, n if name_of is None else name_of).replace(".", "-")},
        "spec": {
            "network": net.network,
            "subnet": net.subnet,
            "address": {"version": "4", "ip": f"{ip}/24", "gateway": net.gateway},
            "binding": {
                "podName": pod,
                "podNamespace": namespace,
                "podUID": pod_uid,
                "nodeName": net.nodes[0],
                "referredObject": referred or {"kind": "Pod", "name": pod, "uid": pod_uid},
            },
        },
    }


def statefulset(api: Api, namespace: str, name: str) -> str:
    """A StatefulSet scaled to zero (its ordinals' addresses are kept); its UID."""
    labels = {"app": name}
    body = {
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "serviceName": name,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }
    return str(api.apps.create_namespaced_stateful_set(namespace, body).metadata.uid)


def claims(api: Api, network: str) -> dict[str, dict[str, Any]]:
    return {n: o for n, o in api.instances().items() if o["spec"]["network"] == network}


def held_by(api: Api, network: str) -> dict[str, list[str]]:
    """Pod name → the names of its claims in the network."""
    held: dict[str, list[str]] = {}
    for name, o in sorted(claims(api, network).items()):
        held.setdefault(o["spec"]["binding"]["podName"], []).append(name)
    return held


@pytest.mark.slow
def test_a_restarted_operator_keeps_held_addresses_collects_orphans_and_reports_conflicts(
    real_api: Api, real_operator: OperatorProcess, real_namespace: str
) -> None:
    net = fresh_underlay(real_api, nodes=1)  # while the operator runs: its webhooks check the network
    node = net.nodes[0]
    real_operator.stop()
    core, ns = real_api.core, real_namespace
    keep_uid = core.create_namespaced_pod(ns, pod_body("keep", node)).metadata.uid
    odd_uid = core.create_namespaced_pod(ns, pod_body("odd", node)).metadata.uid
    web_uid = statefulset(real_api, ns, "web")
    create = real_api.custom.create_cluster_custom_object
    for body in (
        instance_body(net, 7, "keep", ns, keep_uid),
        instance_body(net, 8, "gone", ns, str(uuid.uuid4())),  # its pod is gone: an orphan
        # Kept for an ordinal of a live StatefulSet; and one of a StatefulSet that is gone.
        instance_body(net, 9, "web-0", ns, "", referred={"kind": "StatefulSet", "name": "web", "uid": web_uid}),
        instance_body(net, 10, "old-0", ns, "", referred={"kind": "StatefulSet", "name": "old", "uid": "gone-sts"}),
        # A name that is not its address: reported, and both addresses stay blocked.
        instance_body(net, 21, "odd", ns, odd_uid, name_of=20),
    ):
        create(names.GROUP, names.VERSION, "ipinstances", body)

    real_operator.start()
    kept = sorted(host(net, n).replace(".", "-") for n in (7, 9, 20))
    wait_for(lambda: sorted(claims(real_api, net.network)) == kept, "orphans collected, the rest kept")
    odd = host(net, 20).replace(".", "-")
    selector = f"involvedObject.name={odd},reason=IPAddressConflict"
    [conflict] = wait_for(lambda: core.list_namespaced_event("default", field_selector=selector).items, "a report")
    assert "does not match the address" in conflict.message

    # The pods holding an address get no second one; new pods get none of the held ones.
    for i in range(5):
        core.create_namespaced_pod(ns, pod_body(f"new-{i}", node))
    wait_for(lambda: all(f"new-{i}" in held_by(real_api, net.network) for i in range(5)), "the new pods' addresses")
    held = held_by(real_api, net.network)
    assert held["keep"] == [host(net, 7).replace(".", "-")]
    assert held["odd"] == [odd]
    taken = {claims(real_api, net.network)[n]["spec"]["address"]["ip"] for i in range(5) for n in held[f"new-{i}"]}
    assert not taken & {f"{host(net, n)}/24" for n in (7, 9, 20, 21)}


def dual_stack_underlay(api: Api) -> Underlay:
    """A fresh underlay network with an IPv6 subnet too."""
    net = fresh_underlay(api, nodes=3)
    tag = uuid.uuid4().hex[:4]
    api.subnet(f"{net.subnet}6", net.network, f"fd00:{tag}::/120", version="6", gateway=f"fd00:{tag}::1")
    return net


@pytest.mark.slow
def test_killing_the_operator_mid_burst_then_restarting_leaves_one_address_per_family(
    real_api: Api, real_operator: OperatorProcess, real_namespace: str
) -> None:
    net = dual_stack_underlay(real_api)
    count = 120
    with PodLifecycle(real_api.client, real_namespace, place=lambda _: None):
        for i in range(count):
            real_api.core.create_namespaced_pod(
                real_namespace, pod_body(f"ds-{i}", net.nodes[i % 3], {FAMILY: "DualStack"})
            )
            if i == count // 3:
                wait_for(lambda: len(claims(real_api, net.network)) >= 40, "the burst under way")
                real_operator.kill()  # no clean-up, no lease hand-over: mid-claim
        assert len(claims(real_api, net.network)) < 2 * count, "killed too late to test anything"
        real_operator.start()
        wait_for(
            lambda: Counter(map(len, held_by(real_api, net.network).values())) == Counter({2: count}),
            "every pod dual-stack",
            timeout=120,
        )
    found = claims(real_api, net.network)
    versions = {(o["spec"]["binding"]["podName"], o["spec"]["address"]["version"]) for o in found.values()}
    assert versions == {(f"ds-{i}", v) for i in range(count) for v in ("4", "6")}
    uids = {p.metadata.name: p.metadata.uid for p in real_api.core.list_namespaced_pod(real_namespace).items}
    assert all(uids[o["spec"]["binding"]["podName"]] == o["spec"]["binding"]["podUID"] for o in found.values())


async def test_resync_converges_memory_that_drifted_from_the_api(cluster, start_operator):
    """KMock: the drift is injected into the operator's memory (an address IPAM holds for nobody, a
    claim it forgot, one it remembers that does not exist), a fault no API server can produce."""
    operator = await start_operator(resync_seconds=1)
    controller = operator.controller
    for i in range(3):
        cluster.create_pod(f"p-{i}")
    await eventually(lambda: all(cluster.instances_of(f"p-{i}") for i in range(3)))
    await eventually(lambda: controller.queue.idle and controller.details)
    real = set(cluster.instances())
    [forgotten] = cluster.instances_of("p-0")
    controller._forget(controller.instances[forgotten["metadata"]["name"]])
    leaked = controller.ipam.allocate("overlay-network", "ghost/pod")[0]
    ghost = controller.instances[next(iter(real - {forgotten["metadata"]["name"]}))]
    controller.instances["100-10-0-99"] = ghost
    drifted = controller.view()
    assert set(drifted["instances"]) != real

    def converged() -> bool:
        view = controller.view()
        return set(view["instances"]) == real and view["subnets"]["overlay-subnet"]["used"] == len(real)

    await eventually(converged, timeout=10, what="memory equal to the API again")
    assert controller.ipam.holder_is(leaked.address, "ghost/pod") is False
