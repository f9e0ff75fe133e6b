"""A deleted namespace frees its addresses: the namespace controller deletes its pods and workloads,
the operator frees what they held, nothing stays bound to the namespace.

The real controller manager deletes the namespace's content; :class:`PodLifecycle` runs the pods and
confirms their deletion as their kubelet would.
"""

from __future__ import annotations

import uuid
from typing import Any

import kubernetes
from apitopo import Api, fresh_underlay, until
from podlife import PodLifecycle

from hybridlay import names

# The namespace controller checks again after the longest grace period of the pods it is waiting for.
POD_SPEC = {"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "registry.example/app:1"}]}


def pod(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": POD_SPEC,
    }


def statefulset(name: str, replicas: int, annotations: dict[str, str]) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": POD_SPEC,
            },
        },
    }


def namespace_gone(core: kubernetes.client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def test_a_deleted_namespace_frees_every_address_its_pods_and_workloads_held(real_api: Api) -> None:
    """Pods with addresses (underlay and overlay, a plain pod and StatefulSet ordinals) and the address
    a scaled-down ordinal keeps with no pod: the namespace's deletion frees them all."""
    api, ns = real_api, f"t-{uuid.uuid4().hex[:8]}"
    underlay = fresh_underlay(api, nodes=1)
    on_underlay = {names.ANNOTATION_SPECIFIED_NETWORK: underlay.network}
    on_overlay = {names.ANNOTATION_NETWORK_TYPE: "Overlay"}
    api.core.create_namespace({"metadata": {"name": ns}})
    with PodLifecycle(api.client, ns, lambda _: underlay.nodes[0]) as life:
        api.core.create_namespaced_pod(ns, pod("solo", on_underlay))
        api.core.create_namespaced_pod(ns, pod("edge", on_overlay))
        api.apps.create_namespaced_stateful_set(ns, statefulset("db", 2, on_underlay))
        everyone = {"solo", "edge", "db-0", "db-1"}
        until(lambda: {i["spec"]["binding"]["podName"] for i in api.instances_of(ns).values()} == everyone, "addresses")
        networks = sorted(i["spec"]["network"] for i in api.instances_of(ns).values())
        assert networks == sorted([underlay.network] * 3 + ["overlay-network"])
        # db-1 scaled away: its address stays, held for the ordinal with no pod.
        api.apps.patch_namespaced_stateful_set_scale("db", ns, {"spec": {"replicas": 1}})
        until(
            lambda: "podUID" not in api.instances_of(ns, "db-1").popitem()[1]["spec"]["binding"],
            "db-1's address kept, unbound",
        )

        api.core.delete_namespace(ns)
        until(lambda: namespace_gone(api.core, ns), "the namespace deleted", timeout=60)
        until(lambda: not api.instances_of(ns), "nothing bound to the deleted namespace")
        assert life.errors == []
    assert not api.instances(f"{names.LABEL_POD_NAMESPACE}={ns}")
