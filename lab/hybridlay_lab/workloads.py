"""The lab's workloads as API objects (pure): what ``hybridlay_lab.matrix`` creates through the API.

- one Deployment per network: ``overlay`` with a pod on every node, ``underlay-<network>`` with a
  pod on every node of that underlay network (the pod webhook adds the nodeSelector that places
  them; required anti-affinity spreads them one per node);
- the StatefulSet ``web`` (3 replicas, its pods keep their addresses) and its headless Service;
- a pod asking for an underlay network on a node outside it (it must stay Pending, saying why);
- objects the admission webhooks must refuse: a Subnet whose gateway is outside its CIDR, a pod with
  an impossible ``ip-family`` annotation.

Every pod runs the lab's busybox image (``sleep infinity``; a shell, ping, nc), never pulled.
"""

from __future__ import annotations

from typing import Any

from hybridlay import names

NAMESPACE = "hybridlay-lab"
APP_LABEL = "hybridlay-lab/app"
WORKLOAD_IMAGE = "localhost/hybridlay-lab/busybox:1"
STATEFULSET = "web"


def namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


def pod_spec(app: str) -> dict[str, Any]:
    """Busybox sleeping; one pod of ``app`` per node; quick to stop (sleep ignores SIGTERM as PID 1)."""
    return {
        "terminationGracePeriodSeconds": 1,
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {APP_LABEL: app}}}
                ]
            }
        },
        "containers": [
            {
                "name": "main",
                "image": WORKLOAD_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sleep", "infinity"],
            }
        ],
    }


def deployment(app: str, replicas: int, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": NAMESPACE, "labels": {APP_LABEL: app}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {APP_LABEL: app}},
            # One pod per node: a rolling update must not want a second one on a node.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": {APP_LABEL: app}, "annotations": annotations},
                "spec": pod_spec(app),
            },
        },
    }


def overlay_deployment(replicas: int, dual_stack: bool) -> dict[str, Any]:
    annotations = {names.ANNOTATION_NETWORK_TYPE: "Overlay"}
    if dual_stack:
        annotations[names.ANNOTATION_IP_FAMILY] = "DualStack"
    return deployment("overlay", replicas, annotations)


def underlay_deployment(network: str, replicas: int) -> dict[str, Any]:
    """Named after its network."""
    return deployment(
        network,
        replicas,
        {names.ANNOTATION_NETWORK_TYPE: "Underlay", names.ANNOTATION_SPECIFIED_NETWORK: network},
    )


def statefulset(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": STATEFULSET, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "serviceName": STATEFULSET,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {APP_LABEL: STATEFULSET}},
            "template": {
                "metadata": {"labels": {APP_LABEL: STATEFULSET}},
                "spec": {**pod_spec(STATEFULSET), "affinity": {}},
            },
        },
    }


def headless_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": STATEFULSET, "namespace": NAMESPACE},
        "spec": {"clusterIP": "None", "selector": {APP_LABEL: STATEFULSET}, "ports": [{"name": "x", "port": 80}]},
    }


def wrong_node_pod(network: str, node: str) -> dict[str, Any]:
    """A pod asking for underlay network ``network`` while pinned (nodeSelector) to ``node``, outside it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "wrong-node",
            "namespace": NAMESPACE,
            "annotations": {names.ANNOTATION_SPECIFIED_NETWORK: network},
        },
        "spec": {
            **pod_spec("wrong-node"),
            "affinity": {},
            "nodeSelector": {"kubernetes.io/hostname": node},
        },
    }


def invalid_subnet(network: str) -> dict[str, Any]:
    """Refused by the Subnet webhook: its gateway is outside its CIDR (field spec.range.gateway)."""
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": "Subnet",
        "metadata": {"name": "lab-invalid-gateway"},
        "spec": {"network": network, "range": {"version": "4", "cidr": "10.99.0.0/24", "gateway": "10.98.0.1"}},
    }


def bad_annotation_pod() -> dict[str, Any]:
    """Refused by the pod webhook: ``ip-family: IPv5``."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "bad-annotation",
            "namespace": NAMESPACE,
            "annotations": {names.ANNOTATION_IP_FAMILY: "IPv5"},
        },
        "spec": {**pod_spec("bad-annotation"), "affinity": {}},
    }
