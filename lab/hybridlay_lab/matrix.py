"""The lab's workloads and connectivity matrix (the last part of ``playbooks/lab.yml``).

Creates Pod objects in the API as a user would (overlay pods on every node, underlay pods on the
nodes of an underlay network; the lab kubelets wire them through the real CNI plugin), waits for
their addresses, then pings every cell from inside the lab's containers: pods (their namespaces),
nodes and the external host, to pods, nodes and the external host. Prints the matrix with ✓/✗
and round-trip times, then the StatefulSet check: a stateful pod deleted and recreated on another
node keeps its address. Exits 1 if an expected cell fails or the address moved.

Traffic only ever runs inside the lab's containers (``podman exec``), never from this machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import kubernetes

from hybridlay import names

NAMESPACE = "default"
LABEL = "hybridlay-lab/matrix"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One row/column of the matrix: where to ping from (container, namespace) and its address."""

    name: str
    kind: str  # overlay, underlay, node, external
    container: str
    netns: str | None  # None: the container's own namespace
    address: str


@dataclasses.dataclass(frozen=True)
class Cell:
    source: str
    target: str
    expected: bool
    rtt_ms: float | None  # None: no answer


def expected(source: Endpoint, target: Endpoint) -> bool:
    """Which cells must answer. Overlay pods are not routed outside the cluster (their traffic out is
    masqueraded to the node's address), so the external host cannot reach them; all else must."""
    return not (source.kind == "external" and target.kind == "overlay")


def pod_body(name: str, node: str, network_type: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "labels": {LABEL: "true"},
        "annotations": {names.ANNOTATION_NETWORK_TYPE: network_type},
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "lab"}]},
    }


def wait_for_addresses(core: Any, pod_names: Sequence[str], timeout: float) -> dict[str, str]:
    """Pod name → address once every pod is Running with an address."""
    deadline = time.monotonic() + timeout
    addresses: dict[str, str] = {}
    while time.monotonic() < deadline:
        for name in pod_names:
            pod = core.read_namespaced_pod(name, NAMESPACE)
            if pod.status is not None and pod.status.phase == "Running" and pod.status.pod_ip:
                addresses[name] = pod.status.pod_ip
        if len(addresses) == len(pod_names):
            return addresses
        time.sleep(1)
    missing = sorted(set(pod_names) - set(addresses))
    raise SystemExit(f"pods without an address after {timeout:.0f} s: {', '.join(missing)}")


def exec_in(podman: str, container: str, script: str) -> str:
    return subprocess.run(
        [podman, "exec", container, "sh", "-c", script], capture_output=True, text=True, check=False, timeout=300
    ).stdout


def pod_namespaces(podman: str, container: str) -> dict[str, str]:
    """Address → network namespace of the pods the container's lab kubelet made."""
    script = 'for ns in $(ip netns list | cut -d" " -f1); do echo "netns $ns"; ip -n "$ns" -o -4 addr show; done'
    out = exec_in(podman, container, script)
    found: dict[str, str] = {}
    netns = ""
    for line in out.splitlines():
        if line.startswith("netns "):
            netns = line.split()[1]
        for address in re.findall(r"inet (\S+)/", line):
            if not address.startswith("127."):
                found[address] = netns
    return found


def ping_script(sources: Sequence[Endpoint], targets: Sequence[Endpoint]) -> str:
    """One shell script per container: every (source, target) ping in parallel, one result line each."""
    average_rtt = "s|.*= [0-9.]*/\\([0-9.]*\\)/.*|\\1|p"  # rtt min/avg/max/mdev = a/b/c/d ms → b
    lines = []
    for s in sources:
        prefix = f"ip netns exec {s.netns} " if s.netns else ""
        for t in targets:
            if s.name != t.name:
                lines.append(
                    f'( r=$({prefix}ping -n -q -c 2 -i 0.2 -W 2 {t.address} | sed -n "{average_rtt}");'
                    f' echo "{s.name} {t.name} ${{r:-x}}" ) &'
                )
    lines.append("wait")
    return "\n".join(lines)


def measure(podman: str, endpoints: Sequence[Endpoint]) -> list[Cell]:
    by_container: dict[str, list[Endpoint]] = {}
    for e in endpoints:
        by_container.setdefault(e.container, []).append(e)
    kinds = {e.name: e for e in endpoints}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(by_container)) as pool:
        outputs = pool.map(lambda c: exec_in(podman, c, ping_script(by_container[c], endpoints)), by_container)
    cells = []
    for out in outputs:
        for line in out.splitlines():
            source, target, rtt = line.split()
            cells.append(
                Cell(source, target, expected(kinds[source], kinds[target]), None if rtt == "x" else float(rtt))
            )
    return cells


# The external host answers each UDP datagram with the source address it saw: the SNAT cell's proof.
SEEN_PORT = 40999
SEEN_SERVER = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    f"s.bind(('0.0.0.0', {SEEN_PORT}))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(64)\n"
    "    s.sendto(peer[0].encode(), peer)\n"
)
SEEN_CLIENT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.settimeout(1)\n"
    "for _ in range(3):\n"
    "    s.sendto(b'?', (sys.argv[1], int(sys.argv[2])))\n"
    "    try:\n"
    "        print(s.recv(64).decode()); break\n"
    "    except OSError:\n"
    "        pass\n"
)


@dataclasses.dataclass(frozen=True)
class Seen:
    """A pod's traffic to the external host: the source address that arrived there, and the one
    that should (the node's address when the subnet masquerades, else the pod's own)."""

    pod: Endpoint
    seen: str | None
    wanted: str

    @property
    def ok(self) -> bool:
        return self.seen == self.wanted


def seen_by_external(podman: str, pods: Sequence[Endpoint], external: Endpoint, wanted: dict[str, str]) -> list[Seen]:
    """Each pod sends a datagram to the external host, which answers with the source address it saw."""
    server = subprocess.Popen(
        [podman, "exec", external.container, "timeout", "120", "python3", "-c", SEEN_SERVER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)  # the server binds before the first datagram
        results = []
        for pod in pods:
            command = f"ip netns exec {pod.netns} python3 -c \"$0\" {external.address} {SEEN_PORT}"
            out = subprocess.run(
                [podman, "exec", pod.container, "sh", "-c", command, SEEN_CLIENT],
                capture_output=True, text=True, check=False, timeout=60,
            ).stdout.strip()
            results.append(Seen(pod, out or None, wanted[pod.name]))
        return results
    finally:
        server.terminate()
        subprocess.run([podman, "exec", external.container, "pkill", "-f", f"bind\\(\\('0.0.0.0', {SEEN_PORT}"],
                       capture_output=True, check=False)


def render_seen(seen: Sequence[Seen]) -> str:
    lines = ["Source address the external host sees (SNAT: the node's address; no NAT: the pod's own):"]
    for s in seen:
        how = "SNAT" if s.wanted != s.pod.address else "no NAT"
        mark = "✓" if s.ok else f"✗ (wanted {s.wanted})"
        lines.append(f"  {s.pod.name} {s.pod.address} → {s.seen or 'no answer'}  {how} {mark}")
    return "\n".join(lines)


def render(endpoints: Sequence[Endpoint], cells: Sequence[Cell]) -> str:
    """Rows are sources, columns targets: ✓ and the average round trip in ms, ✗ for a failed expected
    cell, - for a cell not expected to answer (and that did not)."""
    by_pair = {(c.source, c.target): c for c in cells}
    width = max(11, *(len(e.name) for e in endpoints))
    header = "from \\ to".ljust(width) + "".join(e.name.rjust(width + 1) for e in endpoints)
    rows = [header]
    for s in endpoints:
        row = f"{s.name:<{width}}"
        for t in endpoints:
            cell = by_pair.get((s.name, t.name))
            if cell is None:
                text = "·"
            elif cell.rtt_ms is not None:
                text = f"✓ {cell.rtt_ms:.2f}"
            else:
                text = "✗" if cell.expected else "-"
            row += text.rjust(width + 1)
        rows.append(row)
    legend = "✓ answered (average round trip, ms)   ✗ expected, no answer   - not expected (overlay not routed outside)"
    return "\n".join([*rows, legend])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hybridlay_lab.matrix", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--podman", default="podman", help="podman command (the lab's wrapper)")
    p.add_argument("--node", action="append", required=True, help="NAME=CONTAINER=ADDRESS, one per node")
    p.add_argument("--underlay-node", action="append", default=[], help="a node in an underlay network")
    p.add_argument("--external", required=True, help="CONTAINER=ADDRESS of the external host")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the pods' addresses")
    return p.parse_args(argv)


def ensure_pod(core: Any, body: dict[str, Any]) -> None:
    try:
        core.create_namespaced_pod(NAMESPACE, body)
    except kubernetes.client.ApiException as e:
        if e.status != 409:
            raise


def delete_pod(core: Any, name: str, timeout: float) -> None:
    core.delete_namespaced_pod(name, NAMESPACE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_pod(name, NAMESPACE)
        except kubernetes.client.ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(0.5)
    raise SystemExit(f"pod {name} still there {timeout:.0f} s after its deletion")


def statefulset_check(core: Any, apps: Any, nodes: Sequence[str], timeout: float) -> bool:
    """A StatefulSet's pod deleted and recreated (as its controller would) on another node keeps its address.
    The lab has no controller manager: the lab makes the StatefulSet's pods itself."""
    try:
        apps.create_namespaced_stateful_set(
            NAMESPACE,
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "web", "namespace": NAMESPACE},
                "spec": {
                    "replicas": 3,
                    "serviceName": "web",
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "main", "image": "lab"}]},
                    },
                },
            },
        )
    except kubernetes.client.ApiException as e:
        if e.status != 409:
            raise
    sts = apps.read_namespaced_stateful_set("web", NAMESPACE)
    owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": sts.metadata.uid, "controller": True}
    replicas = [f"web-{i}" for i in range(3)]
    for i, name in enumerate(replicas):
        ensure_pod(core, pod_body(name, nodes[i % len(nodes)], "Overlay", owner))
    before = wait_for_addresses(core, replicas, timeout)
    moved_from = core.read_namespaced_pod("web-0", NAMESPACE).spec.node_name
    moved_to = next(n for n in nodes if n != moved_from)
    delete_pod(core, "web-0", timeout)
    ensure_pod(core, pod_body("web-0", moved_to, "Overlay", owner))
    after = wait_for_addresses(core, ["web-0"], timeout)
    kept = after["web-0"] == before["web-0"]
    mark = "✓" if kept else "✗"
    print(
        f"StatefulSet web: web-0 {before['web-0']} on {moved_from} → deleted, recreated on {moved_to}: "
        f"{after['web-0']} {mark}"
    )
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kubernetes.config.load_kube_config(args.kubeconfig)  # type: ignore[no-untyped-call]
    core = kubernetes.client.CoreV1Api()
    apps = kubernetes.client.AppsV1Api()
    nodes = [tuple(n.split("=")) for n in args.node]
    container_of = {name: container for name, container, _ in nodes}
    wanted = [(f"overlay-{name}", name, "Overlay") for name, _, _ in nodes]
    wanted += [(f"underlay-{name}", name, "Underlay") for name in args.underlay_node]
    for pod_name, node, network_type in wanted:
        ensure_pod(core, pod_body(pod_name, node, network_type))
    addresses = wait_for_addresses(core, [w[0] for w in wanted], args.timeout)

    namespaces: dict[str, dict[str, str]] = {}
    endpoints: list[Endpoint] = []
    for pod_name, node, network_type in wanted:
        container = container_of[node]
        if container not in namespaces:
            namespaces[container] = pod_namespaces(args.podman, container)
        netns = namespaces[container].get(addresses[pod_name])
        if netns is None:
            raise SystemExit(f"pod {pod_name}: no namespace with {addresses[pod_name]} on {node}")
        endpoints.append(Endpoint(pod_name, network_type.lower(), container, netns, addresses[pod_name]))
    endpoints += [Endpoint(name, "node", container, None, address) for name, container, address in nodes]
    ext_container, ext_address = args.external.split("=")
    endpoints.append(Endpoint("external", "external", ext_container, None, ext_address))

    cells = measure(args.podman, endpoints)
    print(render(endpoints, cells))
    failed = [c for c in cells if c.expected and c.rtt_ms is None]
    for c in failed:
        print(f"✗ {c.source} → {c.target}: no answer", file=sys.stderr)
    node_address = {name: address for name, _, address in nodes}
    # Overlay pods leave masqueraded to their node's address (the lab's overlay subnet has
    # autoNatOutgoing); underlay pods are routed by the switch as they are.
    wanted_source = {
        pod_name: node_address[node] if network_type == "Overlay" else addresses[pod_name]
        for pod_name, node, network_type in wanted
    }
    seen = seen_by_external(args.podman, [e for e in endpoints if e.kind in ("overlay", "underlay")],
                            endpoints[-1], wanted_source)
    print(render_seen(seen))
    kept = statefulset_check(core, apps, [n[0] for n in nodes], args.timeout)
    answered = sum(c.rtt_ms is not None for c in cells)
    wrong_source = sum(not s.ok for s in seen)
    print(f"{answered}/{len(cells)} cells answered, {len(failed)} expected cells failed, "
          f"{wrong_source} wrong source addresses")
    return 1 if failed or wrong_source or not kept else 0


if __name__ == "__main__":
    sys.exit(main())
