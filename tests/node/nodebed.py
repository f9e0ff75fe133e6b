"""A multi-node test bed in network namespaces, with one real ``hybridlay-agent`` per node.

:func:`node_cluster` (the fixture ``node_cluster`` in tests/node/conftest.py, module scope) builds,
with a unique prefix per run:

- ``<p>-sw``: the "switch", a Linux bridge every node and the gateway hang off;
- ``<p>-n1`` … ``<p>-n3``: nodes, ``eth0`` = 10.1.0.1X/24 and fd00:1::1X/64, default via the gateway;
- ``<p>-gw``: the underlay router, 10.1.0.1 and 192.168.56.1 (gateway of the underlay subnet, on the
  same L2 as the nodes: Hybridnet's "netID 0 with a different host subnet") and 203.0.113.1
  towards ``<p>-ext``, the external host 203.0.113.2. It routes the overlay CIDRs to node 1, as an
  operator's static route or BGP would: so "external → overlay pod refused" is the agent's doing;
- the API: KMock (``tests/support/kapi.py``) in this process, reached from each node's loopback
  (127.0.0.1:6443) through socat over a unix socket, since namespaces cannot reach our loopback;
- one agent per node: ``ip netns exec <node> python -m hybridlay_agent …`` as a subprocess, serving
  the CNI plugin on ``<workdir>/<node>/cni.sock``;
- pods (:meth:`NodeCluster.add_pod`): a namespace each, attached by the real plugin executable
  ``cni/hybridlay`` run inside the node's namespace with the ``CNI_*`` environment and network
  configuration a runtime passes; :meth:`NodeCluster.remove_pod` runs its DEL.

Stand-ins, documented: the Pod objects and their IPInstances are created here directly, as the
mutating webhook (the resolved ``ip-family`` annotation) and the operator would: both are tested on
their own; there is no kubelet or container runtime, the fixture calls the plugin as one would.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kapi import RunningAPI
from kubernetes import client, config

from hybridlay import names
from hybridlay.addresses import instance_name
from hybridlay.model import IPFamily

PLUGIN = Path(__file__).resolve().parents[2] / "cni" / "hybridlay"
POD_NAMESPACE = "default"
NODES = ("n1", "n2", "n3")
NODE_IP = {"n1": "10.1.0.11", "n2": "10.1.0.12", "n3": "10.1.0.13"}
NODE_IP6 = {"n1": "fd00:1::11", "n2": "fd00:1::12", "n3": "fd00:1::13"}
GATEWAY_IP = "10.1.0.1"
UNDERLAY_GATEWAY = "192.168.56.1"
EXTERNAL_IP = "203.0.113.2"
API_PORT = 6443
UNDERLAY_LABEL = "hybridlay-test/underlay"
TEST_RESYNC_SECONDS = 3  # short, so that tests see periodic resyncs

NETWORKS = [
    {"metadata": {"name": "overlay"}, "spec": {"type": "Overlay", "netID": 4}},
    {
        "metadata": {"name": "underlay"},
        "spec": {"type": "Underlay", "mode": "VLAN", "netID": 0, "nodeSelector": {UNDERLAY_LABEL: "yes"}},
    },
]
SUBNETS = [
    {
        "metadata": {"name": "overlay-v4"},
        "spec": {"network": "overlay", "range": {"version": "4", "cidr": "10.244.0.0/16"}},
    },
    {
        "metadata": {"name": "overlay-v6"},
        "spec": {"network": "overlay", "range": {"version": "6", "cidr": "fd00:10::/64"}},
    },
    {
        "metadata": {"name": "overlay-routed"},
        "spec": {
            "network": "overlay",
            "range": {"version": "4", "cidr": "10.245.0.0/16"},
            "config": {"autoNatOutgoing": False},
        },
    },
    {
        "metadata": {"name": "underlay-v4"},
        "spec": {
            "network": "underlay",
            "range": {
                "version": "4",
                "cidr": "192.168.56.0/24",
                "gateway": UNDERLAY_GATEWAY,
                "start": "192.168.56.100",
            },
        },
    },
]
SUBNETS.append(
    {
        "metadata": {"name": "underlay-v6"},
        "spec": {"network": "underlay", "range": {"version": "6", "cidr": "fd00:56::/64", "gateway": "fd00:56::1"}},
    }
)
SUBNET_OF_CIDR = {
    "fd00:56:": "underlay-v6",
    "10.244.": "overlay-v4",
    "fd00:10:": "overlay-v6",
    "10.245.": "overlay-routed",
    "192.168.56.": "underlay-v4",
}


def sh(netns: str | None, command: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    args = ["ip", "netns", "exec", netns, "sh", "-c", command] if netns else ["sh", "-c", command]
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{netns}: {command} failed: {result.stdout}{result.stderr}")
    return result


@dataclass
class Pod:
    name: str
    node: str
    netns: str
    ips: list[str]
    container_id: str = field(default_factory=lambda: secrets.token_hex(32))


@dataclass
class NodeCluster:
    prefix: str
    workdir: Path
    api: RunningAPI
    custom: Any
    core: Any
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    vtep_ipv6: bool = False  # tunnel over the nodes' IPv6 addresses instead of IPv4
    resync_seconds: float = TEST_RESYNC_SECONDS

    def ns(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    def add_netns(self, short: str) -> str:
        name = self.ns(short)
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        sh(name, "ip link set lo up; sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
        return name

    # --- agents --------------------------------------------------------------------------------

    def agent_log(self, node: str) -> Path:
        return self.workdir / f"agent-{node}.log"

    def start_agent(self, node: str) -> None:
        log = self.agent_log(node).open("ab")
        args = [
            "ip", "netns", "exec", self.ns(node), sys.executable, "-m", "hybridlay_agent",
            "--node-name", node,
            "--kubeconfig", str(self.workdir / "kubeconfig-node"),
            "--vxlan-parent", "eth0",
            "--vlan-parent", "eth0",
            "--cni-socket", str(self.workdir / node / "cni.sock"),
            "--resync-seconds", str(self.resync_seconds),
            *(["--vtep-ip", NODE_IP6[node]] if self.vtep_ipv6 else []),
        ]  # fmt: skip
        # Reconciles that change nothing are logged at DEBUG only, and the tests count every reconcile.
        env = {**os.environ, "HYBRIDLAY_LOG_LEVEL": "DEBUG"}
        self.agents[node] = subprocess.Popen(args, stdout=log, stderr=log, env=env)

    def stop_agent(self, node: str) -> None:
        process = self.agents.pop(node)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def reconciles(self, node: str) -> list[dict[str, Any]]:
        """The agent's ``reconciled`` log records, oldest first."""
        records = []
        for line in self.agent_log(node).read_text(errors="replace").splitlines():
            start = line.find('{"event": "reconciled"')
            if start >= 0:
                records.append(json.loads(line[start:]))
        return records

    def wait_reconciled(self, node: str, after: int = 0, timeout: float = 20) -> dict[str, Any]:
        """The first reconcile record after the first ``after`` records (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.reconciles(node)
            if len(records) > after:
                return records[after]
            if node in self.agents and self.agents[node].poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"agent {node} did not reconcile:\n{self.agent_log(node).read_text()[-3000:]}")

    # --- API objects ---------------------------------------------------------------------------

    def create(self, plural: str, body: dict[str, Any]) -> None:
        body = {"apiVersion": names.API_VERSION, "kind": plural_kind(plural), **body}
        self.custom.create_cluster_custom_object(names.GROUP, names.VERSION, plural, body)

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, plural, name)

    def create_ipinstance(self, ip: str, pod: str, node: str) -> None:
        """As the operator would: one IPInstance per address, bound to the pod and node."""
        subnet = next(s for prefix, s in SUBNET_OF_CIDR.items() if ip.startswith(prefix))
        network = "underlay" if subnet.startswith("underlay") else "overlay"
        cidr = next(s["spec"]["range"]["cidr"] for s in SUBNETS if s["metadata"]["name"] == subnet)
        version = "6" if ":" in ip else "4"
        self.create(
            names.PLURAL_IPINSTANCE,
            {
                "metadata": {"name": instance_name(ip), "labels": {names.LABEL_NODE: node}},
                "spec": {
                    "network": network,
                    "subnet": subnet,
                    "address": {"version": version, "ip": f"{ip}/{cidr.split('/')[1]}"},
                    "binding": {"podName": pod, "podNamespace": POD_NAMESPACE, "nodeName": node},
                },
            },
        )

    # --- pods, attached through the real CNI plugin -------------------------------------------------

    def add_pod(self, name: str, node: str, ips: list[str]) -> Pod:
        """A pod on ``node`` with addresses ``ips`` (its IPInstances created first, as the operator does)."""
        pod = self.new_pod(name, node, ips)
        for ip in ips:
            self.create_ipinstance(ip, name, node)
        self.attach(pod)
        return pod

    def new_pod(self, name: str, node: str, ips: list[str]) -> Pod:
        """The pod's namespace and API object, with the ``ip-family`` the webhook would resolve; no address yet."""
        versions = tuple(sorted({6 if ":" in ip else 4 for ip in ips}))
        family = next(f for f in IPFamily if f.versions == versions)
        self.core.create_namespaced_pod(
            POD_NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "annotations": {names.ANNOTATION_IP_FAMILY: family.value}},
                "spec": {"nodeName": node, "containers": [{"name": "main", "image": "pause"}]},
            },
        )
        pod = Pod(name, node, self.add_netns(f"p-{name}"), ips)
        self.pods[name] = pod
        return pod

    def attach(self, pod: Pod) -> dict[str, Any]:
        """CNI ADD for ``pod``; asserts that it succeeds with exactly the pod's addresses."""
        result = self.finish_cni(self.start_cni(pod, "ADD"))
        assert result is not None
        assert sorted(ip["address"].split("/")[0] for ip in result["ips"]) == sorted(pod.ips), result
        return result

    def remove_pod(self, name: str) -> None:
        """As on pod deletion: the runtime's CNI DEL, then the operator releases the addresses."""
        pod = self.pods.pop(name)
        self.finish_cni(self.start_cni(pod, "DEL"))
        for ip in pod.ips:
            self.delete(names.PLURAL_IPINSTANCE, instance_name(ip))
        self.core.delete_namespaced_pod(name, POD_NAMESPACE)
        subprocess.run(["ip", "netns", "del", pod.netns], check=True)
        self.namespaces.remove(pod.netns)

    def cni_config(self, node: str) -> Path:
        return self.workdir / node / "hybridlay.conf"

    def write_cni_config(self, node: str) -> None:
        """The plugin's network configuration on ``node``, its ``socket`` being that node's agent."""
        config = {"cniVersion": "1.1.0", "name": "hybridlay", "type": "hybridlay", "timeoutSeconds": 30}
        self.cni_config(node).write_text(json.dumps({**config, "socket": str(self.workdir / node / "cni.sock")}))

    def start_cni(self, pod: Pod, command: str) -> subprocess.Popen[str]:
        """The plugin executable in the node's namespace, as the runtime starts it (environment, config on stdin)."""
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": f"/var/run/netns/{pod.netns}",
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NAMESPACE};K8S_POD_NAME={pod.name}",
            "CNI_PATH": str(PLUGIN.parent),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        with self.cni_config(pod.node).open() as stdin:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.ns(pod.node), str(PLUGIN)],
                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
            )  # fmt: skip

    def finish_cni(self, process: subprocess.Popen[str], timeout: float = 40) -> dict[str, Any] | None:
        """Wait for a plugin run; its result (ADD) or None; a CNI error fails the test with the agent's message."""
        out, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise AssertionError(f"CNI call failed ({process.returncode}): {out}{err}")
        return json.loads(out) if out.strip() else None

    # --- traffic -------------------------------------------------------------------------------

    def ping(self, netns: str, target: str, count: int = 1, wait_s: float = 10) -> bool:
        """Whether ``target`` answers from ``netns`` within ``wait_s`` (retries while converging)."""
        deadline = time.monotonic() + wait_s
        while True:
            if sh(netns, f"ping -n -q -c {count} -W 1 {target}", check=False).returncode == 0:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def seen_source(self, src_netns: str, dst_netns: str, dst_ip: str, wait_s: float = 10) -> str | None:
        """The source address ``dst_netns`` sees on a UDP datagram sent from ``src_netns`` to ``dst_ip``."""
        family = "AF_INET6" if ":" in dst_ip else "AF_INET"
        listener = subprocess.Popen(
            ["ip", "netns", "exec", dst_netns, sys.executable, "-c",
             f"import socket; s = socket.socket(socket.{family}, socket.SOCK_DGRAM); s.bind(('', 5999));"
             f" s.settimeout({wait_s}); print(s.recvfrom(64)[1][0])"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + wait_s
            while listener.poll() is None and time.monotonic() < deadline:
                sh(
                    src_netns,
                    f'{sys.executable} -c "import socket; socket.socket(socket.{family}, socket.SOCK_DGRAM)'
                    f".sendto(b'x', ('{dst_ip}', 5999))\"",
                    check=False,
                )
                time.sleep(0.2)
            out, _ = listener.communicate(timeout=wait_s)
            return out.strip() or None
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()


def plural_kind(plural: str) -> str:
    return {
        names.PLURAL_NETWORK: names.KIND_NETWORK,
        names.PLURAL_SUBNET: names.KIND_SUBNET,
        names.PLURAL_IPINSTANCE: names.KIND_IPINSTANCE,
        names.PLURAL_NODEINFO: names.KIND_NODEINFO,
    }[plural]


def bridge_api(cluster: NodeCluster, nodes: Iterable[str]) -> None:
    """Each node's 127.0.0.1:API_PORT → a unix socket → KMock on our loopback (namespaces cannot
    reach it); writes ``kubeconfig-node`` in the workdir for processes inside the nodes."""
    api_socket = cluster.workdir / "api.sock"
    cluster.helpers.append(
        subprocess.Popen(
            ["socat", f"UNIX-LISTEN:{api_socket},fork,mode=600", f"TCP:127.0.0.1:{cluster.api.port}"],
            stderr=subprocess.DEVNULL,
        )
    )
    for node in nodes:
        cluster.helpers.append(
            subprocess.Popen(
                ["ip", "netns", "exec", cluster.ns(node), "socat",
                 f"TCP-LISTEN:{API_PORT},bind=127.0.0.1,fork,reuseaddr", f"UNIX-CONNECT:{api_socket}"],
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
    kubeconfig = cluster.api.write_kubeconfig(cluster.workdir / "kubeconfig-node")
    kubeconfig.write_text(kubeconfig.read_text().replace(cluster.api.url, f"http://127.0.0.1:{API_PORT}"))


def _build(cluster: NodeCluster) -> None:
    sw = cluster.add_netns("sw")
    sh(sw, "ip link add br0 type bridge; ip link set br0 up")
    gw = cluster.add_netns("gw")
    ext = cluster.add_netns("ext")
    ports = {**{n: cluster.add_netns(n) for n in NODES}, "gw": gw}
    for short, netns in ports.items():
        sh(sw, f"ip link add p-{short} type veth peer name eth0 netns {netns}; ip link set p-{short} master br0 up")
        sh(netns, "ip link set eth0 up")
    for n in NODES:
        sh(cluster.ns(n), f"ip addr add {NODE_IP[n]}/24 dev eth0; ip -6 addr add {NODE_IP6[n]}/64 dev eth0 nodad;"
           f" ip route add default via {GATEWAY_IP}")  # fmt: skip
    sh(gw, f"ip link add eth1 type veth peer name eth0 netns {ext}; ip link set eth1 up;"
           f" ip addr add {GATEWAY_IP}/24 dev eth0; ip addr add {UNDERLAY_GATEWAY}/24 dev eth0;"
           " ip -6 addr add fd00:1::1/64 dev eth0 nodad; ip -6 addr add fd00:56::1/64 dev eth0 nodad;"
           " ip addr add 203.0.113.1/24 dev eth1;"
           " sysctl -qw net.ipv4.ip_forward=1;"
           f" ip route add 10.244.0.0/16 via {NODE_IP['n1']};"
           f" ip route add 10.245.0.0/16 via {NODE_IP['n1']}")  # fmt: skip
    sh(ext, f"ip link set eth0 up; ip addr add {EXTERNAL_IP}/24 dev eth0; ip route add default via 203.0.113.1")
    bridge_api(cluster, NODES)
    for network in NETWORKS:
        cluster.create(names.PLURAL_NETWORK, network)
    for subnet in SUBNETS:
        cluster.create(names.PLURAL_SUBNET, subnet)
    for n in NODES:
        labels = {UNDERLAY_LABEL: "yes"} if n in ("n1", "n2") else {}
        cluster.core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n, "labels": labels}})


def _teardown(cluster: NodeCluster) -> None:
    for node in list(cluster.agents):
        with contextlib.suppress(Exception):
            cluster.stop_agent(node)
    for helper in cluster.helpers:
        helper.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            helper.wait(timeout=5)
    for netns in reversed(cluster.namespaces):
        # Processes left in a namespace (a stuck ping) would keep it alive: end only those.
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=False).stdout
        for pid in pids.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", netns], check=False)


@contextlib.contextmanager
def node_cluster(
    workdir: Path, vtep_ipv6: bool = False, resync_seconds: float = TEST_RESYNC_SECONDS
) -> Iterator[NodeCluster]:
    """Build the test bed in ``workdir``, start the agents, and tear everything down afterwards."""
    prefix = "hl" + secrets.token_hex(3)
    with RunningAPI() as api:
        api_client = config.new_client_from_config(config_file=str(api.write_kubeconfig(workdir / "kubeconfig")))
        cluster = NodeCluster(
            prefix,
            workdir,
            api,
            client.CustomObjectsApi(api_client),
            client.CoreV1Api(api_client),
            vtep_ipv6=vtep_ipv6,
            resync_seconds=resync_seconds,
        )
        try:
            _build(cluster)
            for n in NODES:
                (workdir / n).mkdir(mode=0o700)
                cluster.write_cni_config(n)
                cluster.start_agent(n)
            for n in NODES:
                cluster.wait_reconciled(n)
            yield cluster
        finally:
            _teardown(cluster)
