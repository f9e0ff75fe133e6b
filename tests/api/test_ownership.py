"""Who owns an IPInstance, seen by the real garbage collector.

An IPInstance is cluster-scoped (named by its address, so the API server refuses a second claim).
A cluster-scoped object cannot be owned by a namespaced one: the garbage collector never collects
through such a reference and raises an ``OwnerRefInvalidNamespace`` warning for each. Its owner is
the pod's Namespace: the backstop that frees a namespace's addresses even when the operator is down.
"""

from __future__ import annotations

import contextlib
from typing import Any

import kubernetes
from apitopo import API_VERSION, GROUP, VERSION, Api, until
from podlife import PodLifecycle
from realcluster import OperatorProcess, RealCluster

WARNING = "OwnerRefInvalidNamespace"
CONTROL = "100-64-255-250"


def make_pod(api: Api, namespace: str, name: str, node: str = "node3") -> str:
    body = {"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}
    return str(api.core.create_namespaced_pod(namespace, body).metadata.uid)


def invalid_owner_warnings(api: Api) -> list[Any]:
    events = api.core.list_event_for_all_namespaces(field_selector=f"reason={WARNING}").items
    return [e for e in events if e.involved_object.kind == "IPInstance"]


def test_an_ipinstance_is_owned_by_its_pods_namespace_and_the_collector_has_nothing_to_warn_about(
    real_api: Api, real_namespace: str
) -> None:
    make_pod(real_api, real_namespace, "p")
    [instance] = until(lambda: list(real_api.instances_of(real_namespace, "p").values()), "an address")
    namespace_uid = real_api.core.read_namespace(real_namespace).metadata.uid
    assert instance["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Namespace", "name": real_namespace, "uid": namespace_uid}
    ]

    # The control: an IPInstance with the reference the operator used to write (to the pod). The
    # collector warns about it; once it has, it has looked at the operator's IPInstance before it.
    pod_uid = real_api.core.read_namespaced_pod("p", real_namespace).metadata.uid
    control = {
        "apiVersion": API_VERSION,
        "kind": "IPInstance",
        "metadata": {
            "name": CONTROL,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": pod_uid}],
        },
        "spec": {
            "network": "overlay-network",
            "subnet": "overlay-subnet",
            "address": {"version": "4", "ip": "100.64.255.250/16"},
            "binding": {"podName": "nobody", "podNamespace": real_namespace},
        },
    }
    real_api.custom.create_cluster_custom_object(GROUP, VERSION, "ipinstances", control)
    try:
        warned = until(lambda: invalid_owner_warnings(real_api), "the collector's warning about the control")
        assert {e.involved_object.name for e in warned} == {CONTROL}
    finally:
        with contextlib.suppress(kubernetes.client.ApiException):  # the operator may have collected it
            real_api.custom.delete_cluster_custom_object(GROUP, VERSION, "ipinstances", CONTROL)


def test_deleting_a_namespace_frees_its_addresses_even_with_the_operator_down(
    real_cluster: RealCluster, real_api: Api, real_operator: OperatorProcess, real_namespace: str
) -> None:
    for name in ("a", "b"):
        make_pod(real_api, real_namespace, name)
    until(lambda: len(real_api.instances_of(real_namespace)) == 2, "both pods' addresses")

    real_operator.kill()
    with PodLifecycle(real_cluster.client(), real_namespace, place=lambda _: None):
        real_api.core.delete_namespace(real_namespace)

        def namespace_gone() -> bool:
            try:
                real_api.core.read_namespace(real_namespace)
            except kubernetes.client.ApiException as e:
                return e.status == 404
            return False

        until(namespace_gone, "the namespace deleted (its pods confirmed gone)", timeout=60)
    until(lambda: not real_api.instances_of(real_namespace), "the collector frees the addresses", timeout=60)
