"""The lab's small images, written offline as OCI archives (no registry, no build): Debian's static
busybox and its applet links in one layer.

- the sandbox ("pause") image every pod's sandbox runs (containerd's ``sandbox_image``);
- the workload image of the lab's pods: a shell, ``ping``/``ping6``, ``ip``, ``nc`` and ``sleep``
  (not Debian's static ``wget``: it crashes).

Both are imported into each node's containerd (``ctr -n k8s.io images import``). The archives are
byte-for-byte the same on every run (fixed times and owners), so a second import changes nothing.

``python -m hybridlay_lab.images DIR [ARCHIVE[=NAME]...]`` writes ``DIR/pause.tar`` and
``DIR/busybox.tar`` and prints a JSON list of ``{name, archive, digest}`` for them and for each other
OCI ARCHIVE given (``podman save --format oci-archive``; NAME: the image name the nodes give it
instead of the archive's own): what each node imports.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
PAUSE_IMAGE = "localhost/hybridlay-lab/pause:1"
WORKLOAD_IMAGE = "localhost/hybridlay-lab/busybox:1"
WORKLOAD_APPLETS = (
    "sh", "ping", "ping6", "ip", "nc", "sleep", "cat", "ls", "hostname", "echo", "sed", "timeout", "true",
)  # fmt: skip


def _blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}"


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, 0, 0
    return info


def _layer(applets: Sequence[str], busybox: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for directory in ("bin", "dev", "etc", "proc", "sys", "tmp", "var", "run"):
            layer.addfile(_entry(directory, tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755))
        data = busybox.read_bytes()
        binary = _entry("bin/busybox", tarfile.REGTYPE, 0o755)
        binary.size = len(data)
        layer.addfile(binary, io.BytesIO(data))
        for applet in applets:
            link = _entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777)
            link.linkname = "busybox"
            layer.addfile(link)
    return buffer.getvalue()


def write_oci_archive(
    path: Path, name: str, cmd: Sequence[str], applets: Sequence[str], busybox: Path = BUSYBOX
) -> str:
    """An OCI image layout tar at ``path`` that ``ctr images import`` names ``name``; its manifest digest."""
    layer = _layer(applets, busybox)
    partial = path.with_name(f".{path.name}.partial")
    with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
        layer_digest = _blob(tar, layer)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": list(cmd)},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = _blob(tar, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}
            ],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = _blob(tar, manifest_bytes)
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest_bytes),
                    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
                }
            ],
        }
        for member, data in (
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", json.dumps(index, sort_keys=True).encode()),
        ):
            info = _entry(member, tarfile.REGTYPE, 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if path.exists() and path.read_bytes() == partial.read_bytes():
        partial.unlink()
    else:
        partial.replace(path)
    return manifest_digest


def write_lab_images(folder: Path) -> dict[str, Path]:
    """The sandbox and workload archives in ``folder``: image name → archive."""
    folder.mkdir(parents=True, exist_ok=True)
    pause = folder / "pause.tar"
    workload = folder / "busybox.tar"
    write_oci_archive(pause, PAUSE_IMAGE, ["sleep", "infinity"], ["sleep"])
    write_oci_archive(workload, WORKLOAD_IMAGE, ["sleep", "infinity"], WORKLOAD_APPLETS)
    return {PAUSE_IMAGE: pause, WORKLOAD_IMAGE: workload}


def describe(archive: Path, name: str | None = None) -> dict[str, str]:
    """An OCI archive's image: its name (``name``, else the index's reference annotation) and manifest digest."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ValueError(f"{archive}: no index.json")
        index = json.load(member)
    manifest = index["manifests"][0]
    annotations = manifest.get("annotations") or {}
    name = name or annotations.get("io.containerd.image.name") or annotations.get("org.opencontainers.image.ref.name")
    if not name:
        raise ValueError(f"{archive}: its index names no image")
    return {"name": name, "archive": str(archive), "digest": manifest["digest"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridlay_lab.images", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("archives", nargs="*", help="ARCHIVE or ARCHIVE=NAME")
    args = parser.parse_args(argv)
    if not BUSYBOX.is_file():
        print(f"error: {BUSYBOX} missing: install Debian's busybox-static", file=sys.stderr)
        return 1
    try:
        made = [describe(a) for a in write_lab_images(args.folder).values()]
        given = [describe(Path(path), name or None) for path, _, name in (a.partition("=") for a in args.archives)]
        print(json.dumps(made + given))
    except (OSError, ValueError, KeyError, tarfile.TarError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
