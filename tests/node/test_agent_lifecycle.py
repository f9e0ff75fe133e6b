"""Agent restarts without disturbing traffic, converges with zero writes, and leaves foreign state alone."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from nodebed import NODE_IP, POD_NAMESPACE, NodeCluster, sh

from hybridlay import names
from hybridlay.dataplane.state import ROUTE_PROTOCOL
from hybridlay.devices import host_veth_name

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(node_cluster: NodeCluster) -> NodeCluster:
    node_cluster.add_pod("x1", "n1", ["10.244.1.11", "fd00:10::1:11"])
    node_cluster.add_pod("y2", "n2", ["10.244.1.22"])
    assert node_cluster.ping(node_cluster.pods["x1"].netns, "10.244.1.22")
    return node_cluster


def test_restart_loses_no_packet_and_changes_nothing(cluster: NodeCluster) -> None:
    ping = subprocess.Popen(
        ["ip", "netns", "exec", cluster.pods["x1"].netns, "ping", "-n", "-q", "-i", "0.05", "-W", "1", "10.244.1.22"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        before = len(cluster.reconciles("n1"))
        cluster.stop_agent("n1")
        time.sleep(0.5)  # no agent at all for a moment
        cluster.start_agent("n1")
        first = cluster.wait_reconciled("n1", after=before)
        time.sleep(0.5)
    finally:
        ping.send_signal(2)
        out, _ = ping.communicate(timeout=10)
    sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())
    assert sent > 20
    assert received == sent, out
    assert first["writes"] == 0, first


def test_foreign_state_survives_reconciles(cluster: NodeCluster) -> None:
    node = cluster.ns("n1")
    foreign = {
        "rule": ("ip rule add from 10.99.0.0/16 lookup 100 priority 1050", "ip rule show",
                 "from 10.99.0.0/16 lookup 100"),
        "rule to our table": ("ip rule add to 10.98.0.0/16 lookup 39999 priority 500", "ip rule show",
                              "to 10.98.0.0/16 lookup 39999"),
        "route": ("ip route add 10.99.0.0/16 dev eth0 table 100", "ip route show table 100", "10.99.0.0/16 dev eth0"),
        "main route": ("ip route add 10.97.0.0/16 via 10.1.0.1", "ip route show", "10.97.0.0/16 via 10.1.0.1"),
        "chain": ("iptables -N USER-CHAIN; iptables -A USER-CHAIN -j RETURN; iptables -I FORWARD -j USER-CHAIN",
                  "iptables-save -t filter", "-A FORWARD -j USER-CHAIN"),
        "nat rule": ("iptables -t nat -A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE", "iptables-save -t nat",
                     "-A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE"),
        "ipset": ("ipset create USER-SET hash:ip", "ipset list -n", "USER-SET"),
        "proxy entry": ("ip neigh add proxy 10.99.0.5 dev eth0", "ip neigh show proxy", "10.99.0.5 dev eth0"),
        "vxlan": ("ip link add uservx type vxlan id 99 dstport 4789 dev eth0", "ip -o link show", "uservx"),
    }  # fmt: skip
    for add, _, _ in foreign.values():
        sh(node, add)
    before = len(cluster.reconciles("n1"))
    # An event that makes the agent change things, then a periodic resync.
    cluster.add_pod("z1", "n1", ["10.244.1.13"])
    changed = cluster.wait_reconciled("n1", after=before)
    assert cluster.ping(cluster.pods["z1"].netns, "10.244.1.22")
    cluster.wait_reconciled("n1", after=len(cluster.reconciles("n1")))
    assert changed["writes"] > 0
    for what, (_, show, expected) in foreign.items():
        assert expected in sh(node, show).stdout, f"the user's {what} was removed"


def test_agents_publish_their_nodeinfo(cluster: NodeCluster) -> None:
    from hybridlay.dataplane.planner import vtep_mac  # noqa: PLC0415

    for node, ip in NODE_IP.items():
        info = cluster.custom.get_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL_NODEINFO, node)
        assert info["spec"]["vtepInfo"]["ip"] == ip
        assert info["spec"]["vtepInfo"]["mac"] == vtep_mac(node)
        assert ip in info["spec"]["vtepInfo"]["localIPs"]
        link = sh(cluster.ns(node), "ip -o link show eth0.vxlan4").stdout
        assert f"link/ether {vtep_mac(node)}" in link


def test_removed_pod_leaves_no_state(cluster: NodeCluster) -> None:
    """The plugin's DEL removes the pod's veth; the IPInstance's DELETED watch event reaches every agent,
    so n2's neighbour entry for the pod on n1 goes away too."""
    cluster.add_pod("gone", "n1", ["10.244.1.99"])
    assert cluster.ping(cluster.pods["y2"].netns, "10.244.1.99")
    assert "10.244.1.99 " in sh(cluster.ns("n2"), "ip neigh show dev eth0.vxlan4").stdout
    cluster.remove_pod("gone")
    assert host_veth_name(POD_NAMESPACE, "gone") not in sh(cluster.ns("n1"), "ip -o link show").stdout
    deadline = time.monotonic() + 10
    while "10.244.1.99 " in sh(cluster.ns("n2"), "ip neigh show dev eth0.vxlan4").stdout:
        assert time.monotonic() < deadline, "the neighbour entry of a deleted pod stayed"
        time.sleep(0.2)
    assert "10.244.1.99/32" not in sh(cluster.ns("n1"), "ip route show table 39999").stdout


def test_neighbour_miss_is_answered_by_the_agent_not_broadcast(cluster: NodeCluster) -> None:
    """With the static entry gone, the kernel asks the agent (app_solicit) instead of flooding ARP."""
    node = cluster.ns("n1")
    assert sh(
        node, "sysctl -n net.ipv4.neigh.eth0/vxlan4.mcast_solicit net.ipv4.neigh.eth0/vxlan4.app_solicit"
    ).stdout.split() == ["0", "1"]
    for _ in range(3):  # a periodic reconcile could restore the entry first: then try again
        sh(node, "ip neigh del 10.244.1.22 dev eth0.vxlan4")
        assert sh(cluster.pods["x1"].netns, "ping -n -c 1 -W 2 10.244.1.22", check=False).returncode == 0
        if '"ip": "10.244.1.22"' in cluster.agent_log("n1").read_text():
            break
    else:
        raise AssertionError("the agent never answered a neighbour miss")
    assert "10.244.1.22 lladdr" in sh(node, "ip neigh show dev eth0.vxlan4").stdout


def test_reconcile_after_a_pod_add_writes_nothing(cluster: NodeCluster) -> None:
    """The plugin's host side (table-39999 route with our route protocol, sysctls, proxy entries) is what
    the agent's planner wants, so the reconcile that the ADD requests, and the next one, write nothing."""
    node = cluster.ns("n3")
    pod = cluster.new_pod("w6", "n3", ["fd00:10::3:6"])  # IPv6 only: the host's IPv4 sysctls must agree too
    seen = len(cluster.reconciles("n3"))
    cluster.create_ipinstance("fd00:10::3:6", "w6", "n3")
    # First the IPInstance's own reconcile (the tunnel's proxy NDP entry; the pod's route waits for its
    # veth): its log record, not only the kernel's entry, which comes a few ms before the record.
    while cluster.wait_reconciled("n3", after=seen)["writes"] == 0:
        seen += 1
    assert "fd00:10::3:6 " in sh(node, "ip -6 neigh show proxy dev eth0.vxlan4").stdout
    before = seen + 1
    # A distribution's default (strict reverse-path filter) for new devices: the plugin must set the planner's 0.
    sh(node, "sysctl -qw net.ipv4.conf.default.rp_filter=1")
    try:
        cluster.attach(pod)
    finally:
        sh(node, "sysctl -qw net.ipv4.conf.default.rp_filter=0")
    requested = cluster.wait_reconciled("n3", after=before)
    following = cluster.wait_reconciled("n3", after=before + 1)
    assert (requested["writes"], following["writes"]) == (0, 0), (requested, following)
    route = sh(node, "ip -6 route show table 39999 fd00:10::3:6").stdout
    assert f"dev {host_veth_name(POD_NAMESPACE, 'w6')} proto {ROUTE_PROTOCOL} " in route
    assert cluster.ping(cluster.pods["x1"].netns, "fd00:10::3:6")


def test_dual_stack_pod_whose_second_address_comes_late_gets_both(cluster: NodeCluster) -> None:
    """The operator creates a dual-stack pod's IPInstances one after the other: ADD waits for the second
    (the pod's ip-family annotation says there is one) instead of plumbing the first alone."""
    pod = cluster.new_pod("late", "n2", ["10.244.2.7", "fd00:10::2:7"])
    cluster.create_ipinstance("10.244.2.7", "late", "n2")
    adding = cluster.start_cni(pod, "ADD")
    time.sleep(1)
    assert adding.poll() is None, f"ADD returned with the IPv4 address alone: {adding.communicate()}"
    cluster.create_ipinstance("fd00:10::2:7", "late", "n2")
    result = cluster.finish_cni(adding)
    assert result is not None
    assert [ip["address"] for ip in result["ips"]] == ["10.244.2.7/16", "fd00:10::2:7/64"]
    assert cluster.ping(cluster.pods["x1"].netns, "fd00:10::2:7")


def wait_quiet(cluster: NodeCluster, node: str, seconds: float = 1, timeout: float = 20) -> None:
    """Until ``node``'s agent has gone ``seconds`` without a reconcile."""
    deadline = time.monotonic() + timeout
    count = len(cluster.reconciles(node))
    while True:
        time.sleep(seconds)
        latest = len(cluster.reconciles(node))
        if latest == count:
            return
        assert time.monotonic() < deadline, f"{node} kept reconciling"
        count = latest


@pytest.fixture
def slow_resync(cluster: NodeCluster) -> Iterator[NodeCluster]:
    """Node 1's agent with its next periodic resync 10 minutes away: what it restores, an event made it."""
    before = len(cluster.reconciles("n1"))
    usual, cluster.resync_seconds = cluster.resync_seconds, 600
    cluster.stop_agent("n1")
    cluster.start_agent("n1")
    cluster.wait_reconciled("n1", after=before)
    # The start-up reconciles (the API's first events ask for more) must be over before a test takes a
    # link down: one still running would restore the link's entries before the test sees them gone.
    wait_quiet(cluster, "n1")
    try:
        yield cluster
    finally:
        cluster.resync_seconds = usual
        cluster.stop_agent("n1")
        cluster.start_agent("n1")


def flap_and_wait_restored(cluster: NodeCluster, device: str, wanted: dict[str, str]) -> None:
    """Set ``device`` down (checking the kernel dropped each ``wanted`` line of its command's output),
    up again, and wait until every line is back."""
    node = cluster.ns("n1")
    sh(node, f"ip link set {device} down")
    for command, line in wanted.items():
        assert line not in sh(node, command).stdout, f"the kernel kept {line!r} on a link set down"
    sh(node, f"ip link set {device} up")
    deadline = time.monotonic() + 10
    while not all(line in sh(node, command).stdout for command, line in wanted.items()):
        assert time.monotonic() < deadline, f"n1 did not restore {list(wanted.values())} after {device} came up"
        time.sleep(0.1)


def test_a_flapped_tunnel_gets_its_routes_and_proxy_entries_back_at_once(slow_resync: NodeCluster) -> None:
    """Link down makes the kernel drop the routes and proxy entries on the link; the agent restores
    them when the link comes back up, not at its next periodic resync."""
    wanted = {
        "ip neigh show proxy": "10.244.1.11 dev eth0.vxlan4 proxy",
        "ip route show table 40000": "10.244.0.0/16 dev eth0.vxlan4",
    }
    flap_and_wait_restored(slow_resync, "eth0.vxlan4", wanted)
    assert slow_resync.ping(slow_resync.pods["x1"].netns, "10.244.1.22")


def test_a_flapped_pod_veth_gets_its_ipv6_gateway_back(slow_resync: NodeCluster) -> None:
    veth = host_veth_name(POD_NAMESPACE, "x1")
    flap_and_wait_restored(slow_resync, veth, {"ip -6 neigh show proxy": f"fe80::1 dev {veth} proxy"})
