"""Stateful workload kinds beyond apps/v1's StatefulSet (STATEFUL_WORKLOAD_KINDS): the setting, the
matching of pods' owners by API group and kind, and retention, release and orphan collection for a
kind of another group (OpenKruise's Advanced StatefulSet, ``apps.kruise.io``), against the stand-in.

KMock serves a custom group once told of the resource (``Cluster.serve``), as a cluster does once
the CRD is installed; no OpenKruise controller runs: the tests create and delete pods as it would.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from opsupport import NS, eventually

from hybridlay import names
from hybridlay.errors import InvalidValue
from hybridlay.model import Binding, InstanceAddress, IPInstance, ReferredObject
from hybridlay_operator import decisions as d
from hybridlay_operator.config import (
    APPS_STATEFULSET,
    OperatorConfig,
    WorkloadKind,
    parse_stateful_workloads,
)

UNDERLAY = {names.ANNOTATION_NETWORK_TYPE: "Underlay"}
KRUISE_STS_ENTRY = "StatefulSet.apps.kruise.io/v1beta1/statefulsets"
CLONESET_ENTRY = "CloneSet.apps.kruise.io/v1alpha1/clonesets"
KRUISE_STS = WorkloadKind("StatefulSet", "apps.kruise.io", "v1beta1", "statefulsets")
CLONESET = WorkloadKind("CloneSet", "apps.kruise.io", "v1alpha1", "clonesets")
KRUISE_STS_PATH, KRUISE_API = "apps.kruise.io/v1beta1/statefulsets", "apps.kruise.io/v1beta1"
CLONESET_PATH, CLONESET_API = "apps.kruise.io/v1alpha1/clonesets", "apps.kruise.io/v1alpha1"
ALL = (APPS_STATEFULSET, KRUISE_STS, CLONESET)


# --- the setting (pure) ---------------------------------------------------------------------------------


def test_setting_syntax_plain_statefulset_and_kind_group_version_plural():
    assert parse_stateful_workloads("StatefulSet") == (APPS_STATEFULSET,)
    assert WorkloadKind("StatefulSet", "apps", "v1", "statefulsets") == APPS_STATEFULSET
    value = f" StatefulSet , {KRUISE_STS_ENTRY},{CLONESET_ENTRY},, StatefulSet.apps/v1/statefulsets"
    assert parse_stateful_workloads(value) == ALL  # blanks skipped, a repeat kept once
    assert parse_stateful_workloads("") == ()  # no kind keeps addresses
    assert str(KRUISE_STS) == KRUISE_STS_ENTRY
    assert KRUISE_STS.api_version == KRUISE_API
    assert KRUISE_STS.path() == "/apis/apps.kruise.io/v1beta1/statefulsets"
    assert CLONESET.path("shop") == "/apis/apps.kruise.io/v1alpha1/namespaces/shop/clonesets"

    config = OperatorConfig.from_env({"STATEFUL_WORKLOAD_KINDS": f"{KRUISE_STS_ENTRY},{CLONESET_ENTRY}"})
    assert config.stateful_workloads == (KRUISE_STS, CLONESET)
    assert config.pod.stateful_kinds == ("StatefulSet", "CloneSet")  # what the core matches by
    assert OperatorConfig.from_env({}).stateful_workloads == (APPS_STATEFULSET,)
    assert OperatorConfig(stateful_workloads=ALL).pod.stateful_kinds == ("StatefulSet", "CloneSet")


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("CloneSet", "only StatefulSet (that of apps/v1) may be given by its kind alone"),
        ("Deployment", "Deployment.<group>/<version>/<plural>"),
        ("clonesets.apps.kruise.io/v1alpha1", "must be StatefulSet (that of apps/v1) or Kind.group/version/plural"),
        ("cloneSet.apps.kruise.io/v1alpha1/clonesets", "must be StatefulSet"),
        ("CloneSet.apps.kruise.io/v1alpha1", "must be StatefulSet"),
        ("CloneSet.apps.kruise.io/v1alpha1/CloneSets", "must be StatefulSet"),
        ("CloneSet.Apps_Kruise/v1alpha1/clonesets", "must be StatefulSet"),
        ("CloneSet/apps.kruise.io/v1alpha1/clonesets", "must be StatefulSet"),
        (
            "StatefulSet.apps/v2/statefulsets",
            "StatefulSet of apps is already given as StatefulSet.apps/v1/statefulsets",
        ),
    ],
)
def test_a_bad_entry_is_refused_naming_the_setting_and_the_entry(entry, reason):
    with pytest.raises(InvalidValue) as raised:
        OperatorConfig.from_env({"STATEFUL_WORKLOAD_KINDS": f"StatefulSet,{entry}"})
    assert str(raised.value).startswith(f"STATEFUL_WORKLOAD_KINDS {entry}: ")
    assert reason in str(raised.value)


def test_operator_refuses_to_start_with_a_bad_entry(operator_env):
    env = dict(operator_env, STATEFUL_WORKLOAD_KINDS=f"StatefulSet,{KRUISE_STS_ENTRY},CloneSet")
    done = subprocess.run(
        [sys.executable, "-m", "hybridlay_operator"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "bad setting: STATEFUL_WORKLOAD_KINDS CloneSet: only StatefulSet" in done.stderr


# --- matching owners by group and kind (pure) -----------------------------------------------------------------


def owned_pod(api_version, kind="StatefulSet", name="web-0", owner="web", uid="w1"):
    reference = {"apiVersion": api_version, "kind": kind, "name": owner, "uid": uid, "controller": True}
    return {"metadata": {"name": name, "namespace": NS, "ownerReferences": [reference]}, "spec": {"nodeName": "n1"}}


def test_the_core_sees_a_controller_only_when_its_group_and_kind_are_configured():
    kruise_pod, apps_pod = owned_pod(KRUISE_API), owned_pod("apps/v1")
    assert d.stateful_view(kruise_pod, ALL) is kruise_pod
    assert d.stateful_view(apps_pod, (KRUISE_STS,)) != apps_pod
    [hidden] = d.stateful_view(apps_pod, (KRUISE_STS,))["metadata"]["ownerReferences"]
    assert hidden["controller"] is False
    assert apps_pod["metadata"]["ownerReferences"][0]["controller"] is True  # the pod itself is untouched
    [hidden] = d.stateful_view(kruise_pod, (APPS_STATEFULSET,))["metadata"]["ownerReferences"]
    assert hidden["controller"] is False
    # Any served version of the group; kinds of no configured name are the core's business.
    older_version = owned_pod("apps.kruise.io/v1alpha1")
    assert d.stateful_view(older_version, (KRUISE_STS,)) is older_version
    deployment_pod = owned_pod("apps/v1", kind="ReplicaSet")
    assert d.stateful_view(deployment_pod, (KRUISE_STS,)) is deployment_pod


def retained(uid="w1", kind="StatefulSet", pod_uid=None):
    return IPInstance(
        name="10-0-0-2",
        network="net",
        subnet="sub",
        address=InstanceAddress(version="4", ip="10.0.0.2/24"),
        binding=Binding(
            pod_name="web-0", pod_namespace=NS, pod_uid=pod_uid, referred_object=ReferredObject(kind, "web", uid)
        ),
    )


def test_retained_addresses_know_their_workloads_group_from_their_referred_object():
    referred = ReferredObject("StatefulSet", "web", "w1")
    assert d.owner_api_version(owned_pod(KRUISE_API), referred) == KRUISE_API
    assert d.owner_api_version(owned_pod("apps/v1"), referred) == "apps/v1"
    assert d.owner_api_version(owned_pod(KRUISE_API), ReferredObject("Pod", "web-0", "p1")) == "v1"

    referred_object = {"apiVersion": KRUISE_API, "kind": "StatefulSet", "name": "web", "uid": "w1"}
    assert d.owner_group({"spec": {"binding": {"referredObject": referred_object}}}) == "apps.kruise.io"
    hybridnets = {"kind": "StatefulSet", "name": "web", "uid": "w1"}  # Hybridnet records no API version
    assert d.owner_group({"spec": {"binding": {"referredObject": hybridnets}}}) is None
    assert d.possible_workloads("StatefulSet", "apps.kruise.io", ALL) == [KRUISE_STS]
    assert d.possible_workloads("StatefulSet", None, ALL) == [APPS_STATEFULSET, KRUISE_STS]
    assert d.possible_workloads("CloneSet", "apps.kruise.io", ALL) == [CLONESET]


def test_an_address_whose_workload_cannot_be_listed_is_no_orphan():
    kinds = ("StatefulSet", "CloneSet")
    gone = retained(uid="dead")
    assert d.is_orphan(gone, {}, {"w1"}, kinds)
    assert not d.is_orphan(retained(), {}, {"w1"}, kinds)
    # OpenKruise's StatefulSets could not be listed: an apps.kruise.io address stays, an apps one not.
    assert d.owner_unlisted(gone, "apps.kruise.io", ALL, {KRUISE_STS})
    assert not d.owner_unlisted(gone, "apps", ALL, {KRUISE_STS})
    assert d.owner_unlisted(gone, None, ALL, {KRUISE_STS})  # the group unknown: either may be it
    assert not d.is_orphan(gone, {}, {"w1"}, kinds, owner_unknown=True)


# --- in the cluster ------------------------------------------------------------------------------------------------


@pytest.fixture
def kruise(cluster):
    """OpenKruise's resources served (its CRDs installed)."""
    cluster.serve(KRUISE_STS_PATH, "StatefulSet")
    cluster.serve(CLONESET_PATH, "CloneSet")
    return cluster


async def test_advanced_statefulset_pod_keeps_its_address_until_its_workload_is_deleted(kruise, start_operator):
    cluster = kruise
    operator = await start_operator(stateful_workloads=ALL)
    uid = cluster.workload(KRUISE_STS_PATH, "StatefulSet", "web")
    owner = ("StatefulSet", "web", uid)
    first_uid = cluster.create_pod("web-0", annotations=UNDERLAY, owner=owner, owner_api_version=KRUISE_API)
    cluster.set_pod_status("web-0", "Running", running=True)
    [instance] = await eventually(lambda: cluster.instances_of("web-0"))
    name = instance["metadata"]["name"]
    referred = {"apiVersion": KRUISE_API, "kind": "StatefulSet", "name": "web", "uid": uid}
    assert instance["spec"]["binding"]["referredObject"] == referred
    assert instance["spec"]["binding"]["stateful"] == {"index": 0}
    await eventually(lambda: names.FINALIZER_POD in (cluster.pod("web-0")["metadata"].get("finalizers") or []))

    # Deleted and re-created (on another node): reserved meanwhile, then the same address again.
    cluster.delete_pod("web-0")
    cluster.set_pod_status("web-0", "Running", running=False)
    await eventually(lambda: cluster.pod("web-0") is None, what="finalizer removed once no container runs")
    assert "podUID" not in cluster.instances()[name]["spec"]["binding"]
    await eventually(lambda: cluster.events("IPReserveSucceed", about="web-0"))
    second_uid = cluster.create_pod(
        "web-0", node="node2", annotations=UNDERLAY, owner=owner, owner_api_version=KRUISE_API
    )
    assert second_uid != first_uid
    rebound = await eventually(
        lambda: (i := cluster.instances()[name])["spec"]["binding"].get("podUID") == second_uid and i
    )
    assert rebound["spec"]["binding"]["nodeName"] == "node2"
    assert len(cluster.instances_of("web-0")) == 1

    # Scale-down (the pod deleted for good) keeps it, and it is no orphan while the workload lives.
    cluster.delete_pod("web-0")
    cluster.set_pod_status("web-0", "Running", running=False)
    await eventually(lambda: cluster.pod("web-0") is None)
    await eventually(lambda: operator.controller.queue.idle)
    assert name in cluster.instances()
    assert await operator.controller.collect_orphans() == []
    assert name in cluster.instances()

    # Deleting the workload frees it.
    cluster.delete_workload(KRUISE_STS_PATH, "web")
    await eventually(lambda: name not in cluster.instances(), what="freed with its Advanced StatefulSet")
    await eventually(lambda: cluster.events("IPReleaseSucceed", about="web-0"))


async def test_a_pod_of_an_unconfigured_group_is_a_normal_pod(kruise, start_operator):
    """STATEFUL_WORKLOAD_KINDS=StatefulSet is apps/v1's: OpenKruise's StatefulSet, same kind, does not count."""
    cluster = kruise
    await start_operator()  # the default: StatefulSet (apps/v1)
    uid = cluster.workload(KRUISE_STS_PATH, "StatefulSet", "web")
    pod_uid = cluster.create_pod(
        "web-0", annotations=UNDERLAY, owner=("StatefulSet", "web", uid), owner_api_version=KRUISE_API
    )
    [instance] = await eventually(lambda: cluster.instances_of("web-0"))
    referred = {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": pod_uid}
    assert instance["spec"]["binding"]["referredObject"] == referred
    assert "stateful" not in instance["spec"]["binding"]
    assert names.FINALIZER_POD not in (cluster.pod("web-0")["metadata"].get("finalizers") or [])
    cluster.delete_pod("web-0")
    await eventually(lambda: not cluster.instances_of("web-0"), what="released with its pod")


def retained_body(ip, pod, owner):
    """A retained IPInstance, unbound, as the operator leaves it: ``owner`` is (apiVersion, kind, name, uid)."""
    api_version, owner_kind, owner_name, owner_uid = owner
    name = ip.replace(".", "-")
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": "IPInstance",
        "metadata": {"name": name},
        "spec": {
            "network": "overlay-network",
            "subnet": "overlay-subnet",
            "address": {"version": "4", "ip": f"{ip}/24"},
            "binding": {
                "podName": pod,
                "podNamespace": NS,
                "referredObject": {"apiVersion": api_version, "kind": owner_kind, "name": owner_name, "uid": owner_uid},
                "stateful": {"index": 0},
            },
        },
    }


async def test_orphan_collection_checks_the_owners_of_every_configured_kind(kruise, start_operator):
    """At start (the first resync): the addresses of workloads that live are kept, of those gone freed."""
    cluster = kruise
    sts_uid = cluster.workload(KRUISE_STS_PATH, "StatefulSet", "db")
    cs_uid = cluster.workload(CLONESET_PATH, "CloneSet", "cache")
    apps_uid = cluster.statefulset("web")
    create = cluster.create_custom
    create("ipinstances", retained_body("100.10.0.7", "db-0", (KRUISE_API, "StatefulSet", "db", sts_uid)))
    create("ipinstances", retained_body("100.10.0.8", "cache-0", (CLONESET_API, "CloneSet", "cache", cs_uid)))
    create("ipinstances", retained_body("100.10.0.9", "web-0", ("apps/v1", "StatefulSet", "web", apps_uid)))
    create("ipinstances", retained_body("100.10.0.10", "old-0", (KRUISE_API, "StatefulSet", "old", "gone-sts")))
    create("ipinstances", retained_body("100.10.0.11", "was-0", (CLONESET_API, "CloneSet", "was", "gone-cs")))

    operator = await start_operator(stateful_workloads=ALL)
    await eventually(
        lambda: sorted(cluster.instances()) == ["100-10-0-7", "100-10-0-8", "100-10-0-9"],
        what="the addresses of deleted workloads collected, of live ones kept",
    )
    # Deleting a workload while its pods are gone (scaled to zero) frees its addresses too.
    cluster.delete_workload(CLONESET_PATH, "cache")
    await eventually(lambda: "100-10-0-8" not in cluster.instances(), what="freed with its CloneSet")
    assert sorted(cluster.instances()) == ["100-10-0-7", "100-10-0-9"]
    assert await operator.controller.collect_orphans() == []


async def test_a_kind_that_cannot_be_listed_keeps_its_addresses(cluster, start_operator):
    """OpenKruise configured but not installed: its addresses stay (whether their workloads live is
    unknown), while the orphans of apps/v1 StatefulSets are still collected."""
    create = cluster.create_custom
    create("ipinstances", retained_body("100.10.0.7", "db-0", (KRUISE_API, "StatefulSet", "db", "some-sts")))
    create("ipinstances", retained_body("100.10.0.9", "web-0", ("apps/v1", "StatefulSet", "web", "gone-sts")))
    operator = await start_operator(stateful_workloads=ALL)
    await eventually(lambda: sorted(cluster.instances()) == ["100-10-0-7"], what="only the apps/v1 orphan collected")
    assert await operator.controller.collect_orphans() == []
    assert "100-10-0-7" in cluster.instances()
