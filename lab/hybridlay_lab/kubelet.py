"""The lab kubelet: turns the Pod objects bound to one node into network namespaces wired by CNI.

Where a real cluster has kubelets and a container runtime, each lab node runs this: it watches the
pods with ``spec.nodeName == <node>`` and, as a CRI runtime would, gives each one a network
namespace and runs the node's CNI configuration list on it (ADD; DEL in reverse on the way out,
with the cached ADD result as prevResult). No containers run: a pod is its namespace.

- A pod set up: status ``phase: Running``, ``podIP``/``podIPs`` from the CNI result.
- A CNI failure: the half-made sandbox is DELed and its namespace removed, and the pod gets a Warning
  Event ``FailedCreatePodSandBox`` (as a kubelet records it); the pod stays Pending and is retried
  at the next resync.
- A pod deleted (``deletionTimestamp``): DEL, namespace removed, then as a kubelet whose containers
  are gone: status ``phase: Succeeded`` and DELETE with grace period 0. A finalizer (the operator's,
  on stateful pods) keeps the object until its owner removes it; the sandbox is gone either way.
- A pod gone from the API: DEL, namespace removed.
- Start and every ``--resync-seconds``: every pod of the node is compared with the sandboxes on
  record (``--state-dir``); missing namespaces are made, sandboxes of pods that no longer exist are
  DELed and removed, failed set-ups retried.

Only namespaces this kubelet records are ever touched (names ``<--netns-prefix><container id>``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import kubernetes
import urllib3

from hybridlay_lab import cni, pods, runtime
from hybridlay_lab.pods import Action, SandboxRecord

log = logging.getLogger("hybridlay_lab.kubelet")


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubelet:
    def __init__(
        self,
        core: kubernetes.client.CoreV1Api,
        *,
        node: str,
        network: cni.NetworkList,
        runner: runtime.PluginRunner,
        store: runtime.SandboxStore,
        netns_prefix: str,
    ) -> None:
        self.core = core
        self.node = node
        self.network = network
        self.runner = runner
        self.store = store
        self.netns_prefix = netns_prefix
        pods.netns_name(netns_prefix, "0" * 64)  # refuse a prefix too long before any pod is touched

    # --- one pod --------------------------------------------------------------------------------

    def sync(self, pod: Mapping[str, Any]) -> None:
        record = self.store.get(pods.uid_of(pod))
        present = record is not None and runtime.netns_path(record.netns).exists()
        for action in pods.actions(pod, self.node, record, present):
            if action is Action.TEARDOWN and record is not None:
                self.teardown(record)
            elif action is Action.SETUP:
                self.setup(pod)
            elif action is Action.REPORT and record is not None and record.result is not None:
                self._patch_status(record, pods.running_status(record.result, _now()))
            elif action is Action.FINISH:
                self.finish(pod)

    def setup(self, pod: Mapping[str, Any]) -> None:
        record = pods.new_record(pod, self.netns_prefix, self.network.raw)
        self.store.save(record)
        try:
            runtime.add_netns(record.netns)
            result = cni.add(self.runner, self.network, self._attachment(record), self.runner.cni_path)
        except (cni.CNIError, OSError, subprocess.CalledProcessError) as e:
            log.warning("%s: network set-up failed: %s", pods.pod_key(pod), e)
            self.teardown(record)
            self._event(record, _message(e))
            return
        done = dataclasses.replace(record, result=result)
        self.store.save(done)
        log.info("%s: %s up, %s", pods.pod_key(pod), done.netns, ", ".join(cni.result_ips(result)) or "no address")
        self._patch_status(done, pods.running_status(result, _now()))

    def teardown(self, record: SandboxRecord) -> None:
        """DEL, then the namespace goes in any case; the record stays (DEL retried at resync) if DEL failed."""
        network = cni.parse_network_list(json.dumps(record.network), f"sandbox {record.uid}")
        try:
            cni.delete(self.runner, network, self._attachment(record), self.runner.cni_path, record.result)
        except cni.CNIError as e:
            log.warning("%s/%s: DEL failed, retried at the next resync: %s", record.namespace, record.name, e)
            deleted = False
        else:
            deleted = True
        runtime.delete_netns(record.netns)
        if deleted:
            self.store.remove(record.uid)
            log.info("%s/%s: %s removed", record.namespace, record.name, record.netns)

    def finish(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], pods.finished_status(_now()))
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0)
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise

    def forget(self, pod: Mapping[str, Any]) -> None:
        """The pod object is gone from the API."""
        record = self.store.get(pods.uid_of(pod))
        if record is not None:
            self.teardown(record)

    def _attachment(self, record: SandboxRecord) -> cni.Attachment:
        return record.attachment(str(runtime.NETNS_DIR))

    def _patch_status(self, record: SandboxRecord, body: Mapping[str, Any]) -> None:
        try:
            self.core.patch_namespaced_pod_status(record.name, record.namespace, dict(body))
        except kubernetes.client.ApiException as e:
            if e.status != 404:  # deleted meanwhile: its DELETED event follows
                raise

    def _event(self, record: SandboxRecord, message: str) -> None:
        name = f"{record.name}.{time.time_ns():x}"
        event = pods.failure_event(record, self.node, message, _now(), name)
        self.core.create_namespaced_event(record.namespace, cast(Any, event))  # a dict is sent as it is

    # --- the node -------------------------------------------------------------------------------

    def _list(self) -> tuple[list[dict[str, Any]], str | None]:
        # Undecoded: the kubelet works on the objects as the API sends them (camelCase dicts).
        response: Any = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.node}", _preload_content=False, _request_timeout=(5, 60)
        )
        listing = json.loads(response.data)
        return listing.get("items", []), (listing.get("metadata") or {}).get("resourceVersion")

    def resync(self) -> str | None:
        """Every pod of the node against every sandbox on record; the list's resourceVersion."""
        items, version = self._list()
        for pod in items:
            self._logged(self.sync, pod)
        alive = {pods.uid_of(p) for p in items}
        for record in self.store.all():
            if record.uid not in alive:
                self._logged(self.teardown, record)
        return version

    @staticmethod
    def _logged(step: Callable[[Any], None], subject: Any) -> None:
        """One pod's failure (API error, namespace trouble) must not stop the others; resync retries it."""
        try:
            step(subject)
        except (kubernetes.client.ApiException, OSError, subprocess.CalledProcessError) as e:
            who = f"{subject.namespace}/{subject.name}" if isinstance(subject, SandboxRecord) else pods.pod_key(subject)
            log.error("%s: %s", who, _message(e))

    def events(self, version: str | None, seconds: float) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch events for up to ``seconds`` (the server ends the watch, or the read times out)."""
        watch: Any = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + seconds
        try:
            for event in watch.stream(
                self.core.list_pod_for_all_namespaces,
                field_selector=f"spec.nodeName={self.node}",
                resource_version=version,
                timeout_seconds=max(1, int(seconds)),
                _request_timeout=(5, seconds),
            ):
                yield event["type"], event["raw_object"]
                if time.monotonic() > deadline:
                    break
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError):
            return  # an idle watch on a server without watch timeouts: time to resync
        except kubernetes.client.ApiException as e:
            if e.status != 410:
                raise
            return  # the resourceVersion expired: resync lists afresh
        finally:
            watch.stop()

    def run(self, resync_seconds: float) -> None:
        while True:
            try:
                version = self.resync()
                for kind, pod in self.events(version, resync_seconds):
                    if kind == "DELETED":
                        self._logged(self.forget, pod)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._logged(self.sync, pod)
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as e:
                # The API restarting (the lab's control plane coming up) must not end the node's kubelet.
                log.error("API: %s; retrying in %g s", _message(e), resync_seconds)
                time.sleep(resync_seconds)


def _message(error: Exception) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        return f"{' '.join(error.cmd)}: {(error.stderr or b'').decode(errors='replace').strip()}"
    if isinstance(error, kubernetes.client.ApiException):
        return f"API: {error.status} {error.reason}"
    return str(error)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hybridlay-lab-kubelet", description=__doc__.splitlines()[0])
    p.add_argument("--node", required=True, help="the node whose pods this kubelet runs")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG, ~/.kube/config)")
    p.add_argument("--cni-conf-dir", type=Path, default=Path("/etc/cni/net.d"))
    p.add_argument("--cni-conf", type=Path, help="this configuration file instead of the first in --cni-conf-dir")
    p.add_argument("--cni-bin-dir", default="/opt/cni/bin:/usr/lib/cni", help="CNI_PATH: ':'-separated directories")
    p.add_argument("--state-dir", type=Path, help="sandbox records (default /var/lib/hybridlay-lab/kubelet/<node>)")
    p.add_argument("--netns-prefix", default="lab-", help="namespace names: prefix + container id, 15 characters")
    p.add_argument("--resync-seconds", type=float, default=10.0)
    p.add_argument("--plugin-timeout", type=float, default=60.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.node} %(levelname)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings repeat our one API error line
    try:
        network = runtime.load_network(args.cni_conf_dir, args.cni_conf)
        store = runtime.SandboxStore(args.state_dir or Path("/var/lib/hybridlay-lab/kubelet") / args.node)
        client = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
        core = kubernetes.client.CoreV1Api(client)
        runner = runtime.PluginRunner(args.cni_bin_dir, args.plugin_timeout)
        kubelet = Kubelet(
            core, node=args.node, network=network, runner=runner, store=store, netns_prefix=args.netns_prefix
        )
    except (ValueError, OSError, kubernetes.config.ConfigException) as e:
        print(f"hybridlay-lab-kubelet: error: {e}", file=sys.stderr)
        return 1
    log.info(
        "node %s: network %s (%d plugins), CNI_PATH %s", args.node, network.name, len(network.plugins), args.cni_bin_dir
    )
    try:
        kubelet.run(args.resync_seconds)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
