"""``python -m hybridlay_agent.cni_install``: the CNI plugin and its conflist onto this node.

The agent DaemonSet's init container runs it with the node's folders mounted under ``--host-root``;
it lays them out as the install role does on a host:

- ``/opt/hybridlay/cni/hybridlay`` and ``/opt/hybridlay/cni/hybridlay_cni/*.py`` (the plugin runs
  the node's ``/usr/bin/python3`` and finds its package next to its real path);
- ``/opt/cni/bin/hybridlay``, a symlink to the plugin (the path it points at is the node's);
- ``/etc/cni/net.d/10-hybridlay.conflist``, written last: the container runtime takes the network
  up only once the plugin is in place.

Every file is replaced atomically and only when its content or mode differs; the names of what
changed are printed. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

SOURCE = Path("/usr/share/hybridlay/cni")
LIB_DIR = Path("/opt/hybridlay/cni")
BIN_DIR = Path("/opt/cni/bin")
CONF_DIR = Path("/etc/cni/net.d")
PLUGIN = "hybridlay"
PACKAGE = "hybridlay_cni"
CONFLIST = "10-hybridlay.conflist"


def _on_host(host_root: Path, path: Path) -> Path:
    return host_root / path.relative_to("/")


def _write(path: Path, data: bytes, mode: int) -> bool:
    """``path`` holds ``data`` with ``mode`` afterwards; True if anything was written."""
    try:
        if (
            path.is_file()
            and not path.is_symlink()
            and path.read_bytes() == data
            and path.stat().st_mode & 0o7777 == mode
        ):
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    partial.chmod(mode)
    partial.replace(path)
    return True


def _link(path: Path, target: Path) -> bool:
    if path.is_symlink() and Path(os.readlink(path)) == target:
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    partial.symlink_to(target)
    partial.replace(path)
    return True


def install(
    source: Path = SOURCE,
    host_root: Path = Path("/"),
    lib_dir: Path = LIB_DIR,
    bin_dir: Path = BIN_DIR,
    conf_dir: Path = CONF_DIR,
) -> list[str]:
    """Lay out the plugin and conflist; the node paths of what changed."""
    missing = [p for p in (source / PLUGIN, source / CONFLIST, source / PACKAGE) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"not in the image: {', '.join(map(str, missing))}")
    changed: list[str] = []
    modules = sorted((source / PACKAGE).glob("*.py"))
    for module in modules:
        node_path = lib_dir / PACKAGE / module.name
        if _write(_on_host(host_root, node_path), module.read_bytes(), 0o644):
            changed.append(str(node_path))
    if _write(_on_host(host_root, lib_dir / PLUGIN), (source / PLUGIN).read_bytes(), 0o755):
        changed.append(str(lib_dir / PLUGIN))
    if _link(_on_host(host_root, bin_dir / PLUGIN), lib_dir / PLUGIN):
        changed.append(str(bin_dir / PLUGIN))
    if _write(_on_host(host_root, conf_dir / CONFLIST), (source / CONFLIST).read_bytes(), 0o644):
        changed.append(str(conf_dir / CONFLIST))
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridlay_agent.cni_install", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the plugin's files in the image")
    parser.add_argument("--host-root", type=Path, default=Path("/"), help="where the node's folders are mounted")
    parser.add_argument("--lib-dir", type=Path, default=LIB_DIR)
    parser.add_argument("--bin-dir", type=Path, default=BIN_DIR)
    parser.add_argument("--conf-dir", type=Path, default=CONF_DIR)
    args = parser.parse_args(argv)
    try:
        changed = install(args.source, args.host_root, args.lib_dir, args.bin_dir, args.conf_dir)
    except OSError as e:
        print(f"cni_install: error: {e}", file=sys.stderr)
        return 1
    print("cni_install: " + (f"installed {', '.join(changed)}" if changed else "up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
