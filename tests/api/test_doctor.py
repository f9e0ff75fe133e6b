"""``hybridlay doctor`` against the real API server: clean where the operator keeps things straight,
and each fault made here (with the operator down, so it cannot repair it first) reported."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from apitopo import API_VERSION, GROUP, VERSION, Api
from realcluster import OperatorProcess, RealCluster

from hybridlay_cli.main import main as cli


def doctor(kubeconfig: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, str]]]:
    code = cli(["--kubeconfig", str(kubeconfig), "doctor", "-o", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def make_pod(api: Api, namespace: str, name: str) -> None:
    body = {"metadata": {"name": name}, "spec": {"nodeName": "node3", "containers": [{"name": "c", "image": "x"}]}}
    api.core.create_namespaced_pod(namespace, body)


def test_a_namespace_the_operator_served_is_clean_and_faults_are_reported(
    real_api: Api,
    real_operator: OperatorProcess,
    real_namespace: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubeconfig = real_operator.cluster.write_kubeconfig(tmp_path / "admin")
    make_pod(real_api, real_namespace, "served")
    deadline = time.monotonic() + 15
    while not real_api.instances_of(real_namespace, "served"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert doctor(kubeconfig, capsys, "--namespace", real_namespace) == (0, [])

    real_operator.kill()
    make_pod(real_api, real_namespace, "unserved")
    leak = {
        "apiVersion": API_VERSION,
        "kind": "IPInstance",
        "metadata": {"name": "100-64-250-1"},
        "spec": {
            "network": "overlay-network",
            "subnet": "overlay-subnet",
            "address": {"version": "4", "ip": "100.64.250.1/16"},
            "binding": {"podName": "gone", "podNamespace": real_namespace, "podUID": "gone-uid"},
        },
    }
    real_api.custom.create_cluster_custom_object(GROUP, VERSION, "ipinstances", leak)
    code, found = doctor(kubeconfig, capsys, "--namespace", real_namespace, "--grace", "0")
    assert code == 1
    assert found == [
        {"kind": "leaked", "subject": "100-64-250-1", "detail": f"bound to {real_namespace}/gone, which is gone"},
        {"kind": "missing", "subject": f"{real_namespace}/unserved", "detail": "has no IPv4 address (IPv4 asked)"},
    ]


def test_the_whole_cluster_is_clean_once_the_operator_has_caught_up(
    real_cluster: RealCluster,
    real_api: Api,
    real_operator: OperatorProcess,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Counts and claims cluster-wide; what other tests left behind is the operator's to repair within a resync."""
    kubeconfig = real_cluster.write_kubeconfig(tmp_path / "admin")
    deadline = time.monotonic() + 45
    while (result := doctor(kubeconfig, capsys))[0] != 0:
        assert time.monotonic() < deadline, result
        time.sleep(1)
