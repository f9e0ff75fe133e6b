"""A lab node for tests: CNI configuration, kubelet processes and cleanup of everything they make.

The CNI configuration chains Debian's reference plugins (bridge + host-local, then bandwidth, which
needs the bridge's result as prevResult) until the hybridlay plugin is wired in: real plugins, real
namespaces. The API is the KMock stand-in (tests/support/kapi.py): no kube-apiserver runs here.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import kubernetes
import pytest

CNI_BIN = "/usr/lib/cni"


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Lab:
    """One test's CNI network (bridge ``bridge``, subnet ``subnet``) and its kubelets."""

    def __init__(self, tmp_path: Path, kubeconfig: Path, core: kubernetes.client.CoreV1Api) -> None:
        tag = secrets.token_hex(3)
        self.prefix = f"k{tag}-"  # 8 characters: 7 left for the container id
        self.bridge = f"klbr{tag}"
        self.subnet_octet = int(tag[:2], 16)
        self.subnet = f"10.252.{self.subnet_octet}.0/24"
        self.tmp = tmp_path
        self.kubeconfig = kubeconfig
        self.core = core
        self.ipam_dir = tmp_path / "ipam"
        self.conf_dir = tmp_path / "net.d"
        self.conf_dir.mkdir()
        self.kubelets: dict[str, subprocess.Popen[bytes]] = {}
        self.write_conflist()

    def write_conflist(self, range_start: str | None = None, range_end: str | None = None) -> None:
        ipam_range = {"subnet": self.subnet}
        if range_start:
            ipam_range |= {"rangeStart": range_start, "rangeEnd": range_end}
        conflist = {
            "cniVersion": "1.0.0",
            "name": "labnet",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "ipam": {"type": "host-local", "ranges": [[ipam_range]], "dataDir": str(self.ipam_dir)},
                },
                {"type": "bandwidth", "ingressRate": 100_000_000, "ingressBurst": 1_000_000},
            ],
        }
        # Another file sorting after ours must not be chosen (first by name, as libcni).
        (self.conf_dir / "99-other.conflist").write_text(json.dumps({**conflist, "name": "other"}))
        (self.conf_dir / "10-lab.conflist").write_text(json.dumps(conflist))

    def start(self, node: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"kubelet-{node}.log").open("ab")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hybridlay_lab.kubelet",
                "--node",
                node,
                "--kubeconfig",
                str(self.kubeconfig),
                "--cni-conf-dir",
                str(self.conf_dir),
                "--cni-bin-dir",
                CNI_BIN,
                "--state-dir",
                str(self.tmp / node),
                "--netns-prefix",
                self.prefix,
                "--resync-seconds",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.kubelets[node] = process
        return process

    def stop(self, node: str) -> None:
        process = self.kubelets.pop(node)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)

    def log(self, node: str) -> str:
        return (self.tmp / f"kubelet-{node}.log").read_text()

    def namespaces(self) -> set[str]:
        return {p.name for p in Path("/var/run/netns").glob(f"{self.prefix}*")}

    def cleanup(self) -> None:
        for node in list(self.kubelets):
            self.kubelets[node].kill()
            self.kubelets.pop(node).wait(timeout=10)
        for name in self.namespaces():
            subprocess.run(["ip", "netns", "delete", name], check=False)
        subprocess.run(["ip", "link", "delete", self.bridge], check=False, capture_output=True)

    @staticmethod
    def wait_for(predicate, timeout=20.0, what="condition"):
        return wait_for(predicate, timeout, what)

    # --- pods ---------------------------------------------------------------------------------

    def create_pod(self, name: str, node: str, namespace: str = "default", finalizers=()):
        body = {
            "metadata": {"name": name, "namespace": namespace, "finalizers": list(finalizers)},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "none"}]},
        }
        return self.core.create_namespaced_pod(namespace, body)

    def pod(self, name: str, namespace: str = "default") -> dict:
        response = self.core.read_namespaced_pod(name, namespace, _preload_content=False)
        return json.loads(response.data)

    def pod_ip(self, name: str) -> str | None:
        return (self.pod(name).get("status") or {}).get("podIP")

    def wait_running(self, name: str) -> str:
        return self.wait_for(lambda: self.pod_ip(name), what=f"pod {name} to get an address")


@pytest.fixture
def core(kubeconfig):
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    return kubernetes.client.CoreV1Api(client)


@pytest.fixture
def lab(tmp_path, kubeconfig, core):
    created = Lab(tmp_path, kubeconfig, core)
    try:
        yield created
    finally:
        created.cleanup()
