"""Stateful workload kinds beyond apps/v1's StatefulSet (STATEFUL_WORKLOAD_KINDS): the setting (an
operator refuses to start with a bad one), and the decisions matching pods' owners and retained
addresses by API group and kind (pure).

Retention, release and orphan collection for kinds of other groups (OpenKruise's, through CRDs) run
against the real API server: tests/api/test_stateful.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from opsupport import NS

from hybridlay.errors import InvalidValue
from hybridlay.model import Binding, InstanceAddress, IPInstance, ReferredObject
from hybridlay_operator import decisions as d
from hybridlay_operator.config import (
    APPS_STATEFULSET,
    OperatorConfig,
    WorkloadKind,
    parse_stateful_workloads,
)

KRUISE_STS_ENTRY = "StatefulSet.apps.kruise.io/v1beta1/statefulsets"
CLONESET_ENTRY = "CloneSet.apps.kruise.io/v1alpha1/clonesets"
KRUISE_STS = WorkloadKind("StatefulSet", "apps.kruise.io", "v1beta1", "statefulsets")
CLONESET = WorkloadKind("CloneSet", "apps.kruise.io", "v1alpha1", "clonesets")
KRUISE_API = "apps.kruise.io/v1beta1"
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
