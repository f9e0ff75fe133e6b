"""The lab end to end (issues 6 and 14): ``scripts/lab.sh`` (``playbooks/lab.yml`` against
``inventories/lab``).

Real parts, all of them: podman containers (nodes, FRR switch, control plane, external host); etcd,
kube-apiserver, kube-controller-manager and kube-scheduler (``HYBRIDLAY_KUBE_BINARIES``); containerd
and kubelet on every node; the unchanged site.yml through the podman connection, installing the
operator Deployment and the agent DaemonSet from the Containerfile's image (or, in the systemd
variant, host services); the CNI plugin called by containerd; workloads created through the API;
ping between real pods. Each test uses its own container names, files and published port, so a lab
someone runs by hand may be up meanwhile.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PODMAN = REPO / "lab" / "scripts" / "podman"
NODES = ("node1", "node2", "node3")
# The goal of issue 14: the lab up in at most 6 minutes on 2 cores with the images built.
UP_GOAL_SECONDS = 360
# Tasks of a second lab up that may change something: hybridlay's image is rebuilt when its sources
# changed meanwhile (other work on the same checkout), then imported and its pods restarted.
IMAGE_TASKS = (
    "The image of hybridlay (Containerfile)",
    "Its archive for the nodes (saved once per build of the image)",
    "Images in containerd (nothing is pulled)",
    "Restart hybridlay's pods on a new image",
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


def lab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "lab.sh"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=1500, check=False, env=env,
    )  # fmt: skip


def tail(run: subprocess.CompletedProcess[str]) -> str:
    return run.stdout[-8000:] + run.stderr[-3000:]


def containers(prefix: str) -> list[str]:
    out = subprocess.run([str(PODMAN), "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return [name for name in out.split() if name.startswith(prefix + "-")]


def volumes(prefix: str) -> list[str]:
    out = subprocess.run([str(PODMAN), "volume", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return [name for name in out.split() if name.startswith(prefix + "-")]


def in_lab(prefix: str, host: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PODMAN), "exec", f"{prefix}-{host}", *command], capture_output=True, text=True,
                          check=False)  # fmt: skip


def free_port() -> int:
    while True:
        port = random.randint(20000, 29999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class Lab:
    """One test's lab: its names, files and port."""

    def __init__(self, mode: str = "kubernetes") -> None:
        self.prefix = f"hlab-{uuid.uuid4().hex[:6]}"
        self.state_dir = Path(f"/var/tmp/{self.prefix}")
        self.port = free_port()
        self.args = ["-e", f"lab_prefix={self.prefix}", "-e", f"lab_state_dir={self.state_dir}",
                     "-e", f"lab_api_published_port={self.port}", "-e", f"lab_install_mode={mode}"]  # fmt: skip

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """lab.sh [PLAYBOOK] with this lab's settings and ``args``."""
        playbook = [a for a in args[:1] if a.endswith(".yml")]
        return lab(*playbook, *self.args, *args[len(playbook) :], env=env)

    def on(self, host: str, *command: str) -> subprocess.CompletedProcess[str]:
        return in_lab(self.prefix, host, *command)

    def api(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=str(self.state_dir / "kubeconfig"))

    def down(self) -> None:
        down = self.run("-e", "lab_state=absent")
        assert down.returncode == 0, tail(down)
        assert containers(self.prefix) == []
        assert volumes(self.prefix) == []
        assert not self.state_dir.exists()


@pytest.fixture
def kube_lab() -> Iterator[Lab]:
    made = Lab()
    try:
        yield made
    finally:
        made.down()


def lab_subnets() -> list[dict]:
    plan = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "all" / "network_plan.yml").read_text())
    return list(plan["hybridlay_subnets"])


NEW_SUBNET = {"name": "rack1-second", "network": "underlay-rack1", "cidr": "192.168.21.0/24", "gateway": "192.168.21.1"}


def matrix_passed(out: str) -> None:
    assert "every check passed" in out, out[-8000:]
    assert re.search(r"✓ invalid Subnet refused: 4\d\d .*spec\.range\.gateway", out), out[-8000:]
    assert re.search(r"✓ pod with a bad annotation refused: 4\d\d .*networking\.hybridlay\.io/ip-family", out)
    assert re.search(r"✓ web-0 deleted, made again by the StatefulSet controller on \S+: (\S+) \(was \1 on", out)
    assert "✓ scaled back to 3" in out and "✓ StatefulSet deleted: its addresses are free again" in out
    assert re.search(r"✓ pod for underlay-rack1 pinned to node3 stays Pending .*node affinity/selector", out)
    assert re.search(r"✓ overlay@node1 \S+ reaches the external host as 10\.10\.1\.11 \(SNAT", out)
    # The BGP rack: node3's pod announced to tor-rack2, reached from everywhere without NAT.
    assert re.search(r"✓ underlay-rack2@node3 (192\.168\.30\.\d+) reaches the external host as \1 \(no NAT", out)
    # The dual-stack overlay's IPv6 pairs, between pods and with the nodes.
    six = re.search(r"IPv6 from \\ to.*?\n((?: *\d+ .*\n)+)", out)
    assert six is not None and len(six[1].splitlines()) == 6 and "✗" not in six[1], out[-8000:]
    assert "0 expected cells failed" in out
    assert "NODES" in out and "underlay-rack1" in out  # the summary (hybridlay status)


def cluster_is_a_cluster(made: Lab) -> None:
    """Real Nodes, Ready, registered by their kubelets; the control plane's and nodes' units; the
    operator and agent as pods; the CNI plugin installed by the DaemonSet's init container."""
    core = kubernetes.client.CoreV1Api(made.api())
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert sorted(nodes) == list(NODES)
    for node in nodes.values():
        ready = [c.status for c in node.status.conditions if c.type == "Ready"]
        assert ready == ["True"], node.status.conditions
        assert node.status.node_info.container_runtime_version.startswith("containerd://")
    pods = core.list_namespaced_pod("hybridlay-system").items
    running = sorted((p.metadata.labels["app.kubernetes.io/component"], p.status.phase) for p in pods)
    assert running == [("agent", "Running")] * 3 + [("operator", "Running")] * 2, running
    for unit in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert made.on("control-plane", "systemctl", "is-active", unit).stdout.strip() == "active", unit
    for unit in ("containerd", "kubelet"):
        assert made.on("node3", "systemctl", "is-active", unit).stdout.strip() == "active", unit
    bgp = made.on("tor-rack1", "ip", "route", "show", "192.168.30.0/24").stdout
    assert "proto bgp" in bgp, bgp  # learned from tor-rack2, which node3 told
    conflist = made.on("node2", "cat", "/etc/cni/net.d/10-hybridlay.conflist")
    assert json.loads(conflist.stdout)["plugins"][0]["type"] == "hybridlay"
    assert made.on("node2", "readlink", "/opt/cni/bin/hybridlay").stdout.strip() == "/opt/hybridlay/cni/hybridlay"
    # Installed by the agent's init container: the lab tells the install role not to copy it.
    logs = core.read_namespaced_pod_log(
        next(p.metadata.name for p in pods if p.spec.node_name == "node2" and "agent" in p.metadata.name),
        "hybridlay-system", container="install-cni",
    )  # fmt: skip
    assert "cni_install:" in logs, logs


def second_run_changes_nothing(made: Lab) -> None:
    again = made.run(env={**_env(), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    assert again.returncode == 0, tail(again)
    out = json.loads(again.stdout[again.stdout.index("{") : again.stdout.rindex("}") + 1])
    changed = sorted({
        task["task"]["name"] for play in out["plays"] for task in play["tasks"]
        for result in task["hosts"].values() if result.get("changed")
    } - set(IMAGE_TASKS))  # fmt: skip
    assert changed == [], changed


def _env() -> dict[str, str]:
    return dict(os.environ)


def day2_add_vlan_subnet(made: Lab) -> None:
    """playbooks/add_vlan_subnet.yml after a subnet joins the plan: the Subnet object and its route on
    the rack's switch; with its gateway on the switch (lab/README.md), a pod gets an address there."""
    plan = json.dumps({"hybridlay_subnets": [*lab_subnets(), NEW_SUBNET]})
    added = made.run("playbooks/add_vlan_subnet.yml", "-e", plan)
    assert added.returncode == 0, tail(added)
    routes = made.on("tor-rack1", "vtysh", "-c", "show running-config").stdout
    assert "ip route 192.168.21.0/24" in routes, routes
    status = subprocess.run([str(REPO / "lab" / "scripts" / "hybridlay"), "status"], capture_output=True, text=True,
                            check=False, env={**_env(), "HYBRIDLAY_LAB_STATE_DIR": str(made.state_dir)})  # fmt: skip
    assert "rack1-second" in status.stdout, status.stdout + status.stderr
    assert made.on("tor-rack1", "ip", "addr", "add", "192.168.21.1/24", "dev", "vlan0").returncode == 0
    core = kubernetes.client.CoreV1Api(made.api())
    core.create_namespaced_pod("hybridlay-lab", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "second-subnet",
                     "annotations": {"networking.hybridlay.io/specified-subnet": "rack1-second"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": "localhost/hybridlay-lab/busybox:1", "imagePullPolicy": "Never",
            "command": ["sleep", "infinity"]}]},
    })  # fmt: skip
    deadline = time.monotonic() + 180
    while True:
        pod = core.read_namespaced_pod("second-subnet", "hybridlay-lab")
        if pod.status.phase == "Running" and pod.status.pod_ip:
            break
        assert time.monotonic() < deadline, pod.status
        time.sleep(2)
    assert pod.status.pod_ip.startswith("192.168.21."), pod.status.pod_ip
    assert pod.spec.node_name in ("node1", "node2")


def uninstall_removes_everything(made: Lab) -> None:
    """playbooks/uninstall.yml refuses while pods hold hybridlay addresses, naming them; once the lab's
    workloads are deleted it removes what site.yml and add_vlan_subnet.yml installed: objects, CRDs,
    the operator and agent, the CNI plugin, switch routes."""
    plan = json.dumps({"hybridlay_subnets": [*lab_subnets(), NEW_SUBNET]})
    refused = made.run("playbooks/uninstall.yml", "-e", plan)
    assert refused.returncode != 0 and "seed_force=true" in refused.stdout, tail(refused)
    assert "hybridlay-lab/second-subnet" in refused.stdout, tail(refused)
    core = kubernetes.client.CoreV1Api(made.api())
    core.delete_namespace("hybridlay-lab")
    deadline = time.monotonic() + 180
    while [n for n in core.list_namespace().items if n.metadata.name == "hybridlay-lab"]:
        assert time.monotonic() < deadline, "namespace hybridlay-lab not gone"
        time.sleep(2)
    removed = made.run("playbooks/uninstall.yml", "-e", plan)
    assert removed.returncode == 0, tail(removed)
    api = made.api()
    crds = kubernetes.client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    assert not [c.metadata.name for c in crds if c.metadata.name.endswith("networking.hybridlay.io")]
    apps = kubernetes.client.AppsV1Api(api)
    assert not apps.list_namespaced_daemon_set("hybridlay-system").items
    assert not apps.list_namespaced_deployment("hybridlay-system").items
    annotations = kubernetes.client.CoreV1Api(api).read_node("node1").metadata.annotations
    assert not [a for a in annotations if a.startswith("networking.hybridlay.io/")], annotations
    for path in ("/etc/cni/net.d/10-hybridlay.conflist", "/opt/cni/bin/hybridlay", "/opt/hybridlay/cni",
                 "/etc/sysctl.d/90-hybridlay.conf", "/etc/hybridlay"):  # fmt: skip
        assert made.on("node1", "test", "-e", path).returncode == 1, path
    routes = made.on("tor-rack1", "vtysh", "-c", "show running-config").stdout
    assert "ip route 192.168." not in routes, routes


def test_lab_up_matrix_statefulset_webhooks_day2_uninstall_down(kube_lab: Lab) -> None:
    """lab.yml makes the cluster, delivers hybridlay with site.yml (kubernetes mode) and every check of
    the matrix passes, within the goal; a second run changes nothing; day 2; uninstall; down."""
    started = time.monotonic()
    up = kube_lab.run()
    took = time.monotonic() - started
    assert up.returncode == 0, tail(up)
    matrix_passed(up.stdout)
    print(f"lab up took {took:.0f} s (goal {UP_GOAL_SECONDS} s)")
    assert took <= UP_GOAL_SECONDS * 1.5, f"lab up took {took:.0f} s"  # a loaded machine gets some slack
    cluster_is_a_cluster(kube_lab)
    second_run_changes_nothing(kube_lab)
    day2_add_vlan_subnet(kube_lab)
    uninstall_removes_everything(kube_lab)


def test_systemd_variant() -> None:
    """lab_install_mode=systemd: the operator and the agents as host services (the bare-metal mode),
    the same checks passing, on the same real cluster."""
    made = Lab("systemd")
    try:
        up = made.run()
        assert up.returncode == 0, tail(up)
        matrix_passed(up.stdout)
        for host, unit in (("control-plane", "hybridlay-operator"), ("node1", "hybridlay-agent"),
                           ("node3", "hybridlay-agent")):  # fmt: skip
            active = made.on(host, "systemctl", "is-active", unit)
            assert active.stdout.strip() == "active", (host, unit, active.stdout, active.stderr)
        apps = kubernetes.client.AppsV1Api(made.api())
        assert not apps.list_namespaced_daemon_set("hybridlay-system").items
    finally:
        made.down()


def test_broken_plan_stops_lab_before_any_container() -> None:
    """Overlapping subnets: lab.yml fails at its plan check, naming the subnet, and makes no container."""
    made = Lab()
    subnets = [
        {"name": "init", "network": "init", "cidr": "172.24.0.0/16"},
        {"name": "rack1-untagged", "network": "underlay-rack1", "cidr": "192.168.20.0/24", "gateway": "192.168.20.1"},
        {"name": "rack1-more", "network": "underlay-rack1", "cidr": "192.168.20.128/25"},
    ]
    run = made.run("-e", json.dumps({"hybridlay_subnets": subnets}))
    try:
        assert run.returncode != 0
        assert "hybridlay_subnets[2].cidr" in run.stdout and "overlaps" in run.stdout, run.stdout[-4000:]
        assert "TASK [Containers]" not in run.stdout
        assert containers(made.prefix) == []
        assert not made.state_dir.exists()
    finally:
        made.down()


def test_taken_port_stops_lab_before_anything_naming_the_setting() -> None:
    made = Lab()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", made.port))
        holder.listen()
        run = made.run()
    try:
        assert run.returncode != 0
        assert f"127.0.0.1:{made.port} is already in use" in run.stdout, run.stdout[-4000:]
        assert "-e lab_api_published_port=PORT" in run.stdout
        assert "TASK [Containers]" not in run.stdout and "TASK [Images]" not in run.stdout
        assert containers(made.prefix) == []
    finally:
        made.down()
