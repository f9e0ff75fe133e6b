"""Two operators racing on the real API: both active (no Lease), so the API server's 409 on a second
IPInstance of an address is the only thing keeping claims unique. One is killed with -9 in the
middle of a burst of pods and started again, and pods are deleted meanwhile.

Afterwards: no address is held twice, no IPInstance is left without its live pod, and each
operator's memory (its ``/state``: the IPInstances it knows, what IPAM counts as used) equals what
the API holds. The session's operator is stopped for the test, so the two are the only ones claiming
(the fixture starts it again); the test's network is made before, while its webhooks run.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from apitopo import Api, Underlay, fresh_underlay
from kubernetes.client.exceptions import ApiException
from podlife import PodLifecycle
from realcluster import OperatorProcess, RealCluster

from hybridlay import names
from hybridlay.addresses import instance_name

PODS = 150
DELETED = 40
KILL_AFTER = 40  # claims made before one operator is killed
RESYNC_SECONDS = 5

pytestmark = pytest.mark.slow


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)
    return found


def state(operator: OperatorProcess) -> dict[str, Any]:
    """The operator's view of its memory, as its probe server shows it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.probe_port}/state", timeout=10) as answer:
        result: dict[str, Any] = json.loads(answer.read())
    return result


@pytest.fixture
def racing(
    real_cluster: RealCluster, real_operator: OperatorProcess, tmp_path: Path
) -> Iterator[list[OperatorProcess]]:
    """Two operators as the operator's ServiceAccount, both active; the session's operator stopped."""
    real_operator.stop()
    settings = {"LEADER_ELECTION": "false", "RESYNC_SECONDS": str(RESYNC_SECONDS)}
    operators = [
        OperatorProcess(real_cluster, tmp_path / f"op-{i}", settings=settings, serve_webhooks=False) for i in range(2)
    ]
    try:
        for operator in operators:
            operator.start()
        yield operators
    finally:
        for operator in operators:
            operator.close()


def pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": {names.ANNOTATION_NETWORK_TYPE: "Underlay"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
    }


def claims(api: Api, network: str) -> dict[str, dict[str, Any]]:
    return {n: o for n, o in api.instances().items() if o["spec"]["network"] == network}


def live_pods(api: Api, namespace: str) -> dict[str, str]:
    """Name → UID of the namespace's pods that still want an address (not being deleted)."""
    return {
        p.metadata.name: p.metadata.uid
        for p in api.core.list_namespaced_pod(namespace).items
        if p.metadata.deletion_timestamp is None
    }


def settled(api: Api, namespace: str, net: Underlay) -> bool:
    """Every live pod holds exactly one address of the network, and nothing else holds one."""
    pods = live_pods(api, namespace)
    held = Counter(o["spec"]["binding"]["podName"] for o in claims(api, net.network).values())
    return len(pods) == PODS - DELETED and held == Counter(dict.fromkeys(pods, 1))


def view_matches(operator: OperatorProcess, found: dict[str, dict[str, Any]], net: Underlay) -> bool:
    """The operator's memory holds exactly the API's claims of the network, and IPAM counts them."""
    view = state(operator)
    mine = {n: i for n, i in view["instances"].items() if i["subnet"] == net.subnet}
    api = {n: {"address": o["spec"]["address"]["ip"], "uid": o["metadata"]["uid"]} for n, o in found.items()}
    return (
        {n: {"address": i["address"], "uid": i["uid"]} for n, i in mine.items()} == api
        and view["subnets"][net.subnet]["used"] == len(found)
        and not view["inflight"]
    )


def test_two_active_operators_a_kill_and_deletions_leave_each_live_pod_one_address(
    real_api: Api, real_namespace: str, real_cluster: RealCluster, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    net = fresh_underlay(real_api, nodes=2)  # the session operator still serves the webhooks
    operators: list[OperatorProcess] = request.getfixturevalue("racing")
    names_ = [f"p-{i}" for i in range(PODS)]
    errors: list[str] = []

    def create(i: int) -> None:
        try:
            real_api.core.create_namespaced_pod(real_namespace, pod(names_[i], net.nodes[i % 2]))
        except ApiException as e:  # each failure named, the burst goes on
            errors.append(f"{names_[i]}: {e.status} {e.reason}")

    with PodLifecycle(real_api.client, real_namespace, place=lambda _: None) as lifecycle:

        def create_all() -> None:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(create, range(PODS)))

        burst = threading.Thread(target=create_all)
        burst.start()
        wait_for(lambda: len(claims(real_api, net.network)) >= KILL_AFTER, "the burst under way")
        operators[0].kill()  # mid-claim: no clean-up, no hand-over
        # Pods go while one operator is down and the other keeps claiming; some have an address.
        for name in names_[:DELETED]:
            wait_for(lambda name=name: _exists(real_api, real_namespace, name), f"{name} created")
            real_api.core.delete_namespaced_pod(name, real_namespace)
        burst.join(timeout=120)
        operators[0].start()
        wait_for(lambda: settled(real_api, real_namespace, net), "one address per live pod", timeout=120)
        assert not errors
        assert not lifecycle.errors

    found = claims(real_api, net.network)
    addresses = Counter(o["spec"]["address"]["ip"] for o in found.values())
    assert max(addresses.values()) == 1, "an address held twice"
    assert all(name == instance_name(o["spec"]["address"]["ip"].partition("/")[0]) for name, o in found.items())
    pods = live_pods(real_api, real_namespace)
    assert {o["spec"]["binding"]["podName"]: o["spec"]["binding"]["podUID"] for o in found.values()} == pods
    # Each operator's memory converges on the API's claims (the resync lists them again).
    for operator in operators:
        wait_for(
            lambda operator=operator: view_matches(operator, claims(real_api, net.network), net),
            f"{operator.identity}'s memory equal to the API",
            timeout=4 * RESYNC_SECONDS + 10,
        )
        operator.check()
        assert " ERROR " not in operator.log(), operator.log()[-3000:]


def _exists(api: Api, namespace: str, name: str) -> bool:
    try:
        api.core.read_namespaced_pod(name, namespace)
    except ApiException:
        return False
    return True
