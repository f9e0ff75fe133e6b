"""The lab's workloads and connectivity matrix (the last part of ``playbooks/lab.yml``).

Everything goes through the Kubernetes API, as a user would (``hybridlay_lab.workloads``):

1. the webhooks are called for real: an invalid Subnet and a pod with a bad annotation are refused,
   naming the field;
2. Deployments put a pod of the overlay network on every node and a pod of each underlay network on
   every node of that network (the pod webhook's nodeSelector places them);
3. every pair pings (IPv4, and IPv6 where both ends have an address): from inside the pods (exec
   through the API), from the nodes and from the external host (their containers, ``podman exec``);
   the tables show ✓ with the round trip in ms, ✗ for an expected cell without an answer;
4. the external host reports the source address each pod's request arrived with (SNAT or not);
5. the StatefulSet ``web``: ``web-0`` deleted is made again by the StatefulSet controller with the
   same address; scaled down and up, its pods keep theirs; deleted, its addresses are freed;
6. a pod asking for an underlay network its node is outside of stays Pending, with the event saying why.

Exits 1 if anything expected failed. Traffic only ever runs inside the lab's containers and pods.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import ipaddress
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import kubernetes
from kubernetes.stream import stream

from hybridlay import names
from hybridlay_lab import workloads
from hybridlay_lab.workloads import APP_LABEL, NAMESPACE, STATEFULSET

ApiException = kubernetes.client.ApiException
POLL = 1.0


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One row/column of the matrix: where to ping from and its addresses."""

    name: str
    kind: str  # overlay, underlay, node, external
    addresses: tuple[str, ...]
    container: str | None = None  # a lab container (nodes, external host)
    pod: str | None = None  # a pod (exec through the API)

    def address(self, version: int) -> str | None:
        return next((a for a in self.addresses if ipaddress.ip_address(a).version == version), None)


@dataclasses.dataclass(frozen=True)
class Cell:
    source: str
    target: str
    version: int
    expected: bool
    rtt_ms: float | None  # None: no answer


@dataclasses.dataclass
class Report:
    """What passed and what failed, in order."""

    lines: list[str] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)

    def check(self, ok: bool, text: str) -> bool:
        self.lines.append(f"{'✓' if ok else '✗'} {text}")
        if not ok:
            self.failures.append(text)
        return ok

    def say(self, text: str = "") -> None:
        self.lines.append(text)


def expected(source: Endpoint, target: Endpoint) -> bool:
    """Overlay pods are not routed outside the cluster (their traffic out is masqueraded to the
    node's address), so the external host does not reach them; every other pair must answer."""
    return not (source.kind == "external" and target.kind == "overlay")


# --- pinging ------------------------------------------------------------------------------------------

# "round-trip min/avg/max = a/b/c ms" (busybox), "rtt min/avg/max/mdev = a/b/c/d ms" (iputils): b.
AVERAGE_RTT = "s|.*= [0-9.]*/\\([0-9.]*\\)/.*|\\1|p"


def ping_script(source: Endpoint, targets: Sequence[Endpoint]) -> str:
    """A shell script (busybox or dash) pinging every target address in parallel, one line each:
    ``<source> <target> <version> <average ms | x>``."""
    lines = []
    for target in targets:
        if target.name == source.name:
            continue
        for version in (4, 6):
            address, own = target.address(version), source.address(version)
            if address is None or own is None:
                continue
            six = "-6 " if version == 6 else ""
            lines.append(
                f'( r=$(ping {six}-n -q -c 2 -i 0.2 -W 2 {address} 2>/dev/null | sed -n "{AVERAGE_RTT}");'
                f' echo "{source.name} {target.name} {version} ${{r:-x}}" ) &'
            )
    lines.append("wait")
    return "\n".join(lines)


def parse_pings(output: str, endpoints: Sequence[Endpoint]) -> list[Cell]:
    by_name = {e.name: e for e in endpoints}
    cells = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[0] not in by_name or parts[1] not in by_name:
            continue
        source, target, version, rtt = parts
        rtt_ms = None if rtt == "x" else float(rtt)
        cells.append(Cell(source, target, int(version), expected(by_name[source], by_name[target]), rtt_ms))
    return cells


def render(endpoints: Sequence[Endpoint], cells: Sequence[Cell], version: int) -> str:
    """Rows are sources (numbered, with their address), columns targets (by number): ✓ and the average
    round trip in ms, ✗ for an expected cell without an answer, - for a cell not expected to answer
    (and that did not). Only endpoints with an IPv{version} address take part."""
    shown = [e for e in endpoints if e.address(version)]
    by_pair = {(c.source, c.target): c for c in cells if c.version == version}
    labels = [f"{i:>2} {e.name} {e.address(version)}" for i, e in enumerate(shown, 1)]
    width = max(len(label) for label in labels)
    cell_width = 8
    lines = [f"IPv{version} from \\ to".ljust(width) + "".join(f"{i:>{cell_width}}" for i in range(1, len(shown) + 1))]
    for label, source in zip(labels, shown, strict=True):
        row = label.ljust(width)
        for target in shown:
            cell = by_pair.get((source.name, target.name))
            if cell is None:
                text = "·"
            elif cell.rtt_ms is not None:
                text = f"✓ {cell.rtt_ms:.2f}"
            else:
                text = "✗" if cell.expected else "-"
            row += f"{text:>{cell_width}}"
        lines.append(row)
    return "\n".join(lines)


LEGEND = "✓ answered (average round trip, ms)   ✗ expected, no answer   - not expected (overlay not routed outside)"


class Lab:
    """The lab's API and containers."""

    def __init__(self, kubeconfig: str, podman: str) -> None:
        api = kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        # The lab works on dicts and the client's objects alike: untyped here.
        self.core: Any = kubernetes.client.CoreV1Api(api)
        self.apps: Any = kubernetes.client.AppsV1Api(api)
        self.custom: Any = kubernetes.client.CustomObjectsApi(api)
        # Exec streams upgrade their connection: a client of their own.
        exec_api = kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self.exec_core: Any = kubernetes.client.CoreV1Api(exec_api)
        self.podman = podman

    # --- running things ------------------------------------------------------------------------------

    def in_container(self, container: str, script: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [self.podman, "exec", container, "sh", "-c", script],
            capture_output=True, text=True, check=False, timeout=timeout,
        )  # fmt: skip
        return done.stdout

    def in_pod(self, pod: str, script: str) -> str:
        return str(
            stream(
                self.exec_core.connect_get_namespaced_pod_exec,
                pod,
                NAMESPACE,
                command=["sh", "-c", script],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _request_timeout=120,
            )
        )

    def run(self, endpoint: Endpoint, script: str) -> str:
        if endpoint.pod is not None:
            return self.in_pod(endpoint.pod, script)
        if endpoint.container is None:
            raise ValueError(f"{endpoint.name}: neither a pod nor a container")
        return self.in_container(endpoint.container, script)

    # --- objects -------------------------------------------------------------------------------------

    def apply(self, body: dict[str, Any]) -> None:
        """Create, or replace the spec of what exists (a second run changes nothing that matters)."""
        kind = body["kind"]
        name = body["metadata"]["name"]
        try:
            if kind == "Namespace":
                self.core.create_namespace(body)
            elif kind == "Service":
                self.core.create_namespaced_service(NAMESPACE, body)
            elif kind == "Deployment":
                self.apps.create_namespaced_deployment(NAMESPACE, body)
            elif kind == "StatefulSet":
                self.apps.create_namespaced_stateful_set(NAMESPACE, body)
            elif kind == "Pod":
                self.core.create_namespaced_pod(NAMESPACE, body)
            else:
                raise ValueError(kind)
        except ApiException as e:
            if e.status != 409:
                raise
            if kind == "Deployment":
                self.apps.patch_namespaced_deployment(name, NAMESPACE, {"spec": body["spec"]})
            elif kind == "StatefulSet":
                self.apps.patch_namespaced_stateful_set(
                    name, NAMESPACE, {"spec": {"replicas": body["spec"]["replicas"]}}
                )

    def pods(self, app: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(NAMESPACE, label_selector=f"{APP_LABEL}={app}").items)

    def wait(self, what: str, done: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = done()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:.0f} s")
            time.sleep(POLL)

    def ready_pods(self, app: str, count: int, timeout: float) -> list[Any]:
        """``count`` pods of ``app``, Running and Ready with their addresses, none terminating."""

        def ready() -> list[Any] | None:
            pods = [p for p in self.pods(app) if p.metadata.deletion_timestamp is None]
            good = [p for p in pods if _ready(p) and p.status.pod_ips]
            return good if len(good) == count and len(pods) == count else None

        try:
            return list(self.wait(f"{count} ready pods of {app}", ready, timeout))
        except TimeoutError as e:
            raise TimeoutError(f"{e}; {self.why_not_ready(app)}") from None

    def why_not_ready(self, app: str) -> str:
        """The pods' phases and their latest Warning events, for a failure message."""
        parts = []
        for pod in self.pods(app):
            events = self.core.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.uid={pod.metadata.uid}")
            warnings = [e.message for e in events.items if e.type == "Warning"]
            parts.append(f"{pod.metadata.name} {pod.status.phase}" + (f" ({warnings[-1]})" if warnings else ""))
        return "; ".join(parts) or "no pods"

    def node_names(self, selector: dict[str, str]) -> list[str]:
        label = ",".join(f"{k}={v}" for k, v in selector.items())
        return sorted(n.metadata.name for n in self.core.list_node(label_selector=label).items)

    def networks(self) -> list[dict[str, Any]]:
        return list(self.custom.list_cluster_custom_object(names.GROUP, names.VERSION, "networks")["items"])

    def subnets(self) -> list[dict[str, Any]]:
        return list(self.custom.list_cluster_custom_object(names.GROUP, names.VERSION, "subnets")["items"])

    def ipinstances(self) -> list[dict[str, Any]]:
        return list(self.custom.list_cluster_custom_object(names.GROUP, names.VERSION, "ipinstances")["items"])


def _ready(pod: Any) -> bool:
    conditions = pod.status.conditions or []
    return pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True" for c in conditions)


def addresses_of(pod: Any) -> tuple[str, ...]:
    return tuple(p.ip for p in pod.status.pod_ips or [])


# --- the checks ---------------------------------------------------------------------------------------------


def webhooks_refuse(lab: Lab, report: Report, overlay: str) -> None:
    """The admission webhooks are called by the API server for real, and refuse, naming the field."""
    body = workloads.invalid_subnet(overlay)
    try:
        lab.custom.create_cluster_custom_object(names.GROUP, names.VERSION, "subnets", body)
    except ApiException as e:
        message = _api_message(e)
        report.check("spec.range.gateway" in message, f"invalid Subnet refused: {message}")
    else:
        lab.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, "subnets", body["metadata"]["name"])
        report.check(False, "invalid Subnet (gateway outside its CIDR) was accepted")
    pod = workloads.bad_annotation_pod()
    try:
        lab.core.create_namespaced_pod(NAMESPACE, pod)
    except ApiException as e:
        message = _api_message(e)
        report.check(names.ANNOTATION_IP_FAMILY in message, f"pod with a bad annotation refused: {message}")
    else:
        lab.core.delete_namespaced_pod(pod["metadata"]["name"], NAMESPACE, grace_period_seconds=0)
        report.check(False, "pod with ip-family IPv5 was accepted")


def _api_message(error: ApiException) -> str:
    match = re.search(r'"message":\s*"((?:[^"\\]|\\.)*)"', error.body or "")
    text = match[1].encode().decode("unicode_escape") if match else str(error.reason)
    return f"{error.status} {text}"


def workload_pods(lab: Lab, report: Report, nodes: Sequence[str], timeout: float) -> list[Endpoint]:
    """The overlay Deployment (every node) and one per underlay network (its nodes): their pods."""
    subnets = lab.subnets()
    networks = lab.networks()
    overlay = next((n["metadata"]["name"] for n in networks if n["spec"].get("type") == "Overlay"), None)
    dual = overlay is not None and {
        s["spec"]["range"]["version"] for s in subnets if s["spec"]["network"] == overlay
    } == {"4", "6"}
    wanted: list[tuple[dict[str, Any], int, str]] = []
    if overlay is not None:
        wanted.append((workloads.overlay_deployment(len(nodes), dual), len(nodes), "overlay"))
    for network in networks:
        if network["spec"].get("type") != "Underlay":
            continue
        members = lab.node_names(network["spec"].get("nodeSelector") or {})
        if members:
            wanted.append(
                (workloads.underlay_deployment(network["metadata"]["name"], len(members)), len(members), "underlay")
            )
    for body, _, _ in wanted:
        lab.apply(body)
    endpoints = []
    for body, count, kind in wanted:
        app = body["metadata"]["name"]
        pods = lab.ready_pods(app, count, timeout)
        placed = ", ".join(
            f"{p.spec.node_name} {' '.join(addresses_of(p))}" for p in sorted(pods, key=lambda p: p.spec.node_name)
        )
        report.check(True, f"Deployment {app}: {count} pods ready ({placed})")
        for pod in pods:
            endpoints.append(Endpoint(f"{app}@{pod.spec.node_name}", kind, addresses_of(pod), pod=pod.metadata.name))
    return sorted(endpoints, key=lambda e: e.name)


def measure(lab: Lab, endpoints: Sequence[Endpoint]) -> list[Cell]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(endpoints)) as pool:
        outputs = list(pool.map(lambda s: lab.run(s, ping_script(s, endpoints)), endpoints))
    return [cell for out in outputs for cell in parse_pings(out, endpoints)]


# The external host answers each TCP connection with the source address it saw: the SNAT proof.
SEEN_PORT = 40999
SEEN_SERVER = (
    "import socketserver\n"
    "class H(socketserver.BaseRequestHandler):\n"
    "    def handle(self):\n"
    "        self.request.sendall(self.client_address[0].encode() + b'\\n')\n"
    "socketserver.ThreadingTCPServer.allow_reuse_address = True\n"
    f"socketserver.ThreadingTCPServer(('0.0.0.0', {SEEN_PORT}), H).serve_forever()  # hybridlay-lab-seen\n"
)


def source_addresses(
    lab: Lab, report: Report, pods: Sequence[Endpoint], external: Endpoint, node_address: dict[str, str]
) -> None:
    """Each pod connects to the external host, which answers with the source address it saw: the
    node's for the overlay (its subnet masquerades), the pod's own for an underlay pod."""
    if external.container is None:
        raise ValueError("the external host has no container")
    server = subprocess.Popen(
        [lab.podman, "exec", external.container, "timeout", "120", "python3", "-c", SEEN_SERVER],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1)  # bound before the first request
        ask = f"nc -w 5 {external.address(4)} {SEEN_PORT} </dev/null"
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(pods))) as pool:
            seen = list(pool.map(lambda p: lab.run(p, ask).strip(), pods))
    finally:
        server.terminate()
        lab.in_container(external.container, "pkill -f hybridlay-lab-seen || true")
    for pod, got in zip(pods, seen, strict=True):
        node = pod.name.split("@", 1)[1]
        want = node_address[node] if pod.kind == "overlay" else pod.address(4)
        how = "SNAT to its node" if pod.kind == "overlay" else "no NAT"
        report.check(
            got == want, f"{pod.name} {pod.address(4)} reaches the external host as {got or 'nothing'} ({how})"
        )


def statefulset_keeps_addresses(lab: Lab, report: Report, timeout: float) -> None:
    """The StatefulSet controller's pods keep their addresses; deleting the StatefulSet frees them."""
    lab.apply(workloads.headless_service())
    lab.apply(workloads.statefulset(3))
    first = {
        p.metadata.name: (addresses_of(p), p.spec.node_name, p.metadata.uid)
        for p in lab.ready_pods(STATEFULSET, 3, timeout)
    }
    report.say(
        "StatefulSet web: " + ", ".join(f"{n} {' '.join(a)} on {node}" for n, (a, node, _) in sorted(first.items()))
    )

    lab.core.delete_namespaced_pod("web-0", NAMESPACE)
    again = lab.wait(
        "web-0 made again",
        lambda: next(
            (
                p
                for p in lab.ready_pods(STATEFULSET, 3, timeout)
                if p.metadata.name == "web-0" and p.metadata.uid != first["web-0"][2]
            ),
            None,
        ),
        timeout,
    )
    report.check(
        addresses_of(again) == first["web-0"][0],
        f"web-0 deleted, made again by the StatefulSet controller on {again.spec.node_name}: "
        f"{' '.join(addresses_of(again))} (was {' '.join(first['web-0'][0])} on {first['web-0'][1]})",
    )

    lab.apps.patch_namespaced_stateful_set(STATEFULSET, NAMESPACE, {"spec": {"replicas": 1}})
    lab.ready_pods(STATEFULSET, 1, timeout)
    lab.wait("web-1 and web-2 gone", lambda: {p.metadata.name for p in lab.pods(STATEFULSET)} == {"web-0"}, timeout)
    kept = [i for i in lab.ipinstances() if _bound_to(i) in ((NAMESPACE, "web-1"), (NAMESPACE, "web-2"))]
    report.check(
        len(kept) == 2, f"scaled to 1: the addresses of web-1 and web-2 stay reserved ({len(kept)} IPInstances)"
    )
    lab.apps.patch_namespaced_stateful_set(STATEFULSET, NAMESPACE, {"spec": {"replicas": 3}})
    back = {p.metadata.name: addresses_of(p) for p in lab.ready_pods(STATEFULSET, 3, timeout)}
    same = all(back[n] == first[n][0] for n in ("web-1", "web-2"))
    report.check(
        same,
        "scaled back to 3: "
        + ", ".join(f"{n} {' '.join(back[n])}" for n in ("web-1", "web-2"))
        + (" (kept)" if same else f" (were {first['web-1'][0]}, {first['web-2'][0]})"),
    )

    addresses = {a for n in back for a in back[n]}
    lab.apps.delete_namespaced_stateful_set(STATEFULSET, NAMESPACE)
    lab.wait("web pods gone", lambda: not lab.pods(STATEFULSET), timeout)

    def freed() -> bool:
        return not [i for i in lab.ipinstances() if _instance_address(i) in addresses]

    try:
        lab.wait("web's addresses freed", freed, timeout)
        report.check(True, f"StatefulSet deleted: its addresses are free again ({', '.join(sorted(addresses))})")
    except TimeoutError as e:
        report.check(False, str(e))


def _bound_to(instance: dict[str, Any]) -> tuple[str, str]:
    binding = (instance.get("spec") or {}).get("binding") or {}
    return str(binding.get("podNamespace", "")), str(binding.get("podName", ""))


def _instance_address(instance: dict[str, Any]) -> str:
    return str(((instance.get("spec") or {}).get("address") or {}).get("ip", "")).split("/")[0]


def pending_with_reason(lab: Lab, report: Report, network: str, node: str, timeout: float) -> None:
    """A pod wanting underlay network ``network`` on ``node`` (outside it) stays Pending, saying why."""
    body = workloads.wrong_node_pod(network, node)
    name = body["metadata"]["name"]
    lab.apply(body)
    try:

        def scheduling_event() -> str | None:
            events = lab.core.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={name}").items
            return next((e.message for e in events if e.reason == "FailedScheduling"), None)

        message = lab.wait(f"{name}'s scheduling event", scheduling_event, timeout)
        pod = lab.core.read_namespaced_pod(name, NAMESPACE)
        selector = ", ".join(f"{k}={v}" for k, v in sorted((pod.spec.node_selector or {}).items()))
        report.check(
            pod.status.phase == "Pending" and "node affinity/selector" in message,
            f"pod for {network} pinned to {node} stays {pod.status.phase} (nodeSelector {selector}): {message}",
        )
    finally:
        lab.core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hybridlay_lab.matrix", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--podman", default="podman", help="podman command (the lab's wrapper)")
    p.add_argument("--node", action="append", required=True, help="NAME=CONTAINER=ADDRESS[,ADDRESS6], one per node")
    p.add_argument("--external", required=True, help="CONTAINER=ADDRESS[,ADDRESS6] of the external host")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for pods")
    p.add_argument("--skip", action="append", default=[], choices=["statefulset", "pending", "webhooks"])
    return p.parse_args(argv)


def _endpoint(spec: str, kind: str) -> tuple[str, Endpoint]:
    parts = spec.split("=")
    name, container, addresses = (parts[0], parts[1], parts[2]) if len(parts) == 3 else ("external", parts[0], parts[1])
    return name, Endpoint(name, kind, tuple(a for a in addresses.split(",") if a), container=container)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lab = Lab(args.kubeconfig, args.podman)
    report = Report()
    nodes = dict(_endpoint(n, "node") for n in args.node)
    _, external = _endpoint(args.external, "external")
    lab.apply(workloads.namespace())
    lab.wait("the namespace's default ServiceAccount", lambda: _has_default_account(lab), args.timeout)
    try:
        networks = lab.networks()
        overlay = next((n["metadata"]["name"] for n in networks if n["spec"].get("type") == "Overlay"), "init")
        if "webhooks" not in args.skip:
            webhooks_refuse(lab, report, overlay)
        pods = workload_pods(lab, report, sorted(nodes), args.timeout)
        endpoints = [*pods, *(nodes[n] for n in sorted(nodes)), external]
        cells = measure(lab, endpoints)
        tables = [render(endpoints, cells, v) for v in (4, 6) if sum(1 for e in endpoints if e.address(v)) > 1]
        report.say("\n\n".join(tables))
        report.say(LEGEND)
        failed = [c for c in cells if c.expected and c.rtt_ms is None]
        for c in failed:
            report.check(False, f"{c.source} → {c.target} (IPv{c.version}): no answer")
        answered = sum(c.rtt_ms is not None for c in cells)
        report.say(f"{answered}/{len(cells)} cells answered, {len(failed)} expected cells failed")
        source_addresses(lab, report, pods, external, {n: e.address(4) or "" for n, e in nodes.items()})
        if "statefulset" not in args.skip:
            statefulset_keeps_addresses(lab, report, args.timeout)
        if "pending" not in args.skip:
            underlay = [n for n in networks if n["spec"].get("type") == "Underlay"]
            for network in underlay[:1]:
                members = set(lab.node_names(network["spec"].get("nodeSelector") or {}))
                outside = sorted(set(nodes) - members)
                if outside:
                    pending_with_reason(lab, report, network["metadata"]["name"], outside[0], args.timeout)
    except (TimeoutError, ApiException) as e:
        report.check(False, str(e).strip().splitlines()[0] if str(e).strip() else repr(e))
    print("\n".join(report.lines))
    print(f"{len(report.failures)} checks failed" if report.failures else "every check passed")
    return 1 if report.failures else 0


def _has_default_account(lab: Lab) -> bool:
    try:
        lab.core.read_namespaced_service_account("default", NAMESPACE)
    except ApiException:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
