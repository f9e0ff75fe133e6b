"""The speaker against a real BGP peer: ExaBGP in node namespaces, BIRD 2 as the ToR (see bgp_rack.py).

Pods are namespaces wired by a stand-in for the CNI plugin, and the BGP subnet table is programmed
by the rack itself (reference §5), because the plugin and the agent's planner are other issues.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bgp_rack import (
    EXT_ADDRESS,
    PASSWORD,
    SUBNET,
    SUBNET6,
    SUBNET6_CIDR,
    SUBNET_CIDR,
    TOR_ADDRESS,
    TOR_ADDRESS6,
    TOR_ASN,
    Rack,
    bgp_network,
    in_ns,
    node_facts,
    pod_instance,
    sh,
    speaker_for,
)

from hybridlay.bgp import Announcement, desired_announcements, speaker_config
from hybridlay.model import BGPPeer, IPInstance
from hybridlay_agent.bgp_speaker import BGPSpeaker

pytestmark = [pytest.mark.netns, pytest.mark.slow]
NO_EXPORT = "BGP.community: (65535,65281)"


def desired(rack: Rack, node: str, instances: list[IPInstance]) -> frozenset[Announcement]:
    config, _ = speaker_for(rack, node)
    return desired_announcements(bgp_network(password=True), config, [SUBNET], instances, node_facts(node))


async def start_speaker(
    rack: Rack, node: str, announced: frozenset[Announcement] = frozenset(), run_dir: Path | None = None
) -> BGPSpeaker:
    config, prefix = speaker_for(rack, node)
    speaker = BGPSpeaker(run_dir or rack.workdir / f"speaker-{node}", command_prefix=prefix)
    await speaker.start(config, announced, passwords={TOR_ADDRESS: rack.password or ""})
    await speaker.wait_established(30)
    return speaker


def source_seen_by_ext(rack: Rack, pod: str) -> str:
    """Connect from the pod to a TCP server on the external host, which answers with the source it saw."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", rack.ext, "python3", "-c",
         "import socket; s=socket.create_server(('0.0.0.0', 8080)); c, a = s.accept(); c.sendall(a[0].encode())"],
    )
    try:
        pod_ns = rack.pods[pod][0]
        client = ("import socket, time\nfor _ in range(50):\n    try:\n"
                  f"        c = socket.create_connection(('{EXT_ADDRESS}', 8080), timeout=2); break\n"
                  "    except OSError: time.sleep(0.1)\nprint(c.recv(100).decode())")
        return in_ns(pod_ns, "python3", "-c", client).stdout.strip()
    finally:
        server.kill()
        server.wait()


CRASHING_AGENT = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from bgp_rack import TOR_ADDRESS, bgp_network, node_facts
from hybridlay.bgp import Announcement, speaker_config
from hybridlay_agent.bgp_speaker import BGPSpeaker

async def main():
    given = json.loads(sys.stdin.readline())
    speaker = BGPSpeaker(given["run_dir"], command_prefix=["ip", "netns", "exec", given["netns"]])
    config = speaker_config(bgp_network(password=True), node_facts(given["node"]))
    announced = frozenset(Announcement(**a) for a in given["announced"])
    await speaker.start(config, announced, passwords={TOR_ADDRESS: given["password"]})
    await speaker.wait_established(30)
    print(speaker._process.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def crash_an_agent(rack: Rack, node: str, announced: frozenset[Announcement], run_dir: Path) -> int:
    """Run an agent with a speaker in another process, SIGKILL it and return its orphaned ExaBGP's pid."""
    agent = subprocess.Popen(
        [sys.executable, "-c", CRASHING_AGENT, str(Path(__file__).parent)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    given = {"run_dir": str(run_dir), "netns": rack.nodes[node], "node": node, "password": rack.password,
             "announced": [dataclasses.asdict(a) for a in announced]}
    assert agent.stdin is not None and agent.stdout is not None
    agent.stdin.write(json.dumps(given) + "\n")
    agent.stdin.flush()
    exabgp_pid = int(agent.stdout.readline())
    agent.kill()
    agent.wait()
    assert Path(f"/proc/{exabgp_pid}").exists(), "ExaBGP should outlive the crashed agent"
    return exabgp_pid


async def test_routes_reach_the_tor_and_pods_talk_to_the_outside_directly(rack: Rack, caplog):
    caplog.set_level(logging.INFO, logger="hybridlay_agent.bgp_speaker")
    speakers = {node: await start_speaker(rack, node) for node in ("node1", "node2")}
    try:
        assert all(s.session_states() == {TOR_ADDRESS: "up"} for s in speakers.values())
        rack.add_pod("pa", "node1", "10.200.0.5")
        rack.add_pod("pb", "node2", "10.200.0.6")
        pods = {
            "node1": [pod_instance("10.200.0.5", "node1", "pa")],
            "node2": [pod_instance("10.200.0.6", "node2", "pb")],
        }
        for node, speaker in speakers.items():
            await speaker.apply(desired(rack, node, pods[node]))
        await speakers["node1"].wait_announced("10.200.0.5", 10)
        await speakers["node2"].wait_announced("10.200.0.6", 10)

        assert "via 192.168.100.11 dev br0 proto bird" in rack.wait_tor_route("10.200.0.5/32")
        assert "via 192.168.100.12 dev br0 proto bird" in rack.wait_tor_route("10.200.0.6/32")
        # Both nodes announce the subnet: the ToR spreads it over both (ECMP).
        subnet_route = rack.wait_tor_route(SUBNET_CIDR, contains="192.168.100.12")
        assert "nexthop via 192.168.100.11" in subnet_route and "nexthop via 192.168.100.12" in subnet_route
        assert NO_EXPORT in rack.birdc("show", "route", "10.200.0.5/32", "all")
        assert NO_EXPORT not in rack.birdc("show", "route", SUBNET_CIDR, "all")
        # The ToR learnt our graceful-restart capability with the Network's restart time.
        neighbor_caps = rack.birdc("show", "protocols", "all", "node1").split("Neighbor capabilities")[1]
        assert "Graceful restart" in neighbor_caps and "Restart time: 300" in neighbor_caps

        # Directly routed, both ways, no NAT: the external host sees the pod's own address.
        in_ns(rack.ext, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.200.0.5")
        in_ns(rack.pods["pb"][0], "ping", "-c", "2", "-i", "0.2", "-W", "2", EXT_ADDRESS)
        assert source_seen_by_ext(rack, "pa") == "10.200.0.5"

        # The TCP MD5 password is in no process's argv and in none of the logs we relayed.
        argv = []
        for ns in rack.nodes.values():
            for pid in sh("ip", "netns", "pids", ns).stdout.split():
                argv.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        assert any("exabgp" in a for a in argv) and any("relay" in a for a in argv)
        assert not [a for a in argv if PASSWORD in a]
        assert any("exabgp:" in r.getMessage() for r in caplog.records)
        assert PASSWORD not in caplog.text
    finally:
        for speaker in speakers.values():
            await speaker.stop(graceful=False)


async def test_withdraw_graceful_restart_crash_and_move(rack: Rack):
    pod_a = pod_instance("10.200.0.5", "node1", "pa")
    pod_b = pod_instance("10.200.0.7", "node1", "pc")
    rack.add_pod("pa", "node1", "10.200.0.5")
    rack.add_pod("pc", "node1", "10.200.0.7")
    node1 = await start_speaker(rack, "node1")
    node2 = await start_speaker(rack, "node2")
    try:
        await node1.apply(desired(rack, "node1", [pod_a, pod_b]))
        await node2.apply(desired(rack, "node2", []))
        rack.wait_tor_route("10.200.0.5/32")
        rack.wait_tor_route("10.200.0.7/32")

        # Pod deleted → its route leaves the ToR, the others stay.
        rack.remove_pod("pc")
        await node1.apply(desired(rack, "node1", [pod_a]))
        rack.wait_tor_route("10.200.0.7/32", present=False)
        assert rack.tor_route("10.200.0.5/32")

        # Speaker restart (graceful stop, then start) and agent crash (ExaBGP left running; the
        # next start kills it by its pid file): the ToR never deletes the route, traffic flows on.
        monitor = subprocess.Popen(["ip", "-n", rack.tor, "monitor", "route"], stdout=subprocess.PIPE, text=True)
        ping = subprocess.Popen(
            ["ip", "netns", "exec", rack.ext, "ping", "-c", "120", "-i", "0.05", "-W", "1", "10.200.0.5"],
            stdout=subprocess.PIPE, text=True,
        )
        announced = node1.announced
        await node1.stop(graceful=True)
        await asyncio.sleep(0.5)
        assert rack.tor_route("10.200.0.5/32"), "the ToR dropped the route although the restart was graceful"
        assert "Neighbor graceful restart active" in rack.birdc("show", "protocols", "all", "node1")
        node1 = await start_speaker(rack, "node1", announced)
        await node1.stop(graceful=True)
        leftover = crash_an_agent(rack, "node1", announced, node1.run_dir)
        node1 = await start_speaker(rack, "node1", announced, run_dir=node1.run_dir)
        assert not Path(f"/proc/{leftover}").exists(), "the crashed agent's ExaBGP was not replaced"
        await node1.wait_announced("10.200.0.5", 10)
        ping_output, _ = ping.communicate(timeout=30)
        time.sleep(1)  # let BIRD finish its End-of-RIB sweep of stale routes before we look
        monitor.terminate()
        events, _ = monitor.communicate(timeout=5)
        assert not [line for line in events.splitlines() if line.startswith("Deleted") and "10.200.0." in line]
        assert " 0% packet loss" in ping_output, ping_output
        assert rack.tor_route("10.200.0.5/32")

        # Pod moves node1 → node2: the route follows.
        rack.remove_pod("pa")
        rack.add_pod("pa", "node2", "10.200.0.5")
        moved = pod_instance("10.200.0.5", "node2", "pa")
        await node1.apply(desired(rack, "node1", []))
        await node2.apply(desired(rack, "node2", [moved]))
        await node2.wait_announced("10.200.0.5/32", 10)
        assert "via 192.168.100.12" in rack.wait_tor_route("10.200.0.5/32", contains="192.168.100.12")
        in_ns(rack.ext, "ping", "-c", "1", "-W", "2", "10.200.0.5")

        # The contrast: a non-graceful stop (a node leaving the network) does withdraw at the ToR.
        await node2.stop(graceful=False)
        rack.wait_tor_route("10.200.0.5/32", present=False)
    finally:
        await node1.stop(graceful=False)
        await node2.stop(graceful=False)


async def test_wait_announced_times_out_while_the_session_is_down(rack: Rack):
    """A CNI ADD must not report success for a pod the switch cannot know about yet."""
    rack.birdc("disable", "node1")
    config, prefix = speaker_for(rack, "node1")
    speaker = BGPSpeaker(rack.workdir / "speaker", command_prefix=prefix)
    await speaker.start(config, passwords={TOR_ADDRESS: PASSWORD})
    try:
        await speaker.apply(desired(rack, "node1", [pod_instance("10.200.0.5", "node1", "pa")]))
        with pytest.raises(TimeoutError):
            await speaker.wait_announced("10.200.0.5", 1.0)
        assert speaker.running  # a session down is the peer's business, not a reason to restart ExaBGP
        rack.birdc("enable", "node1")
        await speaker.wait_announced("10.200.0.5", 30)
        rack.wait_tor_route("10.200.0.5/32")
        # ExaBGP gone: no longer running (BGPDriver restarts such a speaker).
        os.kill(int(speaker.pid_path.read_text()), signal.SIGKILL)
        for _ in range(100):
            if not speaker.running:
                break
            await asyncio.sleep(0.05)
        assert not speaker.running
    finally:
        await speaker.stop(graceful=False)


async def test_frr_as_the_tor(frr_rack: Rack):
    rack = frr_rack
    rack.add_pod("pa", "node1", "10.200.0.5")
    pod = pod_instance("10.200.0.5", "node1", "pa")
    speaker = await start_speaker(rack, "node1")
    try:
        await speaker.apply(desired(rack, "node1", [pod]))
        await speaker.wait_announced("10.200.0.5", 10)
        assert "via 192.168.100.11 dev br0 proto bgp" in rack.wait_tor_route("10.200.0.5/32")
        entry = rack.vtysh("show ip bgp 10.200.0.5/32")
        assert "Community: no-export" in entry and "not advertised to EBGP peer" in entry
        assert "Remote Restart timer is 300 seconds" in rack.vtysh("show ip bgp neighbors 192.168.100.11")
        in_ns(rack.ext, "ping", "-c", "1", "-W", "2", "10.200.0.5")

        announced = speaker.announced
        await speaker.stop(graceful=True)
        await asyncio.sleep(0.5)
        assert rack.tor_route("10.200.0.5/32"), "FRR dropped the route although the restart was graceful"
        speaker = await start_speaker(rack, "node1", announced)
        rack.remove_pod("pa")
        await speaker.apply(desired(rack, "node1", []))
        rack.wait_tor_route("10.200.0.5/32", present=False)
        assert rack.tor_route(SUBNET_CIDR)
    finally:
        await speaker.stop(graceful=False)


async def test_dual_stack_announces_each_family_to_its_own_peer(rack: Rack):
    """IPv4 prefixes over the IPv4 session, IPv6 ones (pod /128 with NO_EXPORT) over the IPv6 session."""
    secret = bgp_network(password=True).bgp_peers[0].password_secret
    network = bgp_network(peers=(
        BGPPeer(asn=TOR_ASN, address=TOR_ADDRESS, password_secret=secret),
        BGPPeer(asn=TOR_ASN, address=TOR_ADDRESS6, password_secret=secret, does_not_route_traffic=True),
    ))
    node = node_facts("node1")
    config = speaker_config(network, node)
    speaker = BGPSpeaker(rack.workdir / "speaker", command_prefix=["ip", "netns", "exec", rack.nodes["node1"]])
    await speaker.start(config, passwords={TOR_ADDRESS: PASSWORD, TOR_ADDRESS6: PASSWORD})
    try:
        await speaker.wait_established(30)
        assert speaker.session_states() == {TOR_ADDRESS: "up", TOR_ADDRESS6: "up"}
        instances = [pod_instance("10.200.0.5", "node1", "pa"), pod_instance("fd00:200::5", "node1", "pa")]
        await speaker.apply(desired_announcements(network, config, [SUBNET, SUBNET6], instances, node))
        await speaker.wait_announced("fd00:200::5", 10)
        assert "via fd00:100::11 dev br0 proto bird" in rack.wait_tor_route("fd00:200::5/128")
        assert "via fd00:100::11 dev br0 proto bird" in rack.wait_tor_route(SUBNET6_CIDR)
        assert "via 192.168.100.11 dev br0 proto bird" in rack.wait_tor_route("10.200.0.5/32")
        assert NO_EXPORT in rack.birdc("show", "route", "fd00:200::5/128", "all")
        assert "fd00:200" not in rack.birdc("show", "route", "protocol", "node1")  # nothing IPv6 over IPv4
    finally:
        await speaker.stop(graceful=False)


async def test_exabgp_orphaned_by_a_crashed_agent_keeps_the_routes_until_replaced(rack: Rack):
    """Even through a session flap (ExaBGP 5.0 fails on session events once its API helper is gone)."""
    run_dir = rack.workdir / "speaker"
    announced = desired(rack, "node1", [pod_instance("10.200.0.5", "node1", "pa")])
    orphan = crash_an_agent(rack, "node1", announced, run_dir)
    rack.wait_tor_route("10.200.0.5/32")
    rack.birdc("restart", "node1")
    deadline = time.monotonic() + 20
    while "Established" not in rack.birdc("show", "protocols", "node1"):
        assert time.monotonic() < deadline, "the orphaned ExaBGP did not re-establish the session"
        await asyncio.sleep(0.1)
    assert Path(f"/proc/{orphan}").exists()
    rack.wait_tor_route("10.200.0.5/32")

    speaker = await start_speaker(rack, "node1", announced, run_dir=run_dir)
    try:
        assert not Path(f"/proc/{orphan}").exists()
        assert PASSWORD not in (run_dir / "exabgp.log").read_text()
        assert (run_dir / "exabgp.log").stat().st_mode & 0o077 == 0
    finally:
        await speaker.stop(graceful=False)
