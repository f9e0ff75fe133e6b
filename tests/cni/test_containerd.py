"""A real runtime: containerd 1.6 + runc start a container whose network is hybridlay's, chained
with the reference ``bandwidth`` and ``portmap`` plugins (Debian's containernetworking-plugins).

containerd runs with its own config, root and state; the image is a busybox-static OCI archive
written by the test. ``ctr run --cni`` reads CNI configs from /etc/cni/net.d and plugins from
/usr/lib/cni (fixed paths in Debian's ctr), so ctr runs in a private mount namespace where both
are bind-mounted over with temp dirs, and inside the node namespace (``ip netns exec``), where
the agent plumbs and the bandwidth plugin finds the host veth. The cluster view is the stand-in
StaticView (no Kubernetes API here).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cnitest import CONFLIST, PLUGIN, pod_instances, run_plugin, sh, table_routes
from oci_image import write_oci_archive

from hybridlay.devices import host_veth_name

pytestmark = [pytest.mark.netns, pytest.mark.slow]

IMAGE = "localhost/hlc-busybox:latest"


class Containerd:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hlc-containerd-"))
        self.address = str(self.dir / "containerd.sock")
        config = self.dir / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.dir / "root"}"\n'
            f'state = "{self.dir / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.address}"\n'
        )
        self.log = open(self.dir / "containerd.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(["containerd", "--config", str(config)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while self.ctr("version", check=False).returncode != 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"containerd did not start: {(self.dir / 'containerd.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "-a", self.address, *args], check=check, capture_output=True, text=True)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        # Snapshots are overlay mounts under root: unmount whatever a failed test left.
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            mountpoint = line.split()[1]
            if mountpoint.startswith(str(self.dir)):
                subprocess.run(["umount", "-l", mountpoint], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def containerd() -> Iterator[Containerd]:
    daemon = Containerd()
    try:
        write_oci_archive(daemon.dir / "image.tar", IMAGE)
        daemon.ctr("images", "import", str(daemon.dir / "image.tar"))
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def cni_dirs(agent) -> Iterator[tuple[Path, Path]]:
    """A CNI bin dir (our plugin + the reference plugins) and a conf dir holding our example conflist."""
    root = Path(tempfile.mkdtemp(prefix="hlc-cni-"))
    bin_dir, conf_dir = root / "bin", root / "net.d"
    bin_dir.mkdir()
    conf_dir.mkdir()
    (bin_dir / "hybridlay").symlink_to(PLUGIN)
    for reference in ("bandwidth", "portmap", "loopback"):
        shutil.copy2(f"/usr/lib/cni/{reference}", bin_dir / reference)  # copies: /usr/lib/cni gets covered
    conflist = json.loads(CONFLIST.read_text())
    conflist["plugins"][0]["socket"] = agent.socket
    conflist["plugins"][1].update({"ingressRate": 8_000_000, "ingressBurst": 80_000})
    (conf_dir / "10-hybridlay.conflist").write_text(json.dumps(conflist))
    yield bin_dir, conf_dir
    shutil.rmtree(root, ignore_errors=True)


def ctr_run_cni(containerd: Containerd, node: str, dirs: tuple[Path, Path], name: str, script: str) -> subprocess.Popen:
    bin_dir, conf_dir = dirs
    inner = (
        f"mount --bind {conf_dir} /etc/cni/net.d && mount --bind {bin_dir} /usr/lib/cni && "
        f"exec ctr -a {containerd.address} run --cni --rm {IMAGE} {name} sh -c '{script}'"
    )
    command = ["ip", "netns", "exec", node, "unshare", "--mount", "--propagation", "private", "sh", "-c", inner]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_ctr_run_with_hybridlay_bandwidth_and_portmap(containerd, cni_dirs, agent, node, pods):
    view = agent.view
    peer = pods("peer")
    view.pods[("default", "peer")] = pod_instances("default", "peer", "10.66.9.11/24")
    assert run_plugin("ADD", agent.config(), container_id="peer", netns=peer, pod=("default", "peer")).code == 0

    name = f"{node.name}c"
    # ctr has no Kubernetes CNI_ARGS: the plugin names the attachment after the container id.
    container_id = f"default-{name}"
    view.pods[("default", container_id)] = pod_instances("default", container_id, "10.66.9.10/24")
    host = host_veth_name("default", container_id)
    script = "ip addr show eth0; ip route; ping -c 2 -W 2 10.66.9.11 && echo PING-OK; sleep 3"
    run = ctr_run_cni(containerd, node.name, cni_dirs, name, script)
    try:
        deadline = time.monotonic() + 30
        while host not in sh("ip", "-n", node.name, "link", "show").stdout:
            assert run.poll() is None, run.stdout.read() if run.stdout else ""
            assert time.monotonic() < deadline, "the container's network never appeared"
            time.sleep(0.1)
        # bandwidth (chained after us) found our host veth in the result's interfaces and shaped it.
        deadline = time.monotonic() + 10
        while "tbf" not in (qdisc := sh("ip", "netns", "exec", node.name, "tc", "qdisc", "show", "dev", host).stdout):
            assert time.monotonic() < deadline, qdisc
            time.sleep(0.1)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, output
    assert "inet 10.66.9.10/24" in output and "noprefixroute" in output, output
    assert "default via 169.254.1.1 dev eth0" in output, output
    assert "PING-OK" in output, output
    # ctr --rm ran DEL through the chain: the pod's host side is gone, the peer's stays.
    assert host not in sh("ip", "-n", node.name, "link", "show").stdout
    assert table_routes(node.path, "-4") == ["10.66.9.11"]
