"""Kubernetes server binaries for the lab and the real-API tests (standard library only).

The binaries come from the folder named by ``HYBRIDLAY_KUBE_BINARIES`` (default
``../shared/kubernetes`` from the repository root): its ``.xz`` files are unpacked once into a
cache (``~/.cache/hybridlay/kubernetes/<key>/``, keyed by the folder's ``SHA256SUMS``) and checked
against those checksums; a folder of plain binaries (an official release's
``kubernetes/server/bin``) is used as it is.

Without that folder, :func:`download_release` fetches the pinned official release of the same
minor version (:data:`RELEASE`) from ``dl.k8s.io`` and checks each binary against the sha256 the
release publishes next to it, before anything uses it.

``python -m hybridlay_lab.kubebins [--download]`` prints the folder of the unpacked, checked
binaries (``--download``: the official release when the setting's folder does not exist).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import lzma
import os
import shutil
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BINARIES_SETTING = "HYBRIDLAY_KUBE_BINARIES"
DEFAULT_BINARIES = REPO.parent / "shared" / "kubernetes"
SERVER_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
# The official release of the binaries' minor version (../shared/kubernetes is the 1.28 line),
# fetched only when no folder of binaries exists. Each binary's published checksum is at
# <url>.sha256 (https://kubernetes.io/releases/download/#binaries).
RELEASE = "v1.28.15"
RELEASE_URL = "https://dl.k8s.io/release/{version}/bin/linux/{arch}/{name}"
DOWNLOAD_TIMEOUT = 120.0


class Unavailable(Exception):
    """The binaries cannot be had here; the message names what is missing and the setting."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksums(folder: Path) -> dict[str, str]:
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        return {}
    found = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            found[name.lstrip("*")] = digest
    return found


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hybridlay" / "kubernetes"


def binaries_folder() -> Path:
    """The folder the setting names (or the default), which must exist."""
    folder = Path(os.environ.get(BINARIES_SETTING) or DEFAULT_BINARIES)
    if not folder.is_dir():
        raise Unavailable(
            f"no Kubernetes server binaries at {folder}: set {BINARIES_SETTING} to a folder holding "
            f"{', '.join(SERVER_BINARIES)} (plain or .xz, with SHA256SUMS)"
        )
    return folder


def kube_binaries(names: tuple[str, ...] = SERVER_BINARIES) -> Path:
    """A folder holding the unpacked, checked binaries ``names``: the source folder itself when they
    are plain files there, else a cache keyed by the checksums (unpacked once per machine)."""
    source = binaries_folder()
    sums = _checksums(source)
    if all((source / n).is_file() and os.access(source / n, os.X_OK) for n in names):
        target = source
    else:
        key = hashlib.sha256(json.dumps(sums, sort_keys=True).encode()).hexdigest()[:16]
        target = cache_root() / key
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            _unpack(source, target, name, sums)
    for name in names:
        want = sums.get(name)
        path = target / name
        if want and path.is_file() and _checked(path) != want:
            raise Unavailable(f"{path}: sha256 does not match {source / 'SHA256SUMS'} (set {BINARIES_SETTING})")
    return target


def _checked(path: Path) -> str:
    """The sha256 of an unpacked binary, remembered next to it by size and mtime (hashing 100 MB of
    binaries on every test session would cost seconds)."""
    stat = path.stat()
    stamp = path.with_name(f".{path.name}.sha256")
    mark = f"{stat.st_size} {stat.st_mtime_ns}"
    if stamp.exists():
        recorded_mark, _, digest = stamp.read_text().partition("\n")
        if recorded_mark == mark:
            return digest
    digest = _sha256(path)
    with contextlib.suppress(OSError):
        stamp.write_text(f"{mark}\n{digest}")
    return digest


def _unpack(source: Path, target: Path, name: str, sums: dict[str, str]) -> None:
    path = target / name
    if path.is_file() and os.access(path, os.X_OK):
        return
    packed = source / f"{name}.xz"
    if not packed.is_file():
        raise Unavailable(f"neither {source / name} nor {packed} exists (set {BINARIES_SETTING})")
    want = sums.get(packed.name)
    if want and _sha256(packed) != want:
        raise Unavailable(f"{packed}: sha256 does not match {source / 'SHA256SUMS'}")
    partial = path.with_name(f".{name}.{uuid.uuid4().hex[:6]}")
    with lzma.open(packed) as src, partial.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    partial.chmod(0o755)
    partial.replace(path)


# --- the official release, for machines without the binaries' folder ---------------------------------


def machine_arch() -> str:
    """The release's name for this machine's architecture."""
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}
    if machine not in arch:
        raise Unavailable(f"no official Kubernetes release binaries for architecture {machine}")
    return arch[machine]


def _fetch(url: str, destination: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as answer, destination.open("wb") as out:  # noqa: S310 (https URL of the release)
            shutil.copyfileobj(answer, out, 1 << 20)
    except (urllib.error.URLError, OSError) as e:
        destination.unlink(missing_ok=True)
        raise Unavailable(
            f"cannot download {url}: {e}; set {BINARIES_SETTING} to a folder holding {', '.join(SERVER_BINARIES)}"
        ) from None


def published_sha256(text: str, url: str) -> str:
    """The digest of a release's ``<binary>.sha256`` file (the hex digest, optionally followed by a name)."""
    digest = text.strip().split()[0].lower() if text.strip() else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise Unavailable(f"{url}: not a sha256 digest: {text[:80]!r}")
    return digest


def download_release(
    names: Sequence[str] = SERVER_BINARIES, version: str = RELEASE, target: Path | None = None
) -> Path:
    """The official release's binaries ``names``, each checked against its published sha256 before it
    is made executable; kept in ``target`` (default: the cache) with a SHA256SUMS, fetched once."""
    arch = machine_arch()
    target = target or cache_root() / f"release-{version}-{arch}"
    target.mkdir(parents=True, exist_ok=True)
    sums = _checksums(target)
    for name in names:
        path = target / name
        if name in sums and path.is_file() and _checked(path) == sums[name]:
            continue
        url = RELEASE_URL.format(version=version, arch=arch, name=name)
        digest_file = target / f".{name}.published"
        _fetch(url + ".sha256", digest_file)
        want = published_sha256(digest_file.read_text(errors="replace"), url + ".sha256")
        digest_file.unlink()
        partial = target / f".{name}.{uuid.uuid4().hex[:6]}"
        _fetch(url, partial)
        got = _sha256(partial)
        if got != want:
            partial.unlink()
            raise Unavailable(f"{url}: sha256 {got} is not the published {want}: not used")
        partial.chmod(0o755)
        partial.replace(path)
        sums[name] = want
        (target / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))
    return target


def lab_binaries(download: bool) -> Path:
    """What the lab runs: the setting's folder (unpacked and checked), else (``download``) the official
    release; :class:`Unavailable` names the setting when neither can be had."""
    try:
        return kube_binaries()
    except Unavailable:
        folder = Path(os.environ.get(BINARIES_SETTING) or DEFAULT_BINARIES)
        if not download or folder.exists():
            raise
    return download_release()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridlay_lab.kubebins", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--download",
        action="store_true",
        help=f"without the {BINARIES_SETTING} folder, download the official release {RELEASE} (sha256 checked)",
    )
    args = parser.parse_args(argv)
    try:
        print(lab_binaries(args.download))
    except Unavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
