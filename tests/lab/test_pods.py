"""The lab kubelet's decisions for one pod, without an API or namespaces."""

from __future__ import annotations

import pytest

from hybridlay_lab import pods
from hybridlay_lab.pods import Action

RESULT = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.5/24"}, {"address": "fd00::5/64"}]}


def pod(node="node1", phase=None, deleting=False, ips=()):
    meta = {"name": "p", "namespace": "ns", "uid": "u-1"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"podIPs": [{"ip": ip} for ip in ips]}
    if phase:
        status["phase"] = phase
    return {"metadata": meta, "spec": {"nodeName": node}, "status": status}


def record(result=RESULT):
    return pods.SandboxRecord("u-1", "ns", "p", "c" * 64, "lab-ccccccccccc", {}, result)


@pytest.mark.parametrize(
    ("the_pod", "the_record", "present", "expected"),
    [
        (pod(), None, False, [Action.SETUP]),
        (pod(phase="Running", ips=["10.0.0.5", "fd00::5"]), record(), True, []),
        (pod(phase="Pending"), record(), True, [Action.REPORT]),
        (pod(phase="Running", ips=["10.0.0.9"]), record(), True, [Action.REPORT]),
        (pod(phase="Running", ips=["10.0.0.5", "fd00::5"]), record(), False, [Action.TEARDOWN, Action.SETUP]),
        (pod(), record(result=None), True, [Action.TEARDOWN, Action.SETUP]),
        (pod(deleting=True), record(), True, [Action.TEARDOWN, Action.FINISH]),
        (pod(deleting=True), None, False, [Action.FINISH]),
        (pod(deleting=True, phase="Succeeded"), None, False, []),
        (pod(phase="Failed"), record(), True, [Action.TEARDOWN]),
        (pod(node="node2"), None, False, []),
    ],
    ids=[
        "new",
        "up",
        "status-missing",
        "status-stale",
        "netns-lost",
        "add-unfinished",
        "deleted",
        "deleted-no-sandbox",
        "finished",
        "failed-phase",
        "other-node",
    ],
)
def test_actions(the_pod, the_record, present, expected):
    assert pods.actions(the_pod, "node1", the_record, present) == expected


def test_sandbox_names_fit_an_interface_name_and_follow_the_uid():
    first = pods.new_record(pod(), "k1a2b3c-", {})
    assert len(first.netns) == 15
    assert first.netns.startswith("k1a2b3c-")
    assert first.container_id.startswith(first.netns[len("k1a2b3c-") :])
    assert len(first.container_id) == 64
    assert pods.new_record(pod(), "k1a2b3c-", {}) == first
    with pytest.raises(ValueError, match="at most 9 characters"):
        pods.netns_name("much-too-long", first.container_id)


def test_cni_args_are_the_ones_a_cri_runtime_sends():
    attachment = record().attachment("/var/run/netns")
    assert attachment.netns == "/var/run/netns/lab-ccccccccccc"
    assert attachment.ifname == "eth0"
    assert dict(attachment.args) == {
        "K8S_POD_NAMESPACE": "ns",
        "K8S_POD_NAME": "p",
        "K8S_POD_INFRA_CONTAINER_ID": "c" * 64,
        "K8S_POD_UID": "u-1",
    }


def test_running_status_reports_every_address_first_one_as_pod_ip():
    status = pods.running_status(RESULT, "T")["status"]
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.0.0.5"
    assert status["podIPs"] == [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]


def test_record_round_trips():
    assert pods.SandboxRecord.from_dict(record().to_dict()) == record()
