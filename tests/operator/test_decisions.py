"""The operator's pure decisions and settings, without an API."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from hybridlay import model, names
from hybridlay.errors import InvalidValue
from hybridlay.model import Binding, InstanceAddress, IPFamily, IPInstance, NetworkType, ReferredObject
from hybridlay_operator import decisions as d
from hybridlay_operator.config import OperatorConfig
from hybridlay_operator.controller import WorkQueue
from hybridlay_operator.lease import may_take

KINDS = ("StatefulSet",)


def inst(name, ip, *, pod="p", uid="u1", kind="Pod", owner_uid="u1", version="4", node="n1"):
    return IPInstance(
        name=name,
        network="net",
        subnet="sub",
        address=InstanceAddress(version=version, ip=ip),
        binding=Binding(
            pod_name=pod,
            pod_namespace="ns",
            pod_uid=uid,
            node_name=node,
            referred_object=ReferredObject(kind, "web" if kind != "Pod" else pod, owner_uid),
        ),
    )


def test_pod_states():
    running = {"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert d.wants_addresses(running)
    assert not d.wants_addresses({"spec": {}})
    assert not d.wants_addresses({"spec": {"nodeName": "n1", "hostNetwork": True}})
    assert not d.wants_addresses({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}})
    assert not d.wants_addresses({"metadata": {"deletionTimestamp": "x"}, "spec": {"nodeName": "n1"}})
    status = {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}, {"state": {"terminated": {}}}]}
    assert d.has_running_containers({"status": status})
    status["containerStatuses"] = [{"state": {"terminated": {}}}]
    assert not d.has_running_containers({"status": status})


def test_release_plan_frees_normal_addresses_and_reserves_retained_ones():
    normal = inst("10-0-0-1", "10.0.0.1/24")
    retained = inst("10-0-0-2", "10.0.0.2/24", kind="StatefulSet", owner_uid="sts")
    already = IPInstance(
        "10-0-0-3", "net", "sub", InstanceAddress("4", "10.0.0.3/24"),
        Binding(pod_name="p", pod_namespace="ns", referred_object=ReferredObject("StatefulSet", "web", "sts")),
    )  # fmt: skip
    plan = d.plan_release([normal, retained, already], KINDS)
    assert plan == d.PodRelease(delete=("10-0-0-1",), reserve=("10-0-0-2",))
    gone = d.plan_release([retained, already], KINDS, pod_gone_for_good=True)
    assert gone.delete == ("10-0-0-2", "10-0-0-3")


def test_stale_and_surplus_instances():
    old = inst("10-0-0-1", "10.0.0.1/24", uid="old")
    current = inst("10-0-0-2", "10.0.0.2/24", uid="new")
    assert d.stale_for("new", [old, current], KINDS) == ["10-0-0-1"]
    # Two operators claimed for one pod: every one of them keeps the lowest address.
    second = inst("10-0-0-10", "10.0.0.10/24", uid="new")
    v6 = inst("fd00-0-0-0-0-0-0-1", "fd00::1/64", uid="new", version="6")
    assert d.surplus([second, current, v6]) == ["10-0-0-10"]
    assert d.surplus([current, v6]) == []


def test_orphans_never_include_an_address_in_use():
    normal = inst("10-0-0-1", "10.0.0.1/24", uid="u1")
    assert not d.is_orphan(normal, {"ns/p": "u1"}, set(), KINDS)
    assert d.is_orphan(normal, {}, set(), KINDS)
    assert d.is_orphan(normal, {"ns/p": "u2"}, set(), KINDS)  # a newer pod of that name
    retained = inst("10-0-0-2", "10.0.0.2/24", kind="StatefulSet", owner_uid="sts")
    assert not d.is_orphan(retained, {}, {"sts"}, KINDS)  # scaled down: kept
    assert not d.is_orphan(retained, {"ns/p": "u1"}, set(), KINDS)  # its pod still runs
    assert d.is_orphan(retained, {}, set(), KINDS)


def test_finalizer_patch_is_conditional_on_the_version_read():
    pod = {"metadata": {"finalizers": ["other"], "resourceVersion": "7"}}
    assert d.finalizer_patch(pod, present=True) == {
        "metadata": {"finalizers": ["other", names.FINALIZER_POD], "resourceVersion": "7"}
    }
    assert d.finalizer_patch(pod, present=False) is None
    with_ours = {"metadata": {"finalizers": ["other", names.FINALIZER_POD]}}
    assert d.finalizer_patch(with_ours, present=False) == {"metadata": {"finalizers": ["other"]}}


def test_node_labels_for_attachment_and_quota():
    underlay = model.Network("u", NetworkType.UNDERLAY, net_id=1, node_selector={"rack": "a"})
    overlay = model.Network("o", NetworkType.OVERLAY, net_id=4)
    wanted = d.node_labels({"rack": "a"}, [underlay, overlay], {("u", 4): True, ("u", 6): False})
    assert wanted[names.LABEL_UNDERLAY_ATTACHMENT] == "true"
    assert wanted[names.LABEL_OVERLAY_ATTACHMENT] == "true"
    assert wanted[names.LABEL_IPV4_QUOTA] == names.QUOTA_NONEMPTY
    assert wanted[names.LABEL_IPV6_QUOTA] == names.QUOTA_EMPTY
    assert wanted[names.LABEL_DUALSTACK_QUOTA] == names.QUOTA_EMPTY
    assert wanted[names.LABEL_BGP_ATTACHMENT] is None
    other = d.node_labels({"rack": "b"}, [underlay, overlay], {})
    assert other[names.LABEL_UNDERLAY_ATTACHMENT] is None
    current = {names.LABEL_UNDERLAY_ATTACHMENT: "true", "keep": "me"}
    assert d.labels_patch(current, other) == {names.LABEL_UNDERLAY_ATTACHMENT: None,
                                              names.LABEL_OVERLAY_ATTACHMENT: "true"}  # fmt: skip


def test_config_from_environment():
    config = OperatorConfig.from_env(
        {"DEFAULT_NETWORK_TYPE": "underlay", "DEFAULT_IP_FAMILY": "dualstack", "STATEFUL_WORKLOAD_KINDS": "StatefulSet,"
         " CloneSet.apps.kruise.io/v1alpha1/clonesets", "DEFAULT_IP_RETAIN": "false", "LEADER_ELECTION": "0"}
    )  # fmt: skip
    assert config.pod.default_network_type is NetworkType.UNDERLAY
    assert config.pod.default_ip_family is IPFamily.DUAL_STACK
    assert config.pod.stateful_kinds == ("StatefulSet", "CloneSet")
    assert config.pod.default_ip_retain is False
    assert config.leader_election is False
    assert OperatorConfig.from_env({}).pod.default_network_type is NetworkType.OVERLAY
    with pytest.raises(InvalidValue, match="DEFAULT_IP_FAMILY IPv5: must be one of IPv4, IPv6, DualStack"):
        OperatorConfig.from_env({"DEFAULT_IP_FAMILY": "IPv5"})
    with pytest.raises(InvalidValue, match="DEFAULT_IP_RETAIN maybe: must be true or false"):
        OperatorConfig.from_env({"DEFAULT_IP_RETAIN": "maybe"})


def test_lease_may_be_taken_when_free_ours_or_expired():
    now = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
    held = {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T11:59:50.000000Z"}}
    assert may_take(held, "a", now)
    assert not may_take(held, "b", now)
    assert may_take(held, "b", now + datetime.timedelta(seconds=6))
    assert may_take({"spec": {}}, "b", now)


async def test_work_queue_hands_a_key_to_one_worker_at_a_time():
    queue = WorkQueue()
    queue.add("a")
    queue.add("a")  # queued once
    key = await queue.get()
    queue.add("a")  # while being handled: handled again after
    assert queue._queue.empty()
    queue.done(key)
    assert await asyncio.wait_for(queue.get(), 1) == "a"
    queue.done("a")
    assert queue.idle
