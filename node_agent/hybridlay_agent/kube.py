"""The agent's Kubernetes edge: list+watch of our four kinds, the node's labels, its NodeInfo, and a
pod's IP family for the CNI server (:meth:`ClusterView.pod_addresses`; needs ``get`` on pods).

The official client is synchronous; each watch runs on its own thread and hands events to the
event loop. A watch that ends or fails is followed by a fresh list (which replaces the view's
objects of that kind), so a missed event is repaired at the latest by the next relist.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, cast

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from hybridlay import names
from hybridlay.model import IPFamily, NodeInfo, nodeinfo_to_resource
from hybridlay_agent.settings import Settings
from hybridlay_agent.view import KINDS, ClusterView

log = logging.getLogger(__name__)
WATCH_SECONDS = 300
RETRY_SECONDS = 2.0


def api_client(settings: Settings) -> client.ApiClient:
    if settings.kubeconfig is not None:
        api: client.ApiClient = config.new_client_from_config(config_file=str(settings.kubeconfig))  # type: ignore[no-untyped-call]
        return api
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def read_node_annotations(settings: Settings, timeout: float = 60.0) -> dict[str, str]:
    """This node's Node annotations (``{}`` while it is not registered), read once at start; retried
    while the API does not answer, up to ``timeout`` seconds."""
    core = client.CoreV1Api(api_client(settings))
    deadline = time.monotonic() + timeout
    while True:
        try:
            node = core.read_node(settings.node_name)
        except ApiException as e:
            if e.status == 404:
                return {}
            error: Exception = e
        except Exception as e:  # the API not up yet (connection refused, TLS, timeout)
            error = e
        else:
            return dict((node.metadata.annotations if node.metadata else None) or {})
        if time.monotonic() > deadline:
            raise SystemExit(f"cannot read Node {settings.node_name}: {error}")
        log.warning("reading Node %s failed (%s); again in %.0f s", settings.node_name, error, RETRY_SECONDS)
        time.sleep(RETRY_SECONDS)


class Kube:
    def __init__(self, settings: Settings, view: ClusterView, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.view = view
        self.loop = loop
        self.api = api_client(settings)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self._stop = threading.Event()
        self._watches: list[watch.Watch] = []
        view.pod_family = self.pod_ip_family

    def start(self) -> None:
        for kind in KINDS:
            threading.Thread(target=self._watch_forever, args=(kind,), name=f"watch-{kind}", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for w in list(self._watches):
            w.stop()  # type: ignore[no-untyped-call]

    def _deliver(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def _watch_forever(self, kind: str) -> None:
        while not self._stop.is_set():
            try:
                listed = cast(dict[str, Any], self.custom.list_cluster_custom_object(names.GROUP, names.VERSION, kind))
                self._deliver(self.view.replace(kind, listed.get("items", [])))
                version = (listed.get("metadata") or {}).get("resourceVersion")
                w = watch.Watch()  # type: ignore[no-untyped-call]
                self._watches.append(w)
                try:
                    for event in w.stream(  # type: ignore[no-untyped-call]
                        self.custom.list_cluster_custom_object,
                        names.GROUP,
                        names.VERSION,
                        kind,
                        resource_version=version,
                        timeout_seconds=WATCH_SECONDS,
                    ):
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            self._deliver(self.view.apply(kind, event["type"], event["object"]))
                finally:
                    self._watches.remove(w)
            except Exception as e:  # the API may be down for a while: retry, never die
                if self._stop.is_set():
                    return
                log.warning("watch of %s failed (%s); listing again in %.0f s", kind, e, RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)

    def node_labels(self) -> dict[str, str]:
        try:
            node = self.core.read_node(self.settings.node_name)
        except ApiException as e:
            if e.status == 404:
                return {}
            raise
        return dict((node.metadata.labels if node.metadata else None) or {})

    async def pod_ip_family(self, namespace: str, pod: str) -> IPFamily | None:
        """The pod's ``ip-family`` annotation as the webhook resolved it; None when it cannot be read."""
        try:
            found = await asyncio.to_thread(self.core.read_namespaced_pod, pod, namespace)
            value = ((found.metadata.annotations if found.metadata else None) or {}).get(names.ANNOTATION_IP_FAMILY)
            return IPFamily(value) if value is not None else None
        except Exception as e:  # an unknown family only means "no second address to wait for"
            log.warning("cannot read the IP family of pod %s/%s (%s)", namespace, pod, e)
            return None

    def publish_nodeinfo(self, info: NodeInfo) -> None:
        """Create or update this node's NodeInfo (spec only)."""
        body = nodeinfo_to_resource(info)
        try:
            current = cast(
                dict[str, Any],
                self.custom.get_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL_NODEINFO, info.name),
            )
        except ApiException as e:
            if e.status != 404:
                raise
            self.custom.create_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL_NODEINFO, body)
            return
        if current.get("spec") != body["spec"]:
            self.custom.patch_cluster_custom_object(
                names.GROUP, names.VERSION, names.PLURAL_NODEINFO, info.name, {"spec": body["spec"]}
            )
