"""IPAM speed and memory, single core (reference §3; goals from issue 2).

Figures:
- alloc_per_s: ``IPAM.allocate`` on a network with one /16 subnet, filling 60,000 addresses
  (goal >= 100,000/s).
- alloc_full_vs_empty: allocation rate into a /16 that is 99 % full (every address taken, then a
  random 1 % spread over the range released) divided by the rate into an empty /16, the same
  number of allocations, rounds alternating between the two, medians (goal >= 0.5).
- rebuild_65536_s: ``IPAM.rebuild`` from 65,536 IPInstance resource dicts (goal <= 1 s).
- mib_per_1m_addresses: growth of the process' resident set (/proc/self/statm) while an IPAM
  with 16 /16 subnets is built and 1,000,000 addresses are allocated through ``IPAM.allocate``,
  in MiB (goal <= 64). An upper bound: it also counts whatever the interpreter keeps of the
  temporary objects (tracemalloc would be exact but makes this step five times slower).

Times are this process' CPU time (``time.process_time``): the machine is shared, and CPU time
keeps other processes' load out of single-core figures.

Run: ``.venv/bin/python bench/ipam.py``; the last line is the JSON of the four figures.
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import time
from collections.abc import Callable

from hybridlay.addresses import instance_name
from hybridlay.ipam import IPAM, SubnetPool
from hybridlay.model import AddressRange, Network, Statistics, Subnet

MIB = 1024 * 1024


def slash16(name: str, second_octet: int) -> Subnet:
    return Subnet(
        name=name,
        network="bench",
        range=AddressRange(version="4", cidr=f"10.{second_octet}.0.0/16", gateway=f"10.{second_octet}.0.1"),
    )


def timed(action: Callable[[], object]) -> float:
    gc.collect()
    began = time.process_time()
    action()
    return time.process_time() - began


def alloc_per_s() -> float:
    ipam = IPAM()
    ipam.set_network(Network("bench"))
    ipam.set_subnet(slash16("s0", 0))
    owners = [f"default/pod-{i}" for i in range(60_000)]

    def fill() -> None:
        for owner in owners:
            ipam.allocate("bench", owner)

    seconds = timed(fill)
    assert ipam.subnet_status("s0").used == len(owners)
    rate = len(owners) / seconds
    print(f"allocate: {len(owners)} in {seconds:.3f} s = {rate:,.0f}/s")
    return rate


def full_vs_empty(rounds: int = 61) -> float:
    rng = random.Random(7)
    empty, full = SubnetPool(slash16("empty", 0)), SubnetPool(slash16("full", 0))
    holes = full.total // 100
    owners = [f"default/pod-{i}" for i in range(holes)]
    while full.available:
        full.allocate("default/filler")
    everything = [full.spec.text(full.spec.start + i) for i in range(full.spec.capacity)]

    def timed_fill(pool: SubnetPool) -> tuple[float, list[str]]:
        began = time.process_time()
        taken = [pool.allocate(owner).address for owner in owners]
        return time.process_time() - began, taken

    # Rounds alternate between the two pools so that load from elsewhere hits both alike.
    empty_times, full_times = [], []
    for _ in range(rounds):
        seconds, taken = timed_fill(empty)
        empty_times.append(seconds)
        for address in taken:
            empty.release(address)
        for address in rng.sample(everything, holes * 2):
            if full.available == holes:
                break
            full.release(address)
        assert full.available == holes, "the random spread hit the gateway too often"
        full_times.append(timed_fill(full)[0])
    empty_s, full_s = statistics.median(empty_times), statistics.median(full_times)
    print(
        f"next-fit into {holes} holes of a 99 % full /16: {holes / full_s:,.0f}/s; "
        f"into the empty /16: {holes / empty_s:,.0f}/s; ratio {empty_s / full_s:.2f} (medians of {rounds} rounds)"
    )
    return empty_s / full_s


def rebuild_65536_s() -> float:
    subnet = Subnet(
        name="big",
        network="bench",
        range=AddressRange(version="4", cidr="10.0.0.0/15", start="10.0.0.1", end="10.1.0.0", gateway="10.1.255.254"),
    )
    ipam = IPAM()
    ipam.set_subnet(subnet)
    spec = ipam.pool("big").spec
    instances = []
    for i in range(spec.capacity):
        address = spec.text(spec.start + i)
        instances.append(
            {
                "apiVersion": "networking.hybridlay.io/v1",
                "kind": "IPInstance",
                "metadata": {"name": instance_name(address), "labels": {"networking.hybridlay.io/subnet": "big"}},
                "spec": {
                    "network": "bench",
                    "subnet": "big",
                    "address": {
                        "version": "4",
                        "ip": f"{address}/15",
                        "gateway": "10.1.255.254",
                        "mac": "02:12:34:00:00:01",
                    },
                    "binding": {"podNamespace": "default", "podName": f"pod-{i}", "nodeName": "node-1"},
                },
            }
        )
    problems: list[object] = []
    seconds = timed(lambda: problems.extend(ipam.rebuild(instances)))
    assert not problems, problems[:3]
    assert ipam.subnet_status("big").used == len(instances) == 65_536
    print(f"rebuild from {len(instances)} IPInstance dicts: {seconds:.3f} s")
    return seconds


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mib_per_1m_addresses() -> float:
    target = 1_000_000
    gc.collect()
    before = resident_bytes()
    ipam = IPAM()
    ipam.set_network(Network("bench"))
    for i in range(16):
        ipam.set_subnet(slash16(f"s{i:02}", i))
    for i in range(target):
        ipam.allocate("bench", f"default/pod-{i}")
    gc.collect()
    held = resident_bytes() - before
    assert ipam.network_status("bench").statistics == Statistics(total=16 * 65_533, used=target, available=48_528)
    mib = held / MIB
    print(f"memory for {target:,} tracked addresses in 16 /16 subnets: {mib:.1f} MiB (resident set growth)")
    return mib


def main() -> None:
    # Memory first: memory the other steps free stays resident and would hide the growth.
    memory = mib_per_1m_addresses()
    figures = {
        "alloc_per_s": round(alloc_per_s()),
        "alloc_full_vs_empty": round(full_vs_empty(), 3),
        "rebuild_65536_s": round(rebuild_65536_s(), 3),
        "mib_per_1m_addresses": round(memory, 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
