"""A real caller: a libcni client (Debian's golang-github-appc-cni-dev 1.1.2, built offline here)
runs our example conflist — hybridlay chained with bandwidth and portmap — through ADD, CHECK,
DEL, VERSION and validation, and sends STATUS and GC.

libcni 1.1.2 predates STATUS and GC (libcni 1.2.0): the client sends those two with the library's
own plugin executor (pkg/invoke) and a cniVersion 1.1.0 config, as libcni 1.2 does per plugin.
The client runs in the node namespace, where the agent (real CNIServer, stand-in StaticView) plumbs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cnitest import CONFLIST, PLUGIN, pod_instances, sh

from hybridlay.devices import host_veth_name

pytestmark = [pytest.mark.netns, pytest.mark.slow]

CLIENT_SOURCE = Path(__file__).parent / "libcni_client"


@pytest.fixture(scope="module")
def libcni_client() -> Iterator[Path]:
    """Build the client offline (GOPATH over Debian's /usr/share/gocode), caches in a temp dir."""
    build = Path(tempfile.mkdtemp(prefix="hlc-go-"))
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{build / 'gopath'}:/usr/share/gocode",
        "GOCACHE": str(build / "cache"),
        "HOME": str(build),
    }
    subprocess.run(
        ["go", "build", "-o", str(build / "libcni_client"), "."],
        cwd=CLIENT_SOURCE,
        env=env,
        check=True,
        capture_output=True,
    )
    yield build / "libcni_client"
    shutil.rmtree(build, ignore_errors=True)


class Client:
    def __init__(self, binary: Path, node: str, conflist: Path, bin_dir: Path, cache: Path) -> None:
        self.binary, self.node, self.conflist, self.bin_dir, self.cache = binary, node, conflist, bin_dir, cache

    def __call__(self, command: str, *args: str, conflist: Path | None = None) -> tuple[int, dict | None]:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.node, str(self.binary), "-path", str(self.bin_dir), "-cache", str(self.cache),
             command, str(conflist or self.conflist), *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None


@pytest.fixture
def client(libcni_client, agent, node) -> Iterator[Client]:
    root = Path(tempfile.mkdtemp(prefix="hlc-libcni-"))
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "hybridlay").symlink_to(PLUGIN)
    for reference in ("bandwidth", "portmap"):
        (bin_dir / reference).symlink_to(f"/usr/lib/cni/{reference}")
    conflist = json.loads(CONFLIST.read_text())
    conflist["plugins"][0]["socket"] = agent.socket
    conflist["plugins"][1].update({"ingressRate": 8_000_000, "ingressBurst": 80_000})
    (root / "net.conflist").write_text(json.dumps(conflist))
    yield Client(libcni_client, node.name, root / "net.conflist", bin_dir, root / "cache")
    shutil.rmtree(root, ignore_errors=True)


def test_libcni_add_check_del(client, agent, node, pods):
    pod = pods("l")
    agent.view.pods[("team", "api-0")] = pod_instances("team", "api-0", "10.66.10.5/24")
    cni_args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=team;K8S_POD_NAME=api-0"
    host = host_veth_name("team", "api-0")

    code, result = client("add", "sandbox-1", pod, "eth0", cni_args)
    assert code == 0, result
    assert result["cniVersion"] == "1.0.0"
    assert [i["name"] for i in result["interfaces"]] == [host, "eth0"]
    assert result["ips"] == [{"address": "10.66.10.5/24", "gateway": "169.254.1.1", "interface": 1}]
    # bandwidth, chained after us, shaped our host veth.
    assert "tbf" in sh("ip", "netns", "exec", node.name, "tc", "qdisc", "show", "dev", host).stdout

    code, out = client("check", "sandbox-1", pod, "eth0", cni_args)
    assert code == 0, out
    sh("ip", "-n", os.path.basename(pod), "addr", "flush", "dev", "eth0")
    code, out = client("check", "sandbox-1", pod, "eth0", cni_args)
    assert code == 1 and out["code"] == 100 and "address 10.66.10.5/24 is missing" in out["details"], out

    for _ in range(2):
        code, out = client("del", "sandbox-1", pod, "eth0", cni_args)
        assert code == 0, out
        assert host not in sh("ip", "-n", node.name, "link", "show").stdout


def test_libcni_version_validate_status_gc(client, agent, node, pods):
    code, out = client("version")
    assert code == 0 and out["supportedVersions"] == ["0.3.1", "0.4.0", "1.0.0", "1.1.0"], out
    code, out = client("validate")
    assert code == 0 and set(out["capabilities"]) == {"bandwidth", "portMappings"}, out
    code, out = client("status")
    assert code == 0, out

    pod = pods("g")
    agent.view.pods[("team", "old-0")] = pod_instances("team", "old-0", "10.66.10.6/24")
    assert client("add", "stale", pod, "eth0", "K8S_POD_NAMESPACE=team;K8S_POD_NAME=old-0")[0] == 0
    code, out = client("gc", "some-other:eth0")
    assert code == 0, out
    assert host_veth_name("team", "old-0") not in sh("ip", "-n", node.name, "link", "show").stdout

    down = json.loads(client.conflist.read_text())
    down["plugins"][0]["socket"] = "/run/hlc-nobody/cni.sock"
    down_path = client.conflist.with_name("down.conflist")
    down_path.write_text(json.dumps(down))
    code, out = client("status", conflist=down_path)
    assert code == 1 and out["code"] == 50, out
