"""The agent's settings: command line, with environment variables as defaults (a DaemonSet sets env)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hybridlay import devices
from hybridlay.errors import InvalidValue

DEFAULT_CNI_SOCKET = Path("/run/hybridlay/cni.sock")
DEFAULT_NAMESPACE = "hybridlay-system"
# A Node's own interface names, over the agent's settings (a DaemonSet's env is the same on every
# node; the install role writes these from the inventory's hybridlay_node).
VLAN_PARENT_ANNOTATION = "networking.hybridlay.io/vlan-parent"
NODE_ANNOTATIONS = {
    "networking.hybridlay.io/vxlan-parent": "vxlan_parent",
    VLAN_PARENT_ANNOTATION: "vlan_parent",
    "networking.hybridlay.io/bgp-parent": "bgp_parent",
}


@dataclass(frozen=True)
class Settings:
    node_name: str
    vxlan_parent: str
    vlan_parent: str
    bgp_parent: str | None = None
    kubeconfig: Path | None = None  # None: in-cluster service account
    cni_socket: Path = DEFAULT_CNI_SOCKET
    resync_seconds: float = 30.0
    vtep_ip: str | None = None  # None: the VXLAN parent's first global address (IPv4 preferred)
    cni_server: bool = True
    answer_neighbour_misses: bool = True
    bgp_run_dir: Path | None = None  # None: "bgp" next to the CNI socket
    # How long a pod's ADD waits for its BGP route to be announced before answering "try again later".
    bgp_announce_timeout: float = 10.0
    # Where a BGP peer's passwordSecretRef without a namespace points: the agent's own namespace.
    secret_namespace: str = DEFAULT_NAMESPACE

    @property
    def bgp_state_dir(self) -> Path:
        return self.bgp_run_dir or self.cni_socket.parent / "bgp"


def parse_args(argv: list[str] | None = None) -> Settings:
    env = os.environ
    parser = argparse.ArgumentParser(prog="hybridlay-agent", description="hybridlay node agent")
    parser.add_argument("--node-name", default=env.get("NODE_NAME"), help="this node's name (env NODE_NAME)")
    parser.add_argument("--kubeconfig", default=env.get("KUBECONFIG"), help="kubeconfig file; default in-cluster")
    parser.add_argument("--vxlan-parent", default=env.get("HYBRIDLAY_VXLAN_PARENT"), help="VXLAN underlay interface")
    parser.add_argument("--vlan-parent", default=env.get("HYBRIDLAY_VLAN_PARENT"), help="VLAN parent interface")
    parser.add_argument("--bgp-parent", default=env.get("HYBRIDLAY_BGP_PARENT"), help="BGP interface")
    parser.add_argument("--bgp-run-dir", default=env.get("HYBRIDLAY_BGP_RUN_DIR"), help="BGP speaker's files")
    parser.add_argument(
        "--bgp-announce-timeout",
        type=float,
        default=float(env.get("HYBRIDLAY_BGP_ANNOUNCE_TIMEOUT", "10")),
        help="seconds a BGP pod's ADD waits for its route to be announced",
    )
    parser.add_argument(
        "--secret-namespace",
        default=env.get("POD_NAMESPACE", DEFAULT_NAMESPACE),
        help="namespace of BGP password Secrets that name none (env POD_NAMESPACE)",
    )
    parser.add_argument("--cni-socket", default=env.get("HYBRIDLAY_CNI_SOCKET", str(DEFAULT_CNI_SOCKET)))
    parser.add_argument("--resync-seconds", type=float, default=float(env.get("HYBRIDLAY_RESYNC_SECONDS", "30")))
    parser.add_argument("--vtep-ip", default=env.get("HYBRIDLAY_VTEP_IP"), help="VTEP address (default: parent's)")
    parser.add_argument("--no-cni-server", action="store_true", help="do not serve the CNI socket")
    parser.add_argument(
        "--no-neighbour-miss",
        action="store_true",
        help="do not answer the kernel's neighbour misses on the VXLAN device (it then broadcasts ARP/NDP)",
    )
    args = parser.parse_args(argv)
    if not args.node_name:
        parser.error("--node-name (or NODE_NAME) is required")
    if not args.vxlan_parent:
        parser.error("--vxlan-parent (or HYBRIDLAY_VXLAN_PARENT) is required")
    if args.resync_seconds <= 0:
        parser.error(f"--resync-seconds {args.resync_seconds}: must be positive")
    if args.bgp_announce_timeout <= 0:
        parser.error(f"--bgp-announce-timeout {args.bgp_announce_timeout}: must be positive")
    for option, name in (("--vxlan-parent", args.vxlan_parent), ("--vlan-parent", args.vlan_parent)):
        try:
            if name:
                devices.vlan_interface_name(name, 0)
        except InvalidValue as e:
            parser.error(f"{option} {e.value}: {e.reason}")
    return Settings(
        node_name=args.node_name,
        vxlan_parent=args.vxlan_parent,
        vlan_parent=args.vlan_parent or args.vxlan_parent,
        bgp_parent=args.bgp_parent,
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        cni_socket=Path(args.cni_socket),
        resync_seconds=args.resync_seconds,
        vtep_ip=args.vtep_ip,
        cni_server=not args.no_cni_server,
        answer_neighbour_misses=not args.no_neighbour_miss,
        bgp_run_dir=Path(args.bgp_run_dir) if args.bgp_run_dir else None,
        bgp_announce_timeout=args.bgp_announce_timeout,
        secret_namespace=args.secret_namespace,
    )


def with_node_annotations(settings: Settings, annotations: Mapping[str, str]) -> tuple[Settings, dict[str, str]]:
    """``settings`` with the Node's :data:`NODE_ANNOTATIONS` over them; also what changed (field → value).

    A VLAN parent left unset by both follows the VXLAN parent, as on the command line. A malformed
    interface name is refused (ValueError naming the annotation)."""
    changes: dict[str, str] = {}
    for key, name in NODE_ANNOTATIONS.items():
        value = (annotations.get(key) or "").strip()
        if not value:
            continue
        try:
            devices.vlan_interface_name(value, 0)
        except InvalidValue as e:
            raise ValueError(f"Node annotation {key}: {e.value}: {e.reason}") from None
        if getattr(settings, name) != value:
            changes[name] = value
    vlan_annotated = bool((annotations.get(VLAN_PARENT_ANNOTATION) or "").strip())
    if "vxlan_parent" in changes and not vlan_annotated and settings.vlan_parent == settings.vxlan_parent:
        changes["vlan_parent"] = changes["vxlan_parent"]
    return dataclasses.replace(
        settings,
        vxlan_parent=changes.get("vxlan_parent", settings.vxlan_parent),
        vlan_parent=changes.get("vlan_parent", settings.vlan_parent),
        bgp_parent=changes.get("bgp_parent", settings.bgp_parent),
    ), changes
