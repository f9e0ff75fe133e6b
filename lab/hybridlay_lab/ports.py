"""Before the lab makes anything: are the ports it publishes on this machine free (or its own already)?

``python -m hybridlay_lab.ports --container NAME --port PORT --setting VARIABLE`` exits 0 when
``127.0.0.1:PORT`` can be had, or is already published by the lab's container ``NAME``; else 1, with
a message naming the inventory variable that moves the port.
"""

from __future__ import annotations

import argparse
import errno
import socket
import subprocess
import sys
from collections.abc import Sequence

ADDRESS = "127.0.0.1"


def published_by(podman: str, container: str) -> set[str]:
    """``address:port`` pairs the container publishes (none if it does not exist)."""
    done = subprocess.run([podman, "port", container], capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        return set()
    return {line.split("->", 1)[1].strip() for line in done.stdout.splitlines() if "->" in line}


def in_use(port: int, address: str = ADDRESS) -> bool:
    """Something holds the port: binding it fails (a listener on any address counts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def check(podman: str, container: str, port: int, setting: str) -> str | None:
    """None when the port can be used; else why not, naming the setting."""
    if not 0 < port < 65536:
        return f"{setting}: {port} is not a TCP port"
    if f"{ADDRESS}:{port}" in published_by(podman, container):
        return None
    if in_use(port):
        return (
            f"{ADDRESS}:{port} is already in use on this machine, and the lab publishes its API server there: "
            f"choose a free port with -e {setting}=PORT (or set {setting} in inventories/lab/group_vars/all/lab.yml)"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridlay_lab.ports", description=__doc__.splitlines()[0])
    parser.add_argument("--podman", default="podman")
    parser.add_argument("--container", required=True, help="the lab container that publishes the port")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--setting", required=True, help="the inventory variable that sets the port")
    args = parser.parse_args(argv)
    problem = check(args.podman, args.container, args.port, args.setting)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"{ADDRESS}:{args.port} free")
    return 0


if __name__ == "__main__":
    sys.exit(main())
