"""The real agent runs the node's BGP speaker: ``python -m hybridlay_agent`` in the rack's node namespaces.

The rack of bgp_rack.py (BIRD 2 as the ToR, TCP MD5 required on every session) with one agent per
node, started as tests/node/nodebed.py starts them, against the API stand-in KMock
(tests/support/kapi.py; no kube-apiserver can run here). The Network, Subnet, Secret, Nodes and
IPInstances are written into the API as the operator and an administrator would; the agents find
the BGP network through their node's labels, read the peer password from the Secret, and announce
from the IPInstances bound to their node. Pods are real: the plugin executable ``cni/hybridlay``
(run as a runtime runs it, tests/cni/cnitest.py) asks the node's agent to plumb them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bgp_rack import (
    EXT_ADDRESS,
    NODE_ADDRESSES,
    PASSWORD,
    SUBNET,
    SUBNET_CIDR,
    SUBNET_TABLE,
    Rack,
    bgp_network,
    build_rack,
    destroy_rack,
    sh,
)
from bgp_rack import pod_instance as instance_of
from cnitest import run_plugin
from kapi import RunningAPI
from kubernetes import client, config
from nodebed import NodeCluster, bridge_api

from hybridlay import names
from hybridlay.addresses import instance_name
from hybridlay.model import (
    AddressRange,
    InstanceAddress,
    Network,
    NetworkMode,
    NetworkType,
    Subnet,
    ipinstance_to_resource,
    network_to_resource,
    subnet_to_resource,
)
from hybridlay_cni.spec import E_TRY_AGAIN_LATER

pytestmark = [pytest.mark.netns, pytest.mark.slow]
NODE_LABELS = {"rack": "r1"}  # bgp_network()'s nodeSelector
ANNOUNCE_TIMEOUT = 3


@dataclass
class BGPAgents(NodeCluster):
    """The node test bed's agent handling, on the rack's node namespaces."""

    node_namespaces: dict[str, str] = field(default_factory=dict)

    def ns(self, short: str) -> str:
        return self.node_namespaces[short]

    def bgp_events(self, node: str) -> list[str]:
        """The agent's speaker actions (start, restart, stop), oldest first."""
        log = self.agent_log(node).read_text(errors="replace")
        return [line.split('"action": "')[1].split('"')[0] for line in log.splitlines() if '"event": "bgp"' in line]

    def wait_bgp_event(self, node: str, count: int, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(events := self.bgp_events(node)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"agent {node}: {events}\n{self.agent_log(node).read_text()[-3000:]}")
            time.sleep(0.1)
        return events

    def add_instance(self, ip: str, node: str, pod: str) -> None:
        self.create(names.PLURAL_IPINSTANCE, ipinstance_to_resource(instance_of(ip, node, pod)))

    def plugin(self, command: str, node: str, pod: str, netns: str) -> Any:
        """The real plugin, as the runtime on ``node`` calls it for pod ``default/<pod>``."""
        config = {"cniVersion": "1.1.0", "name": "hybridlay", "type": "hybridlay"}
        config["socket"] = str(self.workdir / node / "cni.sock")
        return run_plugin(command, config, container_id=f"c-{pod}", netns=netns, pod=("default", pod))


def populate(cluster: BGPAgents) -> None:
    cluster.core.create_namespaced_secret(
        "kube-system",
        {"metadata": {"name": "tor-password", "namespace": "kube-system"}, "stringData": {"password": PASSWORD}},
    )
    cluster.create(names.PLURAL_NETWORK, network_to_resource(bgp_network(password=True)))
    cluster.create(names.PLURAL_SUBNET, subnet_to_resource(SUBNET))
    for node in NODE_ADDRESSES:
        cluster.core.create_node(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": NODE_LABELS}}
        )


@pytest.fixture(scope="module")
def agents() -> Iterator[tuple[BGPAgents, Rack]]:
    workdir = Path(tempfile.mkdtemp(prefix="hybridlay-bgp-agents-"))
    workdir.chmod(0o700)
    rack = build_rack(workdir, PASSWORD)
    try:
        with pytest.MonkeyPatch.context() as env, RunningAPI() as api:
            # The agents' settings, as a DaemonSet sets them.
            env.setenv("HYBRIDLAY_BGP_PARENT", "eth0")
            env.setenv("HYBRIDLAY_BGP_ANNOUNCE_TIMEOUT", str(ANNOUNCE_TIMEOUT))
            for ns in rack.nodes.values():
                # The rack's stand-in for the BGP subnet table goes: here the agent's data plane provides it.
                sh("ip", "-n", ns, "rule", "del", "pref", "1100")
                sh("ip", "-n", ns, "route", "flush", "table", str(SUBNET_TABLE), check=False)
            api_client = config.new_client_from_config(config_file=str(api.write_kubeconfig(workdir / "kubeconfig")))
            cluster = BGPAgents(
                rack.prefix,
                workdir,
                api,
                client.CustomObjectsApi(api_client),
                client.CoreV1Api(api_client),
                node_namespaces=rack.nodes,
            )
            try:
                bridge_api(cluster, cluster.node_namespaces)
                populate(cluster)
                for node in NODE_ADDRESSES:
                    (workdir / node).mkdir(mode=0o700)
                    cluster.start_agent(node)
                for node in NODE_ADDRESSES:
                    cluster.wait_bgp_event(node, 1)
                yield cluster, rack
            finally:
                for node in list(cluster.agents):
                    with contextlib.suppress(Exception):
                        cluster.stop_agent(node)
                for helper in cluster.helpers:
                    helper.terminate()
                    helper.wait(timeout=5)
    finally:
        destroy_rack(rack)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_route(rack: Rack, prefix: str, check: Any, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while not check(route := rack.tor_route(prefix)):
        if time.monotonic() > deadline:
            raise AssertionError(f"ToR route {prefix}: {route!r}")
        time.sleep(0.05)
    return route


def test_agents_announce_the_subnet_and_their_pods(agents: tuple[BGPAgents, Rack]) -> None:
    cluster, rack = agents
    cluster.add_instance("10.200.0.11", "node1", "p1")
    cluster.add_instance("10.200.0.12", "node2", "p2")
    assert "via 192.168.100.11" in rack.wait_tor_route("10.200.0.11/32", contains="192.168.100.11")
    assert "via 192.168.100.12" in rack.wait_tor_route("10.200.0.12/32", contains="192.168.100.12")
    # Both nodes announce the subnet: the ToR spreads it over both (BIRD merges the paths).
    subnet = wait_route(rack, SUBNET_CIDR, lambda r: all(a in r for a in NODE_ADDRESSES.values()))
    assert "nexthop" in subnet
    # The sessions carry the Secret's password (BIRD requires it), which no agent log contains.
    for node in NODE_ADDRESSES:
        assert "Established" in rack.birdc("show", "protocols", node)
        assert PASSWORD not in cluster.agent_log(node).read_text(errors="replace")
    assert cluster.bgp_events("node1") == ["start"]


def test_deleting_an_ipinstance_withdraws_its_route(agents: tuple[BGPAgents, Rack]) -> None:
    cluster, rack = agents
    cluster.add_instance("10.200.0.13", "node2", "p3")
    rack.wait_tor_route("10.200.0.13/32", contains="192.168.100.12")
    cluster.delete(names.PLURAL_IPINSTANCE, instance_name("10.200.0.13"))
    rack.wait_tor_route("10.200.0.13/32", present=False)
    assert rack.tor_route("10.200.0.12/32"), "another pod's route went too"


def test_agent_restart_withdraws_nothing_at_the_tor_and_traffic_flows_on(agents: tuple[BGPAgents, Rack]) -> None:
    cluster, rack = agents
    netns = rack.add_ns("p4")
    cluster.add_instance("10.200.0.14", "node1", "p4")
    assert cluster.plugin("ADD", "node1", "p4", f"/var/run/netns/{netns}").code == 0
    rack.wait_tor_route("10.200.0.14/32", contains="192.168.100.11")
    starts = len(cluster.bgp_events("node1"))
    monitor = subprocess.Popen(["ip", "-n", rack.tor, "monitor", "route"], stdout=subprocess.PIPE, text=True)
    ping = subprocess.Popen(
        ["ip", "netns", "exec", rack.ext, "ping", "-n", "-q", "-i", "0.05", "-W", "1", "10.200.0.14"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        cluster.stop_agent("node1")
        time.sleep(0.5)  # no agent and no speaker for a moment
        assert rack.tor_route("10.200.0.14/32"), "the ToR dropped the route although the agent stopped gracefully"
        assert "Neighbor graceful restart active" in rack.birdc("show", "protocols", "all", "node1")
        cluster.start_agent("node1")
        cluster.wait_bgp_event("node1", starts + 1)
        wait_route(rack, "10.200.0.14/32", bool)
        deadline = time.monotonic() + 20
        while "Established" not in rack.birdc("show", "protocols", "node1"):
            assert time.monotonic() < deadline, rack.birdc("show", "protocols", "all", "node1")
            time.sleep(0.1)
        time.sleep(1)  # BIRD's End-of-RIB sweep of stale routes, had any been left stale
    finally:
        ping.send_signal(signal.SIGINT)
        ping_output, _ = ping.communicate(timeout=10)
        monitor.terminate()
        events, _ = monitor.communicate(timeout=5)
    sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", ping_output).groups())
    assert sent > 20 and received == sent, ping_output
    assert not [line for line in events.splitlines() if line.startswith("Deleted") and "10.200.0." in line], events
    assert "via 192.168.100.11" in rack.tor_route("10.200.0.14/32")
    assert "via 192.168.100.11" in rack.tor_route("10.200.0.11/32")


def test_plugin_add_returns_once_announced_and_the_pod_talks_to_the_outside_without_nat(
    agents: tuple[BGPAgents, Rack],
) -> None:
    cluster, rack = agents
    netns = rack.add_ns("pa")
    cluster.add_instance("10.200.0.21", "node1", "pa")
    add = cluster.plugin("ADD", "node1", "pa", f"/var/run/netns/{netns}")
    assert add.code == 0, add.raw
    assert add.output["ips"][0]["address"] == "10.200.0.21/24"
    # ADD returned after ExaBGP took the route over an established session; the UPDATE follows at once.
    rack.wait_tor_route("10.200.0.21/32", contains="192.168.100.11", timeout=2)
    # The external host and the pod see each other's own addresses: routed by the ToR, no NAT.
    assert cluster.seen_source(rack.ext, netns, "10.200.0.21") == EXT_ADDRESS
    assert cluster.seen_source(netns, rack.ext, EXT_ADDRESS) == "10.200.0.21"
    assert cluster.plugin("DEL", "node1", "pa", f"/var/run/netns/{netns}").code == 0


def test_plugin_add_is_try_again_later_while_the_session_is_down(agents: tuple[BGPAgents, Rack]) -> None:
    cluster, rack = agents
    netns = rack.add_ns("pb")
    cluster.add_instance("10.200.0.22", "node1", "pb")
    rack.wait_tor_route("10.200.0.22/32")
    rack.birdc("disable", "node1")
    try:
        started = time.monotonic()
        add = cluster.plugin("ADD", "node1", "pb", f"/var/run/netns/{netns}")
        assert add.output["code"] == E_TRY_AGAIN_LATER, add.raw
        assert "not announced over established BGP sessions" in add.output["msg"]
        assert time.monotonic() - started >= ANNOUNCE_TIMEOUT
        assert "eth0" not in sh("ip", "-n", netns, "link", "show").stdout, "a failed ADD left the pod plumbed"
    finally:
        rack.birdc("enable", "node1")
    # The session comes back with the node's routes, and the runtime's retry succeeds.
    rack.wait_tor_route("10.200.0.22/32", contains="192.168.100.11", timeout=30)
    add = cluster.plugin("ADD", "node1", "pb", f"/var/run/netns/{netns}")
    assert add.code == 0, add.raw


def test_pod_moving_node_takes_its_route_along(agents: tuple[BGPAgents, Rack]) -> None:
    cluster, rack = agents
    cluster.add_instance("10.200.0.15", "node1", "p5")
    rack.wait_tor_route("10.200.0.15/32", contains="192.168.100.11")
    # As the operator rebinds a stateful pod's address to its new node.
    cluster.custom.patch_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        names.PLURAL_IPINSTANCE,
        instance_name("10.200.0.15"),
        {"spec": {"binding": {"nodeName": "node2"}}, "metadata": {"labels": {names.LABEL_NODE: "node2"}}},
    )
    wait_route(rack, "10.200.0.15/32", lambda r: "192.168.100.12" in r and "192.168.100.11" not in r)


def test_exabgp_dying_is_noticed_at_the_next_resync_and_the_routes_come_back(agents: tuple[BGPAgents, Rack]) -> None:
    cluster, rack = agents
    cluster.add_instance("10.200.0.16", "node1", "p6")
    rack.wait_tor_route("10.200.0.16/32", contains="192.168.100.11")
    restarts = cluster.bgp_events("node1").count("restart")
    pid_file = cluster.workdir / "node1" / "bgp" / "exabgp.pid"
    dead = int(pid_file.read_text())
    os.kill(dead, signal.SIGKILL)  # ExaBGP crashes
    deadline = time.monotonic() + 10
    while "Neighbor graceful restart active" not in rack.birdc("show", "protocols", "all", "node1"):
        assert time.monotonic() < deadline, rack.birdc("show", "protocols", "all", "node1")
        time.sleep(0.1)
    # The ToR gives up on the stale routes (as when its restart timer runs out): only a new speaker brings them back.
    rack.birdc("restart", "node1")
    rack.wait_tor_route("10.200.0.16/32", present=False)
    # Nothing changed in the API, so only the agent's periodic resync (3 s here) can notice.
    deadline = time.monotonic() + 15
    while cluster.bgp_events("node1").count("restart") == restarts:
        assert time.monotonic() < deadline, cluster.agent_log("node1").read_text()[-3000:]
        time.sleep(0.1)
    assert "via 192.168.100.11" in rack.wait_tor_route("10.200.0.16/32", contains="192.168.100.11")
    assert "192.168.100.11" in wait_route(rack, SUBNET_CIDR, lambda r: "192.168.100.11" in r)
    assert "Established" in rack.birdc("show", "protocols", "node1")
    assert int(pid_file.read_text()) != dead
    assert not Path(f"/proc/{dead}").exists()


VLAN_GATEWAY = "192.168.101.1"
MATRIX_NETWORKS = (
    Network(name="overlay", type=NetworkType.OVERLAY, net_id=7),
    Network(name="vlan", type=NetworkType.UNDERLAY, mode=NetworkMode.VLAN, net_id=0, node_selector=NODE_LABELS),
)
MATRIX_SUBNETS = (
    Subnet(name="overlay-v4", network="overlay", range=AddressRange(version="4", cidr="10.244.0.0/16")),
    Subnet(
        name="vlan-v4", network="vlan", range=AddressRange(version="4", cidr="192.168.101.0/24", gateway=VLAN_GATEWAY)
    ),
)
# pod → node, address with its subnet's prefix length, subnet
MATRIX_PODS = {
    "m-bgp": ("node1", "10.200.0.31/24", SUBNET),
    "m-overlay": ("node2", "10.244.7.5/16", MATRIX_SUBNETS[0]),
    "m-vlan": ("node2", "192.168.101.10/24", MATRIX_SUBNETS[1]),
}


def test_bgp_pod_and_overlay_and_vlan_pods_reach_each_other_without_nat(agents: tuple[BGPAgents, Rack]) -> None:
    """The matrix cells for BGP: a BGP pod on node1 and, on node2, an overlay pod (VXLAN between the node
    namespaces) and a VLAN netID 0 pod on the nodes' L2 (its gateway on the ToR), both ways, own addresses seen."""
    cluster, rack = agents
    sh("ip", "-n", rack.tor, "addr", "add", f"{VLAN_GATEWAY}/24", "dev", "br0")
    for network in MATRIX_NETWORKS:
        cluster.create(names.PLURAL_NETWORK, network_to_resource(network))
    for subnet in MATRIX_SUBNETS:
        cluster.create(names.PLURAL_SUBNET, subnet_to_resource(subnet))
    netns: dict[str, str] = {}
    try:
        for pod, (node, address, subnet) in MATRIX_PODS.items():
            instance = dataclasses.replace(
                instance_of(address.split("/")[0], node, pod),
                network=subnet.network,
                subnet=subnet.name,
                address=InstanceAddress(version="4", ip=address),
            )
            cluster.create(names.PLURAL_IPINSTANCE, ipinstance_to_resource(instance))
            netns[pod] = rack.add_ns(pod)
            add = cluster.plugin("ADD", node, pod, f"/var/run/netns/{netns[pod]}")
            assert add.code == 0, add.raw
        bgp_ip = MATRIX_PODS["m-bgp"][1].split("/")[0]
        # The ToR knows no overlay route: overlay traffic can only take the VXLAN tunnel between the nodes.
        assert "10.244." not in sh("ip", "-n", rack.tor, "route").stdout
        for other in ("m-overlay", "m-vlan"):
            other_ip = MATRIX_PODS[other][1].split("/")[0]
            assert cluster.ping(netns["m-bgp"], other_ip), f"BGP pod → {other}"
            assert cluster.ping(netns[other], bgp_ip), f"{other} → BGP pod"
            assert cluster.seen_source(netns["m-bgp"], netns[other], other_ip) == bgp_ip
            assert cluster.seen_source(netns[other], netns["m-bgp"], bgp_ip) == other_ip
    finally:
        for pod, (node, address, _) in MATRIX_PODS.items():
            if pod in netns:
                cluster.plugin("DEL", node, pod, f"/var/run/netns/{netns[pod]}")
            with contextlib.suppress(Exception):
                cluster.delete(names.PLURAL_IPINSTANCE, instance_name(address.split("/")[0]))


def test_node_leaving_the_network_withdraws_its_routes(agents: tuple[BGPAgents, Rack]) -> None:
    cluster, rack = agents
    rack.wait_tor_route("10.200.0.12/32", contains="192.168.100.12")
    cluster.core.patch_node("node2", {"metadata": {"labels": {"rack": None}}})
    rack.wait_tor_route("10.200.0.12/32", present=False)  # within a resync: node labels are not watched
    wait_route(rack, SUBNET_CIDR, lambda r: "192.168.100.12" not in r and "192.168.100.11" in r)
    assert cluster.wait_bgp_event("node2", 2)[-1] == "stop"
