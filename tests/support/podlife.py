"""What the scheduler and kubelet do to pods through the API, for a control plane without kubelets.

The API tests run the real kube-apiserver and controller manager (tests/support/realcluster.py) but
no kubelet: a pod a controller creates stays unscheduled, and a pod deleted gracefully stays
Terminating until its kubelet confirms. :class:`PodLifecycle` plays those two parts for the pods of
one namespace, through the same API calls they make:

- scheduler: binds an unscheduled pod to the node ``place(pod)`` names (``pods/binding``);
- kubelet: reports a bound pod Running (``pods/status``), and confirms a graceful deletion by reporting
  its containers terminated, then deleting it with grace period 0 (its finalizers still hold it).

The real kubelet and scheduler run pods in the lab (issue 14).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes
import urllib3

Placement = Callable[[Mapping[str, Any]], str | None]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running_status(pod: Mapping[str, Any]) -> dict[str, Any]:
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    started = {"running": {"startedAt": _now()}}
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": n, "ready": True, "restartCount": 0, "image": "x", "imageID": "", "state": started} for n in names
        ],
    }


def terminated_status(pod: Mapping[str, Any]) -> dict[str, Any]:
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": _now()}}
    return {
        "containerStatuses": [
            {"name": n, "ready": False, "restartCount": 0, "image": "x", "imageID": "", "state": done} for n in names
        ],
    }


class PodLifecycle:
    """Schedules, runs and finishes deleting the pods of ``namespace`` on a thread (a context manager)."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, place: Placement) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace
        self.place = place
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pod-lifecycle-{namespace}", daemon=True)
        self.errors: list[str] = []

    def __enter__(self) -> PodLifecycle:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(kubernetes.client.ApiException, urllib3.exceptions.HTTPError):
                listing = self.core.list_namespaced_pod(self.namespace, _preload_content=False)
                body = json.loads(listing.data)
                for pod in body.get("items") or []:
                    self.handle(pod)
                version = body["metadata"]["resourceVersion"]
                watch = kubernetes.watch.Watch()
                for event in watch.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=2,
                    _preload_content=False,
                ):
                    if self._stop.is_set():
                        watch.stop()
                        break
                    if event["type"] != "DELETED":
                        self.handle(event["raw_object"])

    def handle(self, pod: Mapping[str, Any]) -> None:
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        name = meta["name"]
        try:
            if meta.get("deletionTimestamp"):
                self._finish_deletion(pod)
            elif not spec.get("nodeName"):
                node = self.place(pod)
                if node:
                    body = {"metadata": {"name": name}, "target": {"kind": "Node", "name": node}}
                    self.core.create_namespaced_pod_binding(name, self.namespace, body, _preload_content=False)
            elif status.get("phase") == "Pending":
                self.core.patch_namespaced_pod_status(
                    name, self.namespace, {"status": running_status(pod)}, _preload_content=False
                )
        except kubernetes.client.ApiException as e:
            if e.status not in (404, 409):
                self.errors.append(f"{name}: {e.status} {e.reason}")

    def _finish_deletion(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if any("running" in (s.get("state") or {}) for s in statuses) or not statuses:
            self.core.patch_namespaced_pod_status(
                meta["name"], self.namespace, {"status": terminated_status(pod)}, _preload_content=False
            )
        if meta.get("deletionGracePeriodSeconds") != 0:
            options = kubernetes.client.V1DeleteOptions(
                grace_period_seconds=0, preconditions=kubernetes.client.V1Preconditions(uid=meta["uid"])
            )
            self.core.delete_namespaced_pod(meta["name"], self.namespace, body=options, _preload_content=False)
