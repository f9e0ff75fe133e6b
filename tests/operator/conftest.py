"""Fixtures for the operator's tests: the API stand-in, a cluster to start from, an operator in-process.

The Kubernetes API is KMock (tests/support/kapi.py): no kube-apiserver can run on our machines.
It enforces what our correctness rests on (one object per name: a second claim of an address gets
409) but runs no admission webhooks and no garbage collection, so the webhooks are tested by sending
AdmissionReview requests to the operator's HTTPS server directly, and pod deletion is what a test does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from kapi import RunningAPI
from opsupport import NS, Cluster, eventually, operator_config

from hybridlay_operator.kube import Kube, load_client
from hybridlay_operator.runner import Operator


@pytest.fixture
def cluster(kube_api: RunningAPI, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """Reference §6's cluster: an underlay (VLAN 100, nodes labelled network=underlay-network) and an
    overlay network; subnets 192.168.56.0/24 (gateway .1), 100.10.0.0/24 and fe80::/120; node1 and
    node2 labelled, node3 not."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    c = Cluster(kube_api, kubernetes.config.new_client_from_config(config_file=str(kubeconfig)))
    c.namespace(NS)
    c.namespace("kube-system")
    c.node("node1", {"network": "underlay-network"})
    c.node("node2", {"network": "underlay-network"})
    c.node("node3")
    c.network("underlay-network", "Underlay", 100, {"network": "underlay-network"})
    c.network("overlay-network", "Overlay", 4)
    c.subnet("underlay-subnet", "underlay-network", "192.168.56.0/24", gateway="192.168.56.1")
    c.subnet("overlay-subnet", "overlay-network", "100.10.0.0/24")
    c.subnet("overlay-subnet6", "overlay-network", "fe80::/120", version="6")
    return c


StartOperator = Callable[..., Awaitable[Operator]]


@pytest.fixture
async def start_operator(cluster: Cluster) -> AsyncIterator[StartOperator]:
    """Start operators in this event loop (``await start_operator(**config)``); all stop at teardown."""
    running: list[tuple[Operator, asyncio.Event, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> Operator:
        operator = Operator(operator_config(**overrides), kube=Kube(load_client()), probe_host="127.0.0.1")
        stop = asyncio.Event()
        task = asyncio.create_task(operator.run(stop_flag=stop))
        running.append((operator, stop, task))
        await eventually(lambda: operator.controller.ready or task.done(), what="operator ready")
        if task.done():
            task.result()
        return operator

    yield start
    for _, stop, _ in running:
        stop.set()
    # kopf waits 5 s for tasks that are not its own before it gives up on them: not worth it here.
    if running:
        await asyncio.wait([task for _, _, task in running], timeout=1)
    for operator, _, task in running:
        task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
        await operator.controller.stop()


@pytest.fixture
def operator_env(kubeconfig: Path) -> Iterator[dict[str, str]]:
    """Environment for an operator process against the stand-in."""
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), LEADER_ELECTION="false", PROBE_PORT="0", RESYNC_SECONDS="3600")
    yield env
