"""The Containerfile builds the one image, and that image runs the operator against an API server.

Real parts: podman builds the Containerfile (Debian's apt and PyPI reached from the build) on the
debootstrapped Debian 12 image the molecule scenarios use, since no registry serves the default base
here; the built image's operator runs against the KMock API stand-in (no kube-apiserver here),
becomes the active instance and answers its readiness probe.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
PODMAN = str(REPO / "lab" / "scripts" / "podman")
BASE = "localhost/hybridlay-debian:12-systemd"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"


def podman(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def image() -> str:
    subprocess.run(["bash", str(REPO / "molecule" / "_shared" / "build-image.sh"), BASE], check=True, timeout=900)
    tag = f"localhost/hybridlay-test:{uuid.uuid4().hex[:8]}"
    # This machine reaches PyPI through a TLS-intercepting proxy whose CA only its own bundle has.
    trust = ["-v", f"{HOST_CA}:/etc/hybridlay-build-ca.crt:ro", "--build-arg", "PIP_CERT=/etc/hybridlay-build-ca.crt"]
    built = podman("build", "-q", "-f", str(REPO / "Containerfile"), "--build-arg", f"BASE={BASE}", *trust,
                   "-t", tag, str(REPO))  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    yield tag
    podman("rmi", "-f", tag)


def test_image_runs_as_the_unprivileged_user_with_every_command(image: str) -> None:
    commands = "hybridlay-operator hybridlay-agent hybridlay ip iptables ipset"
    shown = podman("run", "--rm", image, "sh", "-c", f"id -u; for c in {commands}; do command -v $c; done")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.split()
    assert lines[0] == "65532" and len(lines) == 7, lines
    helped = podman("run", "--rm", image, "hybridlay-agent", "--help")
    assert helped.returncode == 0 and "--vxlan-parent" in helped.stdout, helped.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_image_operator_becomes_active_and_ready(image: str, kubeconfig: Path, tmp_path: Path) -> None:
    # The image's user reads it (a cluster gives the operator its service account instead).
    readable = tmp_path / "kubeconfig-for-the-image"
    readable.write_text(kubeconfig.read_text())
    readable.chmod(0o644)
    probe = free_port()
    name = f"hlimg-{uuid.uuid4().hex[:6]}"
    started = podman(
        "run", "-d", "--name", name, "--network", "host", "-v", f"{readable}:/kubeconfig:ro",
        "-e", "KUBECONFIG=/kubeconfig", "-e", f"PROBE_PORT={probe}", "-e", "POD_NAMESPACE=hybridlay-system",
        "-e", f"POD_NAME={name}", image,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{probe}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, podman("logs", name).stderr[-3000:]
            time.sleep(0.5)
        logs = podman("logs", name)
        assert f"{name} is now the active instance" in logs.stdout + logs.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{probe}/metrics", timeout=5) as answer:
            assert "ip_usage" in answer.read().decode()
    finally:
        podman("rm", "-f", name)
