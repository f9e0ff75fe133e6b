"""The lab end to end (issue 6): ``scripts/lab.sh`` (``playbooks/lab.yml`` against ``inventories/lab``).

Real parts: podman containers (nodes, FRR switch, external host), the unchanged site.yml through
the podman connection, the operator, the node agents, the CNI plugin called by the lab kubelets, and
ping between the containers' namespaces. Stand-ins: KMock for kube-apiserver (none can run here), the
lab kubelet for kubelet + container runtime (the operator and agents run as systemd services, the
install role's bare-metal mode).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PODMAN = REPO / "lab" / "scripts" / "podman"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "lab.sh"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def containers(prefix: str) -> list[str]:
    out = subprocess.run(
        [str(PODMAN), "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True
    ).stdout
    return [name for name in out.split() if name.startswith(prefix + "-")]


def in_lab(prefix: str, host: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PODMAN), "exec", f"{prefix}-{host}", *command], capture_output=True, text=True,
                          check=False)


def lab_subnets() -> list[dict]:
    plan = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "all" / "network_plan.yml").read_text())
    return list(plan["hybridlay_subnets"])


NEW_SUBNET = {"name": "rack1-second", "network": "underlay-rack1", "cidr": "192.168.21.0/24", "gateway": "192.168.21.1"}


def day2_add_vlan_subnet(prefix: str, own: list[str]) -> None:
    """playbooks/add_vlan_subnet.yml after a subnet joins the plan: the Subnet object, and its route on
    the rack's switch (FRR, read back with vtysh)."""
    plan = json.dumps({"hybridlay_subnets": [*lab_subnets(), NEW_SUBNET]})
    added = lab("playbooks/add_vlan_subnet.yml", *own, "-e", plan)
    assert added.returncode == 0, added.stdout[-6000:] + added.stderr[-3000:]
    routes = in_lab(prefix, "tor-rack1", "vtysh", "-c", "show running-config").stdout
    assert "ip route 192.168.21.0/24" in routes, routes
    status = subprocess.run(
        [str(REPO / ".venv" / "bin" / "hybridlay"), "--kubeconfig", f"/var/tmp/{prefix}/kubeconfig", "status"],
        capture_output=True, text=True, check=False,
    )
    assert "rack1-second" in status.stdout, status.stdout + status.stderr


def uninstall_removes_everything(prefix: str, own: list[str], api_port: int) -> None:
    """playbooks/uninstall.yml (forced: the lab's pods still hold addresses) removes what site.yml and
    add_vlan_subnet.yml installed: objects, CRDs, services, CNI plugin, switch routes, node settings."""
    plan = json.dumps({"hybridlay_subnets": [*lab_subnets(), NEW_SUBNET]})
    refused = lab("playbooks/uninstall.yml", *own, "-e", plan)
    assert refused.returncode != 0 and "seed_force=true" in refused.stdout, refused.stdout[-3000:]
    removed = lab("playbooks/uninstall.yml", *own, "-e", plan, "-e", "seed_force=true")
    assert removed.returncode == 0, removed.stdout[-6000:] + removed.stderr[-3000:]
    crd_list = f"http://127.0.0.1:{api_port}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    with urllib.request.urlopen(crd_list) as r:
        crds = [c["metadata"]["name"] for c in json.load(r)["items"]]
    assert not [c for c in crds if c.endswith("networking.hybridlay.io")], crds
    for host, unit in (("control-plane", "hybridlay-operator"), ("node1", "hybridlay-agent")):
        assert in_lab(prefix, host, "systemctl", "is-active", unit).stdout.strip() != "active", (host, unit)
        assert in_lab(prefix, host, "test", "-e", f"/etc/systemd/system/{unit}.service").returncode == 1
    for path in ("/etc/cni/net.d/10-hybridlay.conflist", "/opt/cni/bin/hybridlay", "/etc/sysctl.d/90-hybridlay.conf",
                 "/etc/hybridlay"):
        assert in_lab(prefix, "node1", "test", "-e", path).returncode == 1, path
    routes = in_lab(prefix, "tor-rack1", "vtysh", "-c", "show running-config").stdout
    assert "ip route 192.168." not in routes, routes


def test_lab_up_matrix_all_answered_then_down() -> None:
    """lab.yml builds the lab, delivers it with site.yml, every expected matrix cell answers and the
    StatefulSet pod keeps its address; a second run changes nothing (site.yml included); the day-2
    playbook adds a VLAN subnet; uninstall.yml removes what was installed; lab_state=absent removes
    every container and file."""
    prefix = f"hlab-{uuid.uuid4().hex[:6]}"
    state_dir = f"/var/tmp/{prefix}"
    api_port = random.randint(20000, 29999)
    # Its own names, files and API port: a lab someone runs by hand may be up meanwhile.
    own = [
        "-e",
        f"lab_prefix={prefix}",
        "-e",
        f"lab_state_dir={state_dir}",
        "-e",
        f"lab_api_published_port={api_port}",
    ]
    try:
        up = lab(*own)
        assert up.returncode == 0, up.stdout[-6000:] + up.stderr[-3000:]
        assert "0 expected cells failed, 0 wrong source addresses" in up.stdout
        kept = re.search(r"StatefulSet web: web-0 (\S+) on (\S+) → deleted, recreated on (\S+): (\S+) ✓", up.stdout)
        assert kept is not None, up.stdout[-4000:]
        assert kept[1] == kept[4] and kept[2] != kept[3]
        assert "NODES" in up.stdout and "underlay-rack1" in up.stdout  # the summary (hybridlay status)
        # The install role's bare-metal mode: the operator and the agents are systemd services.
        services = (("control-plane", "hybridlay-operator"), ("node1", "hybridlay-agent"), ("node3", "hybridlay-agent"))
        for host, unit in services:
            active = in_lab(prefix, host, "systemctl", "is-active", unit)
            assert active.stdout.strip() == "active", (host, unit, active.stdout, active.stderr)
        again = lab(*own)
        assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-3000:]
        recap = re.findall(r"^(\S+) +: ok=\d+ +changed=(\d+)", again.stdout, re.MULTILINE)
        assert len(recap) == 7 and all(changed == "0" for _, changed in recap), recap
        day2_add_vlan_subnet(prefix, own)
        uninstall_removes_everything(prefix, own, api_port)
    finally:
        down = lab(*own, "-e", "lab_state=absent")
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert containers(prefix) == []
    assert not Path(state_dir).exists()


def test_broken_plan_stops_lab_before_any_container() -> None:
    """Overlapping subnets: lab.yml fails at its plan check, naming the subnet, and makes no container."""
    prefix = f"hlab-{uuid.uuid4().hex[:6]}"
    subnets = [
        {"name": "init", "network": "init", "cidr": "172.24.0.0/16"},
        {"name": "rack1-untagged", "network": "underlay-rack1", "cidr": "192.168.20.0/24", "gateway": "192.168.20.1"},
        {"name": "rack1-more", "network": "underlay-rack1", "cidr": "192.168.20.128/25"},
    ]
    run = lab(
        "-e",
        f"lab_prefix={prefix}",
        "-e",
        f"lab_state_dir=/var/tmp/{prefix}",
        "-e",
        json.dumps({"hybridlay_subnets": subnets}),
    )
    try:
        assert run.returncode != 0
        assert "hybridlay_subnets[2].cidr" in run.stdout and "overlaps" in run.stdout, run.stdout[-4000:]
        assert "TASK [Containers]" not in run.stdout
        assert containers(prefix) == []
        assert not Path(f"/var/tmp/{prefix}").exists()
    finally:
        lab("-e", f"lab_prefix={prefix}", "-e", f"lab_state_dir=/var/tmp/{prefix}", "-e", "lab_state=absent")
