"""StatefulSet pods keep their addresses, with the real StatefulSet controller and garbage collector.

The controller manager creates and deletes the pods; :class:`PodLifecycle` schedules them (on the
node the test's placement names), runs them and confirms their deletion, as the scheduler and the
kubelet would; the session's operator allocates. Each test has an underlay network of its own
(``fresh_underlay``) and a namespace of its own, so the addresses it sees are its pods' only.

Other workload kinds (STATEFUL_WORKLOAD_KINDS) are served through CRDs, as OpenKruise's are once
installed; no controller of theirs runs: the test creates and deletes their pods as it would.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import kubernetes
import pytest
from apitopo import API_VERSION, GROUP, VERSION, Api, Underlay, fresh_underlay, until
from podlife import PodLifecycle
from realcluster import OPERATOR_SA, SYSTEM_NAMESPACE, OperatorProcess, RealCluster

from hybridlay import names

SPECIFIED_NETWORK = names.ANNOTATION_SPECIFIED_NETWORK
# The operator collects orphans at each resync: RESYNC_SECONDS while this module's tests wait for one.
RESYNC_SECONDS = 2
ORPHAN_COLLECTION_TIMEOUT = 30.0

KRUISE_STS = ("apps.kruise.io", "v1beta1", "statefulsets", "StatefulSet")
CLONESET = ("apps.kruise.io", "v1alpha1", "clonesets", "CloneSet")
# Same kind as apps/v1's and OpenKruise's, a group no operator setting here names.
OTHER_STS = ("apps.example.org", "v1", "statefulsets", "StatefulSet")
# Configured, but its CRD is never installed: its workloads cannot be listed.
UNINSTALLED = ("apps.uninstalled.example.org", "v1", "statefulsets", "StatefulSet")


class Alternating:
    """A placement: each (re-)creation of a pod name goes to the next node of ``nodes``, so a pod
    that comes back lands on another node than the one it left."""

    def __init__(self, nodes: tuple[str, ...]) -> None:
        self.nodes = nodes
        self.placed: dict[str, list[tuple[str, str]]] = {}

    def __call__(self, pod: Mapping[str, Any]) -> str:
        meta = pod["metadata"]
        history = self.placed.setdefault(meta["name"], [])
        if history and history[-1][0] == meta["uid"]:
            return history[-1][1]  # the same pod seen again before its binding was
        ordinal = int(meta["name"].rpartition("-")[2]) if meta["name"][-1].isdigit() else 0
        node = self.nodes[(ordinal + len(history)) % len(self.nodes)]
        history.append((meta["uid"], node))
        return node


def held(api: Api, namespace: str) -> dict[str, dict[str, Any]]:
    """The IPInstances of ``namespace`` by pod name (one address per pod: IPv4 only here)."""
    found: dict[str, dict[str, Any]] = {}
    for instance in api.instances_of(namespace).values():
        pod = instance["spec"]["binding"]["podName"]
        assert pod not in found, f"{pod} holds two addresses: {found[pod]['metadata']['name']}, {instance}"
        found[pod] = instance
    return found


def ip_of(instance: Mapping[str, Any]) -> str:
    return str(instance["spec"]["address"]["ip"])


def bound_to_pods(api: Api, namespace: str, pods: list[str]) -> dict[str, dict[str, Any]] | None:
    """The addresses of ``pods`` once each is bound to the pod that runs now (its UID and node), else None."""
    instances = held(api, namespace)
    for name in pods:
        try:
            pod = api.core.read_namespaced_pod(name, namespace)
        except kubernetes.client.ApiException:
            return None
        binding = (instances.get(name) or {}).get("spec", {}).get("binding", {})
        if not pod.spec.node_name or binding.get("podUID") != pod.metadata.uid:
            return None
        if binding.get("nodeName") != pod.spec.node_name:
            return None
    return {name: instances[name] for name in pods}


def events(api: Api, namespace: str, reason: str, pod: str) -> list[Any]:
    selector = f"reason={reason},involvedObject.kind=Pod,involvedObject.name={pod}"
    return list(api.core.list_namespaced_event(namespace, field_selector=selector).items)


def pod_gone(api: Api, namespace: str, name: str, uid: str | None = None) -> bool:
    try:
        pod = api.core.read_namespaced_pod(name, namespace)
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return True
        raise
    return uid is not None and pod.metadata.uid != uid


def statefulset(name: str, replicas: int, network: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {SPECIFIED_NETWORK: network}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            },
        },
    }


def headless_service(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"port": 80}]},
    }


def instance_body(
    underlay: Underlay,
    host: int,
    namespace: str,
    pod: str,
    owner: tuple[str, str, str, str],
    *,
    index: int | None = None,
    pod_uid: str | None = None,
) -> dict[str, Any]:
    """An IPInstance of the ``host``-th address of ``underlay``'s subnet for ``pod``, referred to
    ``owner`` (apiVersion, kind, name, uid); with ``index``, kept for that ordinal of ``owner``,
    unbound (no pod UID) as the operator leaves a retained address."""
    api_version, kind, name, uid = owner
    network = ipaddress.ip_network(underlay.cidr)
    ip = network.network_address + host
    binding: dict[str, Any] = {
        "podName": pod,
        "podNamespace": namespace,
        "referredObject": {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid},
    }
    if index is not None:
        binding["stateful"] = {"index": index}
    if pod_uid is not None:
        binding["podUID"] = pod_uid
    return {
        "apiVersion": API_VERSION,
        "kind": "IPInstance",
        "metadata": {"name": str(ip).replace(".", "-")},
        "spec": {
            "network": underlay.network,
            "subnet": underlay.subnet,
            "address": {"version": "4", "ip": f"{ip}/{network.prefixlen}", "gateway": underlay.gateway},
            "binding": binding,
        },
    }


def after_an_orphan_collection(api: Api, underlay: Underlay, namespace: str) -> None:
    """Return once the operator has run an orphan collection (its periodic resync) that began after
    this call. The probe is an address only that collection frees: bound to an earlier pod of a
    name a host-network pod has now (the operator reconciles no host-network pod, and a pod's
    address held for another UID is an orphan)."""
    probe = f"orphan-probe-{uuid.uuid4().hex[:6]}"
    pod = {
        "metadata": {"name": probe},
        "spec": {"hostNetwork": True, "nodeName": underlay.nodes[0], "containers": [{"name": "c", "image": "x"}]},
    }
    api.core.create_namespaced_pod(namespace, pod)
    earlier = str(uuid.uuid4())
    instance = instance_body(underlay, 250, namespace, probe, ("v1", "Pod", probe, earlier), pod_uid=earlier)
    api.custom.create_cluster_custom_object(GROUP, VERSION, "ipinstances", instance)
    name = instance["metadata"]["name"]
    until(lambda: name not in api.instances(), "an orphan collection", ORPHAN_COLLECTION_TIMEOUT)
    api.core.delete_namespaced_pod(probe, namespace, grace_period_seconds=0)


# --- apps/v1 StatefulSet -------------------------------------------------------------------------------------


def test_each_ordinal_keeps_its_address_across_scaling_and_recreation_on_another_node(
    real_api: Api, real_namespace: str
) -> None:
    underlay = fresh_underlay(real_api, nodes=2)
    ns, pods = real_namespace, ["web-0", "web-1", "web-2"]
    real_api.core.create_namespaced_service(ns, headless_service("web"))
    with PodLifecycle(real_api.client, ns, Alternating(underlay.nodes)) as life:
        real_api.apps.create_namespaced_stateful_set(ns, statefulset("web", 3, underlay.network))
        first = until(lambda: bound_to_pods(real_api, ns, pods), "three pods running with an address each")
        addresses = {pod: ip_of(instance) for pod, instance in first.items()}
        assert len(set(addresses.values())) == 3
        assert all(ipaddress.ip_interface(a) in ipaddress.ip_network(underlay.cidr) for a in addresses.values())
        assert {i["spec"]["binding"]["stateful"]["index"] for i in first.values()} == {0, 1, 2}

        # Scaled down to one: web-1 and web-2 are deleted for good, their addresses stay theirs.
        real_api.apps.patch_namespaced_stateful_set_scale("web", ns, {"spec": {"replicas": 1}})
        until(lambda: pod_gone(real_api, ns, "web-1") and pod_gone(real_api, ns, "web-2"), "web-1 and web-2 deleted")
        until(
            lambda: all("podUID" not in held(real_api, ns)[p]["spec"]["binding"] for p in ("web-1", "web-2")),
            "the scaled-down ordinals' addresses unbound",
        )
        assert {pod: ip_of(i) for pod, i in held(real_api, ns).items()} == addresses

        # Scaled up again: each ordinal gets its own address back.
        real_api.apps.patch_namespaced_stateful_set_scale("web", ns, {"spec": {"replicas": 3}})
        again = until(lambda: bound_to_pods(real_api, ns, pods), "three pods running again")
        assert {pod: ip_of(instance) for pod, instance in again.items()} == addresses

        # web-0 deleted: the StatefulSet controller makes it again, placed on the other node.
        old = real_api.core.read_namespaced_pod("web-0", ns)
        real_api.core.delete_namespaced_pod("web-0", ns)
        until(lambda: pod_gone(real_api, ns, "web-0", old.metadata.uid), "web-0 deleted")
        back = until(lambda: bound_to_pods(real_api, ns, pods), "web-0 back with an address")
        new = real_api.core.read_namespaced_pod("web-0", ns)
        assert new.metadata.uid != old.metadata.uid
        assert new.spec.node_name != old.spec.node_name
        assert ip_of(back["web-0"]) == addresses["web-0"]
        assert back["web-0"]["spec"]["binding"]["nodeName"] == new.spec.node_name
        assert {pod: ip_of(i) for pod, i in held(real_api, ns).items()} == addresses

        # Deleting the StatefulSet (its pods go with it, by the garbage collector) frees them all.
        real_api.apps.delete_namespaced_stateful_set("web", ns)
        until(lambda: not real_api.core.list_namespaced_pod(ns).items, "the pods deleted with their StatefulSet")
        until(lambda: not real_api.instances_of(ns), "the addresses freed with their StatefulSet")
        assert life.errors == []


# --- other stateful kinds (STATEFUL_WORKLOAD_KINDS) ------------------------------------------------------------

Workload = tuple[str, str, str, str]  # group, version, plural, kind


def api_version(workload: Workload) -> str:
    return f"{workload[0]}/{workload[1]}"


def entry(workload: Workload) -> str:
    """The workload's STATEFUL_WORKLOAD_KINDS entry."""
    group, version, plural, kind = workload
    return f"{kind}.{group}/{version}/{plural}"


def serve(cluster: RealCluster, workload: Workload) -> None:
    """Install a CRD serving ``workload`` (any content), as its project's installation does; once."""
    group, version, plural, kind = workload
    ext = kubernetes.client.ApiextensionsV1Api(cluster.client())
    name = f"{plural}.{group}"
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    try:
        ext.create_custom_resource_definition(body)
    except kubernetes.client.ApiException as e:
        if e.status != 409:
            raise

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    until(established, f"CRD {name} established")


def grant_operator(cluster: RealCluster, workloads: list[Workload]) -> None:
    """The RBAC rule manifests/10-operator-rbac.yaml asks for each extra kind, in a role of its own."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(cluster.client())
    name = "hybridlay-operator-test-workloads"
    rules = [{"apiGroups": [w[0]], "resources": [w[2]], "verbs": ["get", "list", "watch"]} for w in workloads]
    role = {"metadata": {"name": name}, "rules": rules}
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": SYSTEM_NAMESPACE}],
    }
    for create in (lambda: rbac.create_cluster_role(role), lambda: rbac.create_cluster_role_binding(binding)):
        try:
            create()
        except kubernetes.client.ApiException as e:
            if e.status != 409:
                raise


@pytest.fixture(scope="module")
def workload_crds(_control_plane: RealCluster) -> None:
    for workload in (KRUISE_STS, CLONESET, OTHER_STS):
        serve(_control_plane, workload)


def restart(operator: OperatorProcess, settings: dict[str, str]) -> None:
    operator.stop()
    operator.settings.clear()
    operator.settings.update(settings)
    operator.start()


@pytest.fixture(scope="module")
def kruise_operator(
    _control_plane: RealCluster, _session_operator: OperatorProcess, _shared_topology: Api, workload_crds: None
) -> Iterator[OperatorProcess]:
    """The session's operator, restarted for this module's tests with OpenKruise's Advanced StatefulSet
    and CloneSet configured (and allowed to list them), a kind whose CRD is not installed, and a
    short resync (orphan collection) period."""
    grant_operator(_control_plane, [KRUISE_STS, CLONESET])
    saved = dict(_session_operator.settings)
    kinds = ",".join(["StatefulSet", entry(KRUISE_STS), entry(CLONESET), entry(UNINSTALLED)])
    restart(_session_operator, saved | {"STATEFUL_WORKLOAD_KINDS": kinds, "RESYNC_SECONDS": str(RESYNC_SECONDS)})
    yield _session_operator
    restart(_session_operator, saved)


def create_workload(api: Api, workload: Workload, namespace: str, name: str) -> str:
    """A workload object (no controller acts on it); its UID."""
    group, version, plural, kind = workload
    body = {"apiVersion": api_version(workload), "kind": kind, "metadata": {"name": name}, "spec": {"replicas": 0}}
    created = api.custom.create_namespaced_custom_object(group, version, namespace, plural, body)
    return str(created["metadata"]["uid"])


def delete_workload(api: Api, workload: Workload, namespace: str, name: str) -> None:
    group, version, plural, _ = workload
    api.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)


def owned_pod(name: str, network: str, owner: tuple[str, str, str, str]) -> dict[str, Any]:
    """A pod as the controller of ``owner`` (apiVersion, kind, name, uid) makes it."""
    owner_api_version, kind, owner_name, uid = owner
    reference = {"apiVersion": owner_api_version, "kind": kind, "name": owner_name, "uid": uid, "controller": True}
    return {
        "metadata": {"name": name, "annotations": {SPECIFIED_NETWORK: network}, "ownerReferences": [reference]},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }


def referred(instance: Mapping[str, Any]) -> tuple[str, str, str]:
    ref = instance["spec"]["binding"]["referredObject"]
    return ref["kind"], ref["name"], ref["uid"]


def test_advanced_statefulset_ordinals_keep_their_addresses_until_it_is_deleted(
    kruise_operator: OperatorProcess, real_api: Api, real_namespace: str
) -> None:
    """OpenKruise's Advanced StatefulSet, configured: as apps/v1's, its pods' addresses are kept for
    their ordinals (on any node of the network) until the workload itself is deleted."""
    underlay = fresh_underlay(real_api, nodes=2)
    ns, api = real_namespace, real_api
    uid = create_workload(api, KRUISE_STS, ns, "web")
    owner = (api_version(KRUISE_STS), "StatefulSet", "web", uid)
    with PodLifecycle(api.client, ns, Alternating(underlay.nodes)) as life:
        for name in ("web-0", "web-1"):
            api.core.create_namespaced_pod(ns, owned_pod(name, underlay.network, owner))
        first = until(lambda: bound_to_pods(api, ns, ["web-0", "web-1"]), "web-0 and web-1 running with addresses")
        addresses = {pod: ip_of(i) for pod, i in first.items()}
        assert [referred(i) for i in first.values()] == [("StatefulSet", "web", uid)] * 2
        assert [i["spec"]["binding"]["stateful"]["index"] for i in first.values()] == [0, 1]
        assert names.FINALIZER_POD in (api.core.read_namespaced_pod("web-0", ns).metadata.finalizers or [])

        # web-0 deleted and made again (as its controller would), on the other node: the same address.
        old = api.core.read_namespaced_pod("web-0", ns)
        api.core.delete_namespaced_pod("web-0", ns)
        until(lambda: pod_gone(api, ns, "web-0"), "web-0 deleted")
        assert "podUID" not in held(api, ns)["web-0"]["spec"]["binding"]
        until(lambda: events(api, ns, "IPReserveSucceed", "web-0"), "an event: web-0's address reserved")
        api.core.create_namespaced_pod(ns, owned_pod("web-0", underlay.network, owner))
        back = until(lambda: bound_to_pods(api, ns, ["web-0"]), "web-0 back with an address")
        assert api.core.read_namespaced_pod("web-0", ns).spec.node_name != old.spec.node_name
        assert ip_of(back["web-0"]) == addresses["web-0"]

        # Both deleted for good (scaled to zero): kept while the workload lives, orphan collection included.
        for name in ("web-0", "web-1"):
            api.core.delete_namespaced_pod(name, ns)
        until(lambda: pod_gone(api, ns, "web-0") and pod_gone(api, ns, "web-1"), "the pods deleted")
        after_an_orphan_collection(api, underlay, ns)
        assert {pod: ip_of(i) for pod, i in held(api, ns).items()} == addresses

        # Deleting the workload frees them.
        delete_workload(api, KRUISE_STS, ns, "web")
        until(lambda: not api.instances_of(ns), "the addresses freed with their Advanced StatefulSet")
        until(lambda: events(api, ns, "IPReleaseSucceed", "web-1"), "an event: web-1's address released")
        assert life.errors == []


def test_orphan_collection_keeps_the_addresses_of_live_workloads_of_every_configured_kind(
    kruise_operator: OperatorProcess, real_api: Api, real_namespace: str
) -> None:
    """Addresses kept for ordinals whose pods are gone: those of workloads that live stay, whatever
    their configured kind; those of deleted workloads are freed; those of a kind that cannot be
    listed (its CRD missing) stay, since whether their workload lives is unknown."""
    underlay = fresh_underlay(real_api)
    ns, api = real_namespace, real_api
    apps = ("apps", "v1", "statefulsets", "StatefulSet")
    api.apps.create_namespaced_stateful_set(ns, statefulset("web", 0, underlay.network))
    web_uid = api.apps.read_namespaced_stateful_set("web", ns).metadata.uid
    kept = {
        "db-0": (KRUISE_STS, "db", create_workload(api, KRUISE_STS, ns, "db")),
        "cache-0": (CLONESET, "cache", create_workload(api, CLONESET, ns, "cache")),
        "web-0": (apps, "web", web_uid),
        "lost-0": (UNINSTALLED, "lost", str(uuid.uuid4())),
    }
    gone = {
        "old-0": (KRUISE_STS, "old", str(uuid.uuid4())),
        "was-0": (CLONESET, "was", str(uuid.uuid4())),
        "gone-0": (apps, "gone", str(uuid.uuid4())),
    }
    for host, (pod, (workload, name, uid)) in enumerate((kept | gone).items(), start=10):
        owner = (api_version(workload), workload[3], name, uid)
        api.custom.create_cluster_custom_object(
            GROUP, VERSION, "ipinstances", instance_body(underlay, host, ns, pod, owner, index=0)
        )
    until(lambda: set(held(api, ns)) == set(kept), "the addresses of deleted workloads freed")
    after_an_orphan_collection(api, underlay, ns)
    assert set(held(api, ns)) == set(kept)

    # A workload deleted while its pods are gone (scaled to zero) frees its addresses too.
    delete_workload(api, CLONESET, ns, "cache")
    until(lambda: "cache-0" not in held(api, ns), "freed with its CloneSet")
    assert set(held(api, ns)) == set(kept) - {"cache-0"}


def test_a_pod_of_a_same_named_kind_of_another_group_is_a_normal_pod(
    workload_crds: None, real_api: Api, real_namespace: str
) -> None:
    """Workload kinds are matched by group and kind: a StatefulSet of a group no setting names is no
    stateful workload; its pod's address is the pod's, freed with it."""
    underlay = fresh_underlay(real_api)
    ns, api = real_namespace, real_api
    uid = create_workload(api, OTHER_STS, ns, "web")
    owner = (api_version(OTHER_STS), "StatefulSet", "web", uid)
    with PodLifecycle(api.client, ns, Alternating(underlay.nodes)) as life:
        api.core.create_namespaced_pod(ns, owned_pod("web-0", underlay.network, owner))
        [instance] = until(lambda: bound_to_pods(api, ns, ["web-0"]), "web-0 running with an address").values()
        pod = api.core.read_namespaced_pod("web-0", ns)
        assert referred(instance) == ("Pod", "web-0", pod.metadata.uid)
        assert "stateful" not in instance["spec"]["binding"]
        assert names.FINALIZER_POD not in (pod.metadata.finalizers or [])
        api.core.delete_namespaced_pod("web-0", ns)
        until(lambda: pod_gone(api, ns, "web-0"), "web-0 deleted")
        until(lambda: not api.instances_of(ns), "its address freed with it")
        assert life.errors == []
