"""Benchmark: the agent's reconciler on a large node, against ``ip -batch`` doing the same work.

A node namespace gets 500 remote VTEPs (one remote pod each), 110 local pods (their veths made
beforehand, as the CNI plumbing would) and 50 subnets (45 overlay, 5 underlay VLAN). Measured:
- ``full_apply_s``: one reconcile from nothing (reads, diff, netlink writes, ipset/iptables, sysctls);
- ``ip_batch_s``: the same objects in a second namespace through ``ip -batch`` and ``bridge -batch``,
  plus the same ipset/iptables restore input and sysctl writes (``sysctl -p``);
- ``noop_resync_s`` / ``noop_writes``: a second reconcile with nothing changed (writes must be 0).
Run as root: ``python bench/reconcile.py``. The last line is JSON.
"""

from __future__ import annotations

import ipaddress
import json
import pickle
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hybridlay.dataplane import ClusterState, DesiredState, NodeFacts, plan
from hybridlay.dataplane.planner import vtep_mac
from hybridlay.devices import host_veth_name
from hybridlay.model import (
    AddressRange,
    Binding,
    InstanceAddress,
    IPInstance,
    Network,
    NetworkType,
    NodeInfo,
    Subnet,
    VTEPInfo,
)

ROUNDS = 3
REMOTE_VTEPS, LOCAL_PODS, OVERLAY_SUBNETS, UNDERLAY_SUBNETS = 500, 110, 45, 5
NODE = NodeFacts("bench-node", "eth0", "eth0", "10.0.0.1", labels={"bench": "yes"})


def cluster() -> ClusterState:
    networks = (
        Network("overlay", type=NetworkType.OVERLAY, net_id=4),
        Network("underlay", type=NetworkType.UNDERLAY, net_id=0, node_selector={"bench": "yes"}),
    )
    subnets = [Subnet(f"ov{i}", "overlay", AddressRange("4", f"10.{100 + i}.0.0/16")) for i in range(OVERLAY_SUBNETS)]
    subnets += [
        Subnet(f"un{i}", "underlay", AddressRange("4", f"192.168.{i}.0/24", gateway=f"192.168.{i}.1"))
        for i in range(UNDERLAY_SUBNETS)
    ]
    infos = [NodeInfo(NODE.name, VTEPInfo(NODE.vtep_ip, NODE.vtep_mac))]
    instances = []
    for i in range(REMOTE_VTEPS):
        name = f"remote-{i}"
        vtep = ipaddress.ip_address("10.0.0.2") + i
        infos.append(NodeInfo(name, VTEPInfo(str(vtep), vtep_mac(name))))
        ip = ipaddress.ip_address("10.100.0.10") + i
        instances.append(_instance(f"{ip}/16", "ov0", "overlay", name, f"r{i}"))
    for i in range(LOCAL_PODS):
        if i % 10 == 9:  # every tenth local pod is an underlay pod
            subnet = i // 10 % UNDERLAY_SUBNETS
            instances.append(_instance(f"192.168.{subnet}.{100 + i}/24", f"un{subnet}", "underlay", NODE.name, f"p{i}"))
        else:
            ip = ipaddress.ip_address("10.101.0.10") + i
            instances.append(_instance(f"{ip}/16", "ov1", "overlay", NODE.name, f"p{i}"))
    return ClusterState(networks, tuple(subnets), tuple(infos), tuple(instances))


def _instance(ip: str, subnet: str, network: str, node: str, pod: str) -> IPInstance:
    return IPInstance(
        ip.split("/", maxsplit=1)[0],
        network,
        subnet,
        InstanceAddress("4", ip),
        Binding(pod_name=pod, pod_namespace="b", node_name=node),
    )


def sh(netns: str, command: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", command], check=True, capture_output=True)


def make_node(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True)
    lines = [
        "link add eth0 type veth peer name peer0",
        "link set eth0 up",
        "link set peer0 up",
        "addr add 10.0.0.1/16 dev eth0",
    ]
    for i in range(LOCAL_PODS):
        veth = host_veth_name("b", f"p{i}")
        lines += [f"link add {veth} type veth peer name c{i}", f"link set {veth} up", f"link set c{i} up"]
    subprocess.run(["ip", "-n", name, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)


def ip_batch_input(desired: DesiredState) -> tuple[str, str, str, str]:
    """The same objects as ``ip -4``/``ip -6``/``bridge`` batch lines and ``sysctl -p`` input."""
    ip: list[str] = []
    ip6: list[str] = []
    bridge = []
    for link in desired.vxlan_links:
        ip.append(
            f"link add {link.name} type vxlan id {link.vni} local {link.local} dev {link.parent} dstport {link.port}"
            f" nolearning\nlink set {link.name} address {link.mac} mtu {link.mtu} up"
        )
    for address in desired.addresses:
        ip.append(f"addr add {address.address} dev {address.dev} scope link noprefixroute")
    for route in sorted(desired.routes, key=lambda r: r.gateway is not None):
        via = f" via {route.gateway}" if route.gateway else ""
        dev = f" dev {route.dev}" if route.dev else ""
        kind = "throw " if route.type == "throw" else ""
        (ip if route.family == 4 else ip6).append(
            f"route replace {kind}{route.dst}{via}{dev} table {route.table} proto 211"
            f" scope {'global' if route.scope == 'universe' else route.scope}"
        )
    for rule in desired.rules:
        src = f" from {rule.src}" if rule.src else ""
        mark = f" fwmark {rule.fwmark or 0}/{rule.fwmask}" if rule.fwmask is not None else ""
        (ip if rule.family == 4 else ip6).append(f"rule add{src}{mark} lookup {rule.table} priority {rule.priority}")
    for n in desired.neighbours:
        ip.append(f"neigh replace {n.ip} lladdr {n.mac} dev {n.dev} nud permanent")
    for p in desired.proxy_neighbours:
        ip.append(f"neigh add proxy {p.ip} dev {p.dev}")
    for f in desired.fdb:
        bridge.append(f"fdb append {f.mac} dev {f.dev} dst {f.dst} self permanent")
    sysctls = [f"{s.path.replace('.', '%').replace('/', '.').replace('%', '/')} = {s.value}" for s in desired.sysctls]
    return "\n".join(ip) + "\n", "\n".join(ip6) + "\n", "\n".join(bridge) + "\n", "\n".join(sysctls) + "\n"


def inside() -> None:
    """In the node namespace: full apply, then a no-op resync."""
    from hybridlay_agent.reconciler import Reconciler  # noqa: PLC0415 - only inside the namespace

    desired = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - written by this script
    reconciler = Reconciler()
    start = time.perf_counter()
    full = reconciler.reconcile(desired)
    full_s = time.perf_counter() - start
    start = time.perf_counter()
    noop = reconciler.reconcile(desired)
    noop_s = time.perf_counter() - start
    print(json.dumps({"full_s": full_s, "full_writes": full.writes, "noop_s": noop_s, "noop_writes": noop.writes,
                      "pending": len(full.pending)}))  # fmt: skip


def reference(netns: str, desired: DesiredState) -> float:
    from hybridlay_agent import netfilter  # noqa: PLC0415 - reuses the agent's script builders

    ip, ip6, bridge, sysctls = ip_batch_input(desired)
    ipsets, _ = netfilter.ipset_restore_script(set(), set(desired.ipsets))
    chains = {f: netfilter.iptables_restore_script({}, [c for c in desired.chains if c.family == f]) for f in (4, 6)}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, text in {
            "ip": ip,
            "ip6": ip6,
            "bridge": bridge,
            "sysctl": sysctls,
            "ipset": ipsets,
            "v4": chains[4],
            "v6": chains[6],
        }.items():
            files[name] = Path(tmp) / name
            files[name].write_text(text)
        commands = [
            ["ip", "-4", "-batch", str(files["ip"])],
            ["ip", "-6", "-batch", str(files["ip6"])],
            ["bridge", "-batch", str(files["bridge"])],
            ["sysctl", "-q", "-p", str(files["sysctl"])],
            ["ipset", "restore", "-f", str(files["ipset"])],
            ["iptables-restore", "--noflush", str(files["v4"])],
            ["ip6tables-restore", "--noflush", str(files["v6"])],
        ]
        start = time.perf_counter()
        for command in commands:
            done = subprocess.run(["ip", "netns", "exec", netns, *command], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{command}: {done.stderr}")
        return time.perf_counter() - start


def owned_routes(netns: str) -> int:
    out = subprocess.run(
        ["ip", "-n", netns, "route", "show", "table", "all"], capture_output=True, text=True, check=True
    )
    return sum(1 for line in out.stdout.splitlines() if " proto 211" in line)


def one_round(desired: DesiredState) -> tuple[dict[str, float], float]:
    """Our reconciler and the ip -batch reference, each on a fresh node namespace."""
    ours, ref = "hlbench" + secrets.token_hex(3), "hlbref" + secrets.token_hex(3)
    try:
        make_node(ours)
        make_node(ref)
        run = subprocess.run(
            ["ip", "netns", "exec", ours, sys.executable, __file__, "--inside"],
            input=pickle.dumps(desired), stdout=subprocess.PIPE, check=True,
        )  # fmt: skip
        measured = json.loads(run.stdout)
        ip_batch_s = reference(ref, desired)
        # Both namespaces hold the same routes: the reference did the same work.
        assert owned_routes(ours) == owned_routes(ref) == len(desired.routes), (owned_routes(ours), owned_routes(ref))
        return measured, ip_batch_s
    finally:
        for netns in (ours, ref):
            subprocess.run(["ip", "netns", "del", netns], check=False)


def main() -> None:
    desired = plan(NODE, cluster())
    print(
        f"plan: {len(desired.routes)} routes, {len(desired.rules)} rules, {len(desired.neighbours)} neighbours,"
        f" {len(desired.fdb)} FDB entries, {len(desired.proxy_neighbours)} proxy entries,"
        f" {len(desired.sysctls)} sysctls"
    )
    rounds = [one_round(desired) for _ in range(ROUNDS)]
    for measured, ip_batch_s in rounds:
        print(
            f"full apply {measured['full_s']:.3f} s ({measured['full_writes']} writes, {measured['pending']} pending);"
            f" ip -batch {ip_batch_s:.3f} s; no-op resync {measured['noop_s']:.3f} s ({measured['noop_writes']} writes)"
        )
    full_s = statistics.median(m["full_s"] for m, _ in rounds)
    ip_batch_s = statistics.median(r for _, r in rounds)
    print(f"medians of {ROUNDS} rounds:")
    print(
        json.dumps(
            {
                "full_apply_s": round(full_s, 4),
                "ip_batch_s": round(ip_batch_s, 4),
                "apply_vs_ip_batch": round(full_s / ip_batch_s, 3),
                "noop_resync_s": round(statistics.median(m["noop_s"] for m, _ in rounds), 4),
                "noop_writes": max(m["noop_writes"] for m, _ in rounds),
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--inside"]:
        inside()
    else:
        main()
