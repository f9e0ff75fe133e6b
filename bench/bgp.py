"""Time from a pod's announcement to its route in the ToR's kernel table (issue 7's figure).

A rack of namespaces (tests/bgp/bgp_rack.py): BIRD 2 as the ToR, our speaker (ExaBGP) in a node
namespace, TCP MD5 on. For each of 50 pods, one after another, the clock starts at the agent-side
call a CNI ADD triggers (plan the node's announcements, ``apply``, ``wait_announced``) and stops
when ``ip monitor route`` in the ToR namespace reports the pod's /32. Pod namespaces are not created:
the veth plumbing is the CNI plugin's share of an ADD, not the route's way to the switch.

Run as root: ``.venv/bin/python bench/bgp.py``. Last line: JSON with add_to_tor_median_ms, add_to_tor_p99_ms.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "bgp"))

from bgp_rack import PASSWORD, SUBNET, TOR_ADDRESS, bgp_network, build_rack, destroy_rack, node_facts, pod_instance

from hybridlay.bgp import desired_announcements, speaker_config
from hybridlay_agent.bgp_speaker import BGPSpeaker

PODS = 50
GOAL_MEDIAN_MS = 100.0


async def watch_routes(monitor: asyncio.subprocess.Process, seen: dict[str, float], arrived: asyncio.Event) -> None:
    assert monitor.stdout is not None
    while line := await monitor.stdout.readline():
        words = line.decode().split()
        if words and words[0] != "Deleted" and "/" not in words[0]:
            seen.setdefault(words[0], time.monotonic())
            arrived.set()


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hybridlay-bgp-bench-"))
    rack = build_rack(workdir, PASSWORD)
    speaker = None
    monitor = await asyncio.create_subprocess_exec(
        "ip", "-n", rack.tor, "monitor", "route", stdout=asyncio.subprocess.PIPE
    )
    try:
        network, node = bgp_network(password=True), node_facts("node1")
        config = speaker_config(network, node)
        speaker = BGPSpeaker(workdir / "speaker", command_prefix=["ip", "netns", "exec", rack.nodes["node1"]])
        await speaker.start(config, passwords={TOR_ADDRESS: PASSWORD})
        await speaker.wait_established(30)
        seen: dict[str, float] = {}
        arrived = asyncio.Event()
        watcher = asyncio.create_task(watch_routes(monitor, seen, arrived))
        instances = []
        latencies_ms = []
        for i in range(PODS):
            ip = f"10.200.0.{10 + i}"
            instances.append(pod_instance(ip, "node1", f"pod{i}"))
            start = time.monotonic()
            await speaker.apply(desired_announcements(network, config, [SUBNET], instances, node))
            await speaker.wait_announced(ip, 5)
            while ip not in seen:
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), 5)
            latencies_ms.append((seen[ip] - start) * 1000)
        watcher.cancel()
    finally:
        monitor.kill()
        await monitor.wait()
        if speaker is not None:
            await speaker.stop(graceful=False)
        destroy_rack(rack)
        shutil.rmtree(workdir, ignore_errors=True)
    latencies_ms.sort()
    median = statistics.median(latencies_ms)
    p99 = latencies_ms[min(len(latencies_ms) - 1, round(0.99 * (len(latencies_ms) - 1)))]
    print(
        f"pod announcement → ToR kernel route over {PODS} pods: min {latencies_ms[0]:.1f} ms, "
        f"median {median:.1f} ms, p99 {p99:.1f} ms, max {latencies_ms[-1]:.1f} ms "
        f"(goal: median ≤ {GOAL_MEDIAN_MS:.0f} ms)"
    )
    print(json.dumps({"add_to_tor_median_ms": round(median, 1), "add_to_tor_p99_ms": round(p99, 1)}))


if __name__ == "__main__":
    asyncio.run(main())
