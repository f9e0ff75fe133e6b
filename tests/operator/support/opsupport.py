"""Helpers for the operator's tests (imported by tests through the path tests/operator/conftest.py adds)."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import kmock
import kubernetes
import pytest
from kapi import VERBS, RunningAPI

from hybridlay import names
from hybridlay.pod_request import PodSettings
from hybridlay_operator.config import OperatorConfig

GROUP, VERSION = names.GROUP, names.VERSION
NS = "default"


async def eventually(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy (and return that), or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what or check}")
        await asyncio.sleep(0.05)


class Cluster:
    """Writes as a user or kubelet would make them (through the official client), reads from the stand-in."""

    def __init__(self, api: RunningAPI, client: kubernetes.client.ApiClient) -> None:
        self.api = api
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self.apps = kubernetes.client.AppsV1Api(client)

    # reads
    def instances(self) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in self.api.objects(f"{GROUP}/{VERSION}/ipinstances")}

    def instances_of(self, pod: str, namespace: str = NS) -> list[dict[str, Any]]:
        return sorted(
            (
                o
                for o in self.instances().values()
                if o["spec"]["binding"].get("podName") == pod and o["spec"]["binding"].get("podNamespace") == namespace
            ),
            key=lambda o: o["metadata"]["name"],
        )

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        path = f"{GROUP}/{VERSION}/{plural}" if plural in ("networks", "subnets", "ipinstances") else f"v1/{plural}"
        return next((o for o in self.api.objects(path) if o["metadata"]["name"] == name), None)

    def pod(self, name: str, namespace: str = NS) -> dict[str, Any] | None:
        return next((o for o in self.api.objects("v1/pods", namespace) if o["metadata"]["name"] == name), None)

    def events(self, reason: str | None = None, about: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.api.objects("v1/events")
            if (reason is None or e.get("reason") == reason)
            and (about is None or e["involvedObject"].get("name") == about)
        ]

    # writes
    def create_custom(self, plural: str, body: dict[str, Any]) -> None:
        self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)

    def network(self, name: str, type_: str, net_id: int | None = None, selector: dict[str, str] | None = None) -> None:
        spec: dict[str, Any] = {"type": type_}
        if net_id is not None:
            spec["netID"] = net_id
        if selector:
            spec["nodeSelector"] = selector
        self.create_custom(
            "networks",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Network", "metadata": {"name": name}, "spec": spec},
        )

    def subnet(self, name: str, network: str, cidr: str, version: str = "4", **range_: Any) -> None:
        self.create_custom(
            "subnets",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Subnet",
                "metadata": {"name": name},
                "spec": {"network": network, "range": {"version": version, "cidr": cidr, **range_}},
            },
        )

    def node(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.core.create_node({"metadata": {"name": name, "labels": labels or {}}})

    def namespace(self, name: str, annotations: dict[str, str] | None = None) -> None:
        self.core.create_namespace({"metadata": {"name": name, "annotations": annotations or {}}})

    def serve(self, path: str, kind: str) -> None:
        """Make the stand-in serve (and discover) a namespaced resource ``group/version/plural``, as
        installing its CRD would: the operator must find it before it starts to watch it."""

        async def declare() -> None:
            self.api.api.resources[path] = kmock.ResourceInfo(
                kind=kind, namespaced=True, singular=kind.lower(), verbs=VERBS, subresources=("status",)
            )

        self.api.run(declare())

    def workload(self, path: str, kind: str, name: str, namespace: str = NS) -> str:
        """Create a workload of a custom resource ``group/version/plural``; its UID."""
        group, version, plural = path.split("/")
        body = {"apiVersion": f"{group}/{version}", "kind": kind, "metadata": {"name": name}, "spec": {"replicas": 1}}
        created = self.custom.create_namespaced_custom_object(group, version, namespace, plural, body)
        return str(created["metadata"]["uid"])

    def delete_workload(self, path: str, name: str, namespace: str = NS) -> None:
        group, version, plural = path.split("/")
        self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)

    def statefulset(self, name: str, namespace: str = NS) -> str:
        created = self.apps.create_namespaced_stateful_set(
            namespace, {"metadata": {"name": name}, "spec": {"selector": {}, "serviceName": name, "template": {}}}
        )
        return str(created.metadata.uid)

    def create_pod(
        self,
        name: str,
        *,
        node: str | None = "node1",
        annotations: dict[str, str] | None = None,
        namespace: str = NS,
        owner: tuple[str, str, str] | None = None,
        owner_api_version: str = "apps/v1",
        host_network: bool = False,
    ) -> str:
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": annotations or {}}
        if owner is not None:
            kind, owner_name, uid = owner
            meta["ownerReferences"] = [
                {"apiVersion": owner_api_version, "kind": kind, "name": owner_name, "uid": uid, "controller": True}
            ]
        spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
        if node:
            spec["nodeName"] = node
        if host_network:
            spec["hostNetwork"] = True
        body = {"metadata": meta, "spec": spec, "status": {"phase": "Pending"}}
        created = self.core.create_namespaced_pod(namespace, body, _preload_content=False)
        return str(json.loads(created.data)["metadata"]["uid"])

    def set_pod_status(self, name: str, phase: str, running: bool, namespace: str = NS) -> None:
        state = {"running": {}} if running else {"terminated": {"exitCode": 0}}
        status = {"phase": phase, "containerStatuses": [{"name": "c", "state": state}]}
        self.patch_pod_status(name, {"status": status}, namespace)

    def patch_pod_status(self, name: str, patch: dict[str, Any], namespace: str = NS) -> None:
        # Raw: the typed model refuses the partial container statuses a test writes.
        self.core.patch_namespaced_pod_status(
            name, namespace, patch, _preload_content=False, _content_type="application/merge-patch+json"
        )

    def delete_pod(self, name: str, namespace: str = NS) -> None:
        self.core.delete_namespaced_pod(name, namespace, _preload_content=False)


def operator_config(**overrides: Any) -> OperatorConfig:
    settings = dict(
        pod=PodSettings(),
        leader_election=False,
        workers=8,
        resync_seconds=3600,
        probe_port=0,
        identity=f"test-{uuid.uuid4().hex[:6]}",
    )
    settings.update(overrides)
    return OperatorConfig(**settings)  # type: ignore[arg-type]
