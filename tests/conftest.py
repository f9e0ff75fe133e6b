"""Shared fixtures. Test support modules live in tests/support and are importable from any test.

Two Kubernetes APIs:
- the real one (``real_cluster``, ``real_operator``, ``real_namespace``): etcd, kube-apiserver and
  kube-controller-manager from ``HYBRIDLAY_KUBE_BINARIES`` (tests/support/realcluster.py), started
  once per test session, with the operator running as its ServiceAccount and its webhooks
  registered. Without the binaries or etcd, these tests skip, naming the setting; under CI they fail.
- KMock (``kube_api``), only for a fault or a timing the real server cannot give: such a test says
  why in its docstring.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from apitopo import Api, make_shared_topology
from kapi import RunningAPI
from realcluster import OperatorProcess, RealCluster, own_cluster


@pytest.fixture
def kube_api() -> Iterator[RunningAPI]:
    """A Kubernetes API stand-in (KMock, see tests/support/kapi.py) on a free loopback port."""
    with RunningAPI() as running:
        yield running


@pytest.fixture
def kubeconfig(kube_api: RunningAPI, tmp_path: Path) -> Path:
    """A kubeconfig file pointing at ``kube_api``."""
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture(scope="session")
def _control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    yield from own_cluster(tmp_path_factory.mktemp("kube"))


@pytest.fixture
def real_cluster(_control_plane: RealCluster) -> Iterator[RealCluster]:
    """The session's real control plane; the test fails with a log's tail if a process of it dies."""
    _control_plane.check()
    yield _control_plane
    _control_plane.check()


@pytest.fixture(scope="session")
def _session_operator(
    _control_plane: RealCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(
        _control_plane,
        tmp_path_factory.mktemp("operator"),
        settings={"LEADER_ELECTION": "true", "LEASE_SECONDS": "5", "RESYNC_SECONDS": "10"},
    )
    operator.start()
    operator.register()
    yield operator
    operator.close()


@pytest.fixture
def real_operator(real_cluster: RealCluster, _session_operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The session's operator (as its ServiceAccount, webhooks registered), running; a test that stops
    or kills it gets it started again afterwards. A crash fails the test with its log's tail."""
    if _session_operator.process is None:
        _session_operator.start()
    _session_operator.check()
    yield _session_operator
    if _session_operator.process is None:
        _session_operator.start()
    else:
        _session_operator.check()


@pytest.fixture
def real_namespace(real_cluster: RealCluster) -> Iterator[str]:
    """A namespace of its own for the test; deleted (not waited for) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(real_cluster.client())
    core.create_namespace({"metadata": {"name": name}})
    yield name
    with contextlib.suppress(kubernetes.client.ApiException):  # the test may have deleted it itself
        core.delete_namespace(name, _preload_content=False)


@pytest.fixture(scope="session")
def _shared_topology(_control_plane: RealCluster, _session_operator: OperatorProcess) -> Api:
    api = Api(_control_plane.client())
    make_shared_topology(api)
    return api


@pytest.fixture
def real_api(real_operator: OperatorProcess, _shared_topology: Api) -> Api:
    """Admin clients of the real API, the operator running and the shared networks made
    (tests/support/apitopo.py: ``fresh_underlay`` makes one of a test's own)."""
    return _shared_topology
