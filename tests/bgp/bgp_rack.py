"""A rack in network namespaces: a BIRD 2 (or FRR) "ToR", two nodes running our speaker, an external host.

    ext (203.0.113.2) ── tor (203.0.113.1 | br0 192.168.100.1, AS 65000) ── node1 (192.168.100.11)
                                                                        └── node2 (192.168.100.12)

Nodes speak BGP as AS 65101 (the Network's netID) to the ToR. A "pod" is a namespace with a veth
to its node, set up as the CNI plugin does (address /32 in the pod, ``default via 169.254.1.1``,
proxy ARP on the host side, host route in table 39999), plus the BGP subnet's policy table
``default via <routing peer> dev eth0`` (reference §5). That plumbing is a documented stand-in
written here with ``ip``, for the speaker's own tests; test_bgp_agent.py runs the real agents,
plugin and data plane on this rack instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from hybridlay.addresses import instance_name
from hybridlay.bgp import BGPNode, SpeakerConfig, speaker_config
from hybridlay.model import (
    AddressRange,
    BGPPeer,
    Binding,
    InstanceAddress,
    IPInstance,
    Network,
    NetworkMode,
    SecretKeyRef,
    Subnet,
)

TOR_ASN = 65000
NODE_ASN = 65101
TOR_ADDRESS = "192.168.100.1"
NODE_ADDRESSES = {"node1": "192.168.100.11", "node2": "192.168.100.12"}
TOR_ADDRESS6 = "fd00:100::1"
NODE_ADDRESSES6 = {"node1": "fd00:100::11", "node2": "fd00:100::12"}
SUBNET_CIDR = "10.200.0.0/24"
SUBNET6_CIDR = "fd00:200::/120"
EXT_ADDRESS = "203.0.113.2"
POD_TABLE = 39999
SUBNET_TABLE = 10000
PASSWORD = "s3cret-" + secrets.token_hex(6)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


def in_ns(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *args, check=check)


def bgp_network(password: bool = False, peers: tuple[BGPPeer, ...] | None = None) -> Network:
    secret = SecretKeyRef(name="tor-password", key="password", namespace="kube-system") if password else None
    return Network(
        name="bgp",
        mode=NetworkMode.BGP,
        net_id=NODE_ASN,
        node_selector={"rack": "r1"},
        bgp_peers=peers or (BGPPeer(asn=TOR_ASN, address=TOR_ADDRESS, password_secret=secret),),
    )


SUBNET = Subnet(name="bgp-sub", network="bgp", range=AddressRange(version="4", cidr=SUBNET_CIDR))
SUBNET6 = Subnet(name="bgp-sub6", network="bgp", range=AddressRange(version="6", cidr=SUBNET6_CIDR))


def pod_instance(ip: str, node: str, pod: str) -> IPInstance:
    v6 = ":" in ip
    return IPInstance(
        name=instance_name(ip),
        network="bgp",
        subnet=SUBNET6.name if v6 else SUBNET.name,
        address=InstanceAddress(version="6" if v6 else "4", ip=f"{ip}/120" if v6 else f"{ip}/24"),
        binding=Binding(pod_name=pod, pod_namespace="default", node_name=node),
    )


def node_facts(node: str) -> BGPNode:
    return BGPNode(name=node, interface="eth0", addresses=(f"{NODE_ADDRESSES[node]}/24", f"{NODE_ADDRESSES6[node]}/64"))


@dataclass
class Rack:
    prefix: str
    workdir: Path
    password: str | None
    tor: str = ""
    ext: str = ""
    nodes: dict[str, str] = field(default_factory=dict)
    pods: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # pod → (ns, node, ip)
    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)  # the ToR's BGP daemon(s)
    namespaces: list[str] = field(default_factory=list)

    @property
    def bird_socket(self) -> str:
        return str(self.workdir / "bird.ctl")

    def add_ns(self, suffix: str) -> str:
        name = f"{self.prefix}{suffix}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        in_ns(name, "ip", "link", "set", "lo", "up")
        return name

    def birdc(self, *args: str) -> str:
        return sh("birdc", "-s", self.bird_socket, *args).stdout

    @property
    def frr_dir(self) -> Path:
        return self.workdir / "frr"

    def vtysh(self, command: str) -> str:
        return sh("vtysh", "--vty_socket", str(self.frr_dir), "-c", command).stdout

    def daemon(self, *argv: str) -> None:
        self.daemons.append(
            subprocess.Popen(["ip", "netns", "exec", self.tor, *argv],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )

    def tor_route(self, prefix: str) -> str:
        family = "-6" if ":" in prefix else "-4"
        return sh("ip", family, "-n", self.tor, "route", "show", prefix).stdout.strip()

    def wait_tor_route(self, prefix: str, present: bool = True, timeout: float = 20.0, contains: str = "") -> str:
        deadline = time.monotonic() + timeout
        while True:
            route = self.tor_route(prefix)
            if bool(route) == present and contains in route:
                return route
            if time.monotonic() > deadline:
                raise AssertionError(f"ToR route {prefix}: {route!r}, wanted present={present} containing {contains!r}")
            time.sleep(0.05)

    def add_pod(self, pod: str, node: str, ip: str) -> str:
        """CNI stand-in: a pod namespace wired to ``node`` as hybridlay's plugin wires it (reference §5)."""
        ns = self.add_ns(pod)
        node_ns = self.nodes[node]
        host_if = f"h{pod}"[:15]
        sh("ip", "-n", node_ns, "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        in_ns(node_ns, "sysctl", "-qw", f"net.ipv4.conf.{host_if}.proxy_arp=1", f"net.ipv4.conf.{host_if}.rp_filter=0")
        sh("ip", "-n", node_ns, "link", "set", host_if, "up")
        sh("ip", "-n", node_ns, "route", "add", f"{ip}/32", "dev", host_if, "table", str(POD_TABLE))
        sh("ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        sh("ip", "-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        self.pods[pod] = (ns, node, ip)
        return ns

    def remove_pod(self, pod: str) -> None:
        ns, node, ip = self.pods.pop(pod)
        sh("ip", "-n", self.nodes[node], "route", "del", f"{ip}/32", "table", str(POD_TABLE), check=False)
        sh("ip", "netns", "del", ns)
        self.namespaces.remove(ns)


def _bird_config(rack: Rack, password: str | None) -> str:
    auth = f'password "{password}";' if password else ""
    peers = "\n".join(
        f"protocol bgp {node} from nodes {{ neighbor {NODE_ADDRESSES[node]} as {NODE_ASN}; {auth} }}\n"
        f"protocol bgp {node}v6 from nodes6 {{ neighbor {NODE_ADDRESSES6[node]} as {NODE_ASN}; {auth} }}"
        for node in NODE_ADDRESSES
    )
    return f"""
log "{rack.workdir / 'bird.log'}" all;
router id {TOR_ADDRESS};
protocol device {{ scan time 10; }}
protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}
protocol kernel {{ ipv6 {{ import none; export all; }}; merge paths on; }}
template bgp nodes {{
    local {TOR_ADDRESS} as {TOR_ASN};
    passive on;
    graceful restart on;
    ipv4 {{ import all; export none; }};
}}
template bgp nodes6 {{
    local {TOR_ADDRESS6} as {TOR_ASN};
    passive on;
    graceful restart on;
    ipv6 {{ import all; export none; }};
}}
{peers}
"""


def build_rack(workdir: Path, password: str | None, peer_daemon: str = "bird") -> Rack:
    """The rack with BIRD ("bird") or FRR ("frr") as the ToR; nothing is left behind if building fails."""
    rack = Rack(prefix=f"bgp{secrets.token_hex(3)}", workdir=workdir, password=password)
    try:
        _wire(rack)
        if peer_daemon == "bird":
            start_bird(rack)
        else:
            start_frr(rack)
    except BaseException:
        destroy_rack(rack)
        raise
    return rack


def _wire(rack: Rack) -> None:
    rack.tor = rack.add_ns("tor")
    rack.ext = rack.add_ns("ext")
    tor = rack.tor
    in_ns(tor, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0")
    sh("ip", "-n", tor, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", tor, "addr", "add", f"{TOR_ADDRESS}/24", "dev", "br0")
    sh("ip", "-n", tor, "addr", "add", f"{TOR_ADDRESS6}/64", "dev", "br0", "nodad")
    sh("ip", "-n", tor, "link", "set", "br0", "up")
    sh("ip", "-n", tor, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", rack.ext)
    sh("ip", "-n", tor, "addr", "add", "203.0.113.1/24", "dev", "ext0")
    sh("ip", "-n", tor, "link", "set", "ext0", "up")
    sh("ip", "-n", rack.ext, "addr", "add", f"{EXT_ADDRESS}/24", "dev", "eth0")
    sh("ip", "-n", rack.ext, "link", "set", "eth0", "up")
    sh("ip", "-n", rack.ext, "route", "add", "default", "via", "203.0.113.1")
    for node, address in NODE_ADDRESSES.items():
        ns = rack.nodes[node] = rack.add_ns(node)
        in_ns(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
              "net.ipv4.conf.default.rp_filter=0")
        sh("ip", "-n", tor, "link", "add", node, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", tor, "link", "set", node, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        sh("ip", "-n", ns, "addr", "add", f"{NODE_ADDRESSES6[node]}/64", "dev", "eth0", "nodad")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        # Reference §5 (stand-in for the data-plane planner): local pod routes first, then the BGP
        # subnet's table, default via the routing peer (the ToR).
        sh("ip", "-n", ns, "rule", "add", "pref", "1000", "lookup", str(POD_TABLE))
        sh("ip", "-n", ns, "rule", "add", "pref", "1100", "from", SUBNET_CIDR, "lookup", str(SUBNET_TABLE))
        sh("ip", "-n", ns, "route", "add", "default", "via", TOR_ADDRESS, "dev", "eth0", "table", str(SUBNET_TABLE))


def _wait_for(path: Path, what: str) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)


def start_bird(rack: Rack) -> None:
    conf = rack.workdir / "bird.conf"
    conf.write_text(_bird_config(rack, rack.password))
    rack.daemon("bird", "-f", "-c", str(conf), "-s", rack.bird_socket, "-P", str(rack.workdir / "bird.pid"))
    _wait_for(Path(rack.bird_socket), "BIRD")


def start_frr(rack: Rack) -> None:
    """FRR 8.4 as the ToR: zebra (kernel routes) and bgpd, run by hand as user frr, files in workdir/frr."""
    w = rack.frr_dir
    w.mkdir()
    rack.workdir.chmod(0o711)  # frr may pass through, not list
    shutil.chown(w, "frr", "frr")
    neighbors = "".join(
        f" neighbor {address} remote-as {NODE_ASN}\n neighbor {address} passive\n"
        + (f" neighbor {address} password {rack.password}\n" if rack.password else "")
        for address in NODE_ADDRESSES.values()
    )
    configs = {
        "zebra.conf": "hostname tor\n",
        "bgpd.conf": f"hostname tor\nrouter bgp {TOR_ASN}\n bgp router-id {TOR_ADDRESS}\n"
        f" no bgp ebgp-requires-policy\n bgp graceful-restart\n{neighbors}",
    }
    for name, text in configs.items():
        (w / name).write_text(text)
        (w / name).chmod(0o600)
        shutil.chown(w / name, "frr", "frr")
    common = ["-u", "frr", "-g", "frr", "-z", str(w / "zserv.api"), "--vty_socket", str(w)]
    rack.daemon("/usr/lib/frr/zebra", "-f", str(w / "zebra.conf"), "-i", str(w / "zebra.pid"), *common)
    _wait_for(w / "zserv.api", "zebra")
    rack.daemon("/usr/lib/frr/bgpd", "-f", str(w / "bgpd.conf"), "-i", str(w / "bgpd.pid"), "-A", "127.0.0.1",
                *common)
    _wait_for(w / "bgpd.vty", "bgpd")


def destroy_rack(rack: Rack) -> None:
    for daemon in rack.daemons:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    for ns in reversed(rack.namespaces):
        # Kill whatever still runs in our namespaces (ExaBGP and its helper), by pid.
        pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        sh("ip", "netns", "del", ns, check=False)


def speaker_for(rack: Rack, node: str) -> tuple[SpeakerConfig, list[str]]:
    """The speaker configuration and the command prefix that runs ExaBGP inside the node namespace."""
    config = speaker_config(bgp_network(password=rack.password is not None), node_facts(node))
    return config, ["ip", "netns", "exec", rack.nodes[node]]
