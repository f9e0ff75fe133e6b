"""The lab kubelet's host side: CNI configuration files, plugin processes, network namespaces, records."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from hybridlay_lab.cni import CNIError, NetworkList, parse_network_list
from hybridlay_lab.pods import SandboxRecord

NETNS_DIR = Path("/var/run/netns")
CONF_SUFFIXES = (".conf", ".conflist", ".json")


def load_network(conf_dir: Path, conf_file: Path | None = None) -> NetworkList:
    """``conf_file``, else the first configuration in ``conf_dir`` by file name (as libcni and containerd pick)."""
    if conf_file is None:
        candidates = sorted(p for p in conf_dir.glob("*") if p.suffix in CONF_SUFFIXES and p.is_file())
        if not candidates:
            raise ValueError(f"{conf_dir}: no CNI configuration ({', '.join(CONF_SUFFIXES)})")
        conf_file = candidates[0]
    return parse_network_list(conf_file.read_text(), str(conf_file))


class PluginRunner:
    """Executes plugin binaries found on ``CNI_PATH`` (a :data:`hybridlay_lab.cni.Runner`)."""

    def __init__(self, cni_path: str, timeout: float) -> None:
        self.cni_path = cni_path
        self.timeout = timeout

    def find(self, plugin: str) -> Path | None:
        if "/" in plugin:
            return None  # a type is a name looked up on CNI_PATH, never a path
        for directory in self.cni_path.split(os.pathsep):
            candidate = Path(directory) / plugin
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
        return None

    def __call__(self, plugin: str, env: Mapping[str, str], stdin: bytes) -> tuple[int, bytes, bytes]:
        binary = self.find(plugin)
        if binary is None:
            raise CNIError(plugin, env["CNI_COMMAND"], f"failed to find plugin {plugin!r} in path {self.cni_path}")
        try:
            done = subprocess.run(
                [str(binary)],
                input=stdin,
                env={**os.environ, **env},
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CNIError(plugin, env["CNI_COMMAND"], f"no answer within {self.timeout:g} s") from None
        return done.returncode, done.stdout, done.stderr


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def add_netns(name: str) -> None:
    """A new named network namespace with its loopback up (the runtime's part, before CNI ADD)."""
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)


def delete_netns(name: str) -> None:
    if netns_path(name).exists():
        subprocess.run(["ip", "netns", "delete", name], check=True, capture_output=True)


class SandboxStore:
    """One JSON file per sandbox, written before ADD starts so that a crash mid-ADD is cleaned up."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, uid: str) -> Path:
        return self.directory / f"{uid}.json"

    def get(self, uid: str) -> SandboxRecord | None:
        path = self._path(uid)
        return SandboxRecord.from_dict(json.loads(path.read_text())) if path.exists() else None

    def save(self, record: SandboxRecord) -> None:
        temporary = self._path(record.uid).with_suffix(".tmp")
        temporary.write_text(json.dumps(record.to_dict()))
        temporary.replace(self._path(record.uid))

    def remove(self, uid: str) -> None:
        self._path(uid).unlink(missing_ok=True)

    def all(self) -> list[SandboxRecord]:
        return [SandboxRecord.from_dict(json.loads(p.read_text())) for p in sorted(self.directory.glob("*.json"))]
