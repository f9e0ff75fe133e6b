"""Helpers for the CNI plugin's tests: node and pod namespaces, an in-process agent, the real plugin.

The agent side is the real :class:`hybridlay_agent.cni_server.CNIServer` and real plumbing. Its
cluster view is :class:`StaticView`, a stand-in for the agent's watch-fed
``hybridlay_agent.view.ClusterView``: it serves fixed IPInstances (no Kubernetes API here).
The plugin always runs as a real subprocess of the executable ``cni/hybridlay``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridlay.model import (
    AddressRange,
    Binding,
    InstanceAddress,
    IPInstance,
    Network,
    NetworkMode,
    NetworkType,
    Subnet,
)
from hybridlay_agent.cni_server import CNIServer

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "cni" / "hybridlay"
CONFLIST = REPO / "cni" / "10-hybridlay.conflist"
UPLINK = "up0"
UPLINK_MTU = 1500


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def netns_add(name: str) -> str:
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return f"/var/run/netns/{name}"


def netns_del(name: str) -> None:
    sh("ip", "netns", "del", name, check=False)


def pod_instances(
    namespace: str, pod: str, *ips: str, network: Network | None = None, gateway: str | None = None
) -> list[tuple[IPInstance, Subnet, Network]]:
    """IPInstances as the operator would have allocated them (``ips``: ``10.0.0.5/24`` …)."""
    network = network or Network("overlay", type=NetworkType.OVERLAY, net_id=4)
    out = []
    for ip in ips:
        address = ipaddress.ip_interface(ip)
        version = str(address.version)
        subnet = Subnet(
            f"{network.name}-v{version}", network.name, AddressRange(version, str(address.network), gateway=gateway)
        )
        instance = IPInstance(
            name=str(address.ip).replace(".", "-").replace(":", "-"),
            network=network.name,
            subnet=subnet.name,
            address=InstanceAddress(version, ip, gateway=gateway),
            binding=Binding(pod_name=pod, pod_namespace=namespace, node_name=StaticView.node),
        )
        out.append((instance, subnet, network))
    return out


@dataclass
class StaticView:
    """Stand-in for the agent's watch-fed ClusterView: fixed IPInstances per pod, no API server."""

    node: str = "node-1"
    parents: dict[NetworkMode, str] = field(default_factory=dict)
    underlay_version: int = 4  # the VTEP's IP version
    pods: dict[tuple[str, str], list[tuple[IPInstance, Subnet, Network]]] = field(default_factory=dict)
    reconciles: int = 0

    async def pod_addresses(self, namespace: str, pod: str, timeout: float) -> list[tuple[IPInstance, Subnet, Network]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (namespace, pod) not in self.pods:
            if loop.time() >= deadline:
                raise TimeoutError(f"{namespace}/{pod}")
            await asyncio.sleep(0.02)
        return self.pods[(namespace, pod)]

    def node_name(self) -> str:
        return self.node

    def parent_interface(self, mode: NetworkMode) -> str:
        return self.parents.get(mode, UPLINK)

    def vtep_version(self) -> int:
        return self.underlay_version

    def request_reconcile(self) -> None:
        self.reconciles += 1


class Agent:
    """A CNIServer on its own event loop thread, plumbing into the node namespace ``node_netns``
    (None: the namespace this process is in)."""

    def __init__(self, node_netns: str | None, view: StaticView, **options: Any) -> None:
        self.dir = tempfile.mkdtemp(prefix="hlc-agent-")
        self.socket = os.path.join(self.dir, "run", "cni.sock")
        self.view = view
        self.server = CNIServer(self.socket, view, host_netns=node_netns, **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def config(self, version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
        return {"cniVersion": version, "name": "hybridlay", "type": "hybridlay", "socket": self.socket, **extra}


@dataclass
class PluginRun:
    code: int
    output: dict[str, Any] | None
    raw: str


def run_plugin(
    command: str,
    config: dict[str, Any],
    *,
    container_id: str = "",
    netns: str = "",
    ifname: str = "eth0",
    pod: tuple[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> PluginRun:
    """Execute the real plugin as a runtime would (CNI_* environment, config on stdin)."""
    variables = {"CNI_COMMAND": command, "CNI_PATH": "/usr/lib/cni", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if container_id:
        variables["CNI_CONTAINERID"] = container_id
    if netns:
        variables["CNI_NETNS"] = netns
    if ifname:
        variables["CNI_IFNAME"] = ifname
    if pod:
        variables["CNI_ARGS"] = f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod[0]};K8S_POD_NAME={pod[1]}"
    variables.update(env or {})
    proc = subprocess.run(
        [str(PLUGIN)], input=json.dumps(config), env=variables, capture_output=True, text=True, timeout=60, check=False
    )
    output = json.loads(proc.stdout) if proc.stdout.strip() else None
    return PluginRun(proc.returncode, output, proc.stdout + proc.stderr)


class Node:
    """A node namespace: forwarding on, an uplink (the pods' parent interface), the local-pod rule.

    The rule and the forwarding sysctls are what the agent's data plane sets on a real node.
    """

    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}n"
        self.path = netns_add(self.name)
        self.peer = f"{prefix}u"
        netns_add(self.peer)  # the uplink's other end, in a namespace of its own
        sh("ip", "-n", self.name, "link", "add", UPLINK, "type", "veth", "peer", "name", self.peer, "netns", self.peer)
        sh("ip", "-n", self.name, "link", "set", UPLINK, "mtu", str(UPLINK_MTU), "up")
        sh("ip", "-n", self.peer, "link", "set", self.peer, "up")
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            sh("ip", "netns", "exec", self.name, "sysctl", "-qw", key)
        for family in ("-4", "-6"):
            sh("ip", family, "-n", self.name, "rule", "add", "pref", "1000", "lookup", "39999")

    def delete(self) -> None:
        netns_del(self.peer)
        netns_del(self.name)


def ip_json(netns: str, *args: str) -> Any:
    return json.loads(sh("ip", "-j", "-n", os.path.basename(netns), *args).stdout or "[]")


def table_routes(netns: str, family: str, table: str = "39999") -> list[str]:
    """Destinations in a routing table; a table that does not exist (yet, or any more) is empty."""
    proc = sh("ip", "-j", family, "-n", os.path.basename(netns), "route", "show", "table", table, check=False)
    if proc.returncode != 0 and "does not exist" in proc.stderr:
        return []
    proc.check_returncode()
    return [route["dst"] for route in json.loads(proc.stdout or "[]")]
