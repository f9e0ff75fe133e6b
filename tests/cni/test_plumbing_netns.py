"""Plugin ↔ agent socket ↔ plumbing in real namespaces.

The plugin is the real executable run as a subprocess with CNI_* variables; the agent is the real
CNIServer (in-process) plumbing into a node namespace. Only the cluster view is a stand-in
(:class:`cnitest.StaticView`, fixed IPInstances: there is no Kubernetes API here).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import os
import socket
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cnitest import UPLINK, UPLINK_MTU, PluginRun, ip_json, pod_instances, run_plugin, sh, table_routes

from hybridlay.devices import host_veth_name
from hybridlay.model import Network, NetworkMode, NetworkType
from hybridlay_agent.cni_server import CNIServer
from hybridlay_agent.plumbing import (
    ETH_P_IPV6,
    icmpv6_checksum,
    in_netns,
    nd_resolve,
    neighbor_solicitation_frame,
    unsolicited_na_frame,
)
from hybridlay_cni.spec import E_PLUMBING

pytestmark = pytest.mark.netns


def exec_in(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", os.path.basename(netns), *args, check=check)


def links(netns: str) -> dict[str, dict]:
    return {link["ifname"]: link for link in ip_json(netns, "link", "show")}


def test_socket_is_root_only(agent):
    assert stat.S_IMODE(os.stat(agent.socket).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(agent.socket)).st_mode) == 0o700


def test_socket_directory_others_may_write_is_refused(view, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    server = CNIServer(str(shared / "cni.sock"), view)
    with pytest.raises(PermissionError, match="mode 1777"):
        asyncio.run(server.start())
    assert not (shared / "cni.sock").exists()


def test_add_check_del_dual_stack(agent, node, view, pods):
    pod = pods("a")
    view.pods[("default", "web-0")] = pod_instances("default", "web-0", "10.66.0.5/24", "fd66::5/64")
    add = run_plugin("ADD", agent.config(), container_id="c1", netns=pod, pod=("default", "web-0"))
    assert add.code == 0, add.raw
    host = host_veth_name("default", "web-0")
    result = add.output
    assert result["cniVersion"] == "1.1.0"
    assert result["interfaces"][0] == {"name": host, "mac": "ee:ee:ee:ee:ee:ee"}
    pod_if = result["interfaces"][1]
    assert pod_if["name"] == "eth0" and pod_if["sandbox"] == pod and pod_if["mtu"] == UPLINK_MTU - 50
    assert result["ips"] == [
        {"address": "10.66.0.5/24", "gateway": "169.254.1.1", "interface": 1},
        {"address": "fd66::5/64", "gateway": "fe80::1", "interface": 1},
    ]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0", "gw": "fe80::1"}]

    # The pod's side: MAC, MTU, addresses without prefix routes, link-local gateway routes.
    eth0 = ip_json(pod, "addr", "show", "eth0")[0]
    assert eth0["address"] == pod_if["mac"] and eth0["mtu"] == UPLINK_MTU - 50 and "UP" in eth0["flags"]
    addrs = {(a["local"], a["prefixlen"]): a for a in eth0["addr_info"] if a["scope"] == "global"}
    assert set(addrs) == {("10.66.0.5", 24), ("fd66::5", 64)}
    assert all(a.get("noprefixroute") for a in addrs.values())
    routes4 = ip_json(pod, "-4", "route", "show")
    assert {"dst": "default", "gateway": "169.254.1.1", "dev": "eth0"}.items() <= routes4[0].items()
    assert any(r["dst"] == "169.254.1.1" and r.get("scope") == "link" for r in routes4)
    assert not any(r["dst"] == "10.66.0.0/24" for r in routes4)
    assert any(r["dst"] == "default" and r.get("gateway") == "fe80::1" for r in ip_json(pod, "-6", "route", "show"))

    # The host's side: veth MAC, proxy ARP/NDP, pod routes in table 39999.
    veth = links(node.path)[host]
    assert veth["address"] == "ee:ee:ee:ee:ee:ee" and veth["ifalias"] == "hybridlay:c1:eth0"
    assert exec_in(node.path, "cat", f"/proc/sys/net/ipv4/conf/{host}/proxy_arp").stdout.strip() == "1"
    assert exec_in(node.path, "cat", f"/proc/sys/net/ipv6/conf/{host}/proxy_ndp").stdout.strip() == "1"
    assert table_routes(node.path, "-4") == ["10.66.0.5"]
    assert table_routes(node.path, "-6") == ["fd66::5"]
    assert "fe80::1" in sh("ip", "-6", "-n", node.name, "neigh", "show", "proxy").stdout
    assert view.reconciles == 1

    check_config = agent.config(prevResult=result)
    check = run_plugin("CHECK", check_config, container_id="c1", netns=pod, pod=("default", "web-0"))
    assert check.code == 0 and check.output is None, check.raw

    # Break the pod: CHECK must notice exactly what differs.
    sh("ip", "-n", os.path.basename(pod), "route", "del", "default")
    sh("ip", "-n", os.path.basename(pod), "link", "set", "eth0", "address", "02:00:00:00:00:01")
    broken = run_plugin("CHECK", check_config, container_id="c1", netns=pod, pod=("default", "web-0"))
    assert broken.code == 1 and broken.output["code"] == 100, broken.raw
    assert "default route via 169.254.1.1" in broken.output["details"]
    assert "MAC 02:00:00:00:00:01" in broken.output["details"]

    for _ in range(2):  # DEL is idempotent
        deleted = run_plugin("DEL", agent.config(), container_id="c1", netns=pod, pod=("default", "web-0"))
        assert deleted.code == 0 and deleted.output is None, deleted.raw
        assert host not in links(node.path) and "eth0" not in links(pod)
    assert table_routes(node.path, "-4") == []
    # DEL without a netns (the runtime already removed it) is success too.
    assert run_plugin("DEL", agent.config(), container_id="c1", pod=("default", "web-0")).code == 0


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_add_result_in_older_versions(agent, view, pods, version):
    pod = pods("v")
    view.pods[("default", "old")] = pod_instances("default", "old", "10.66.1.5/24")
    add = run_plugin("ADD", agent.config(version), container_id="c2", netns=pod, pod=("default", "old"))
    assert add.code == 0, add.raw
    ip = add.output["ips"][0]
    assert add.output["cniVersion"] == version
    assert ("version" in ip) == (version != "1.0.0") and ip["interface"] == 1
    assert run_plugin("DEL", agent.config(version), container_id="c2", netns=pod, pod=("default", "old")).code == 0


def test_pods_reach_each_other_through_the_host(agent, view, pods):
    a, b = pods("a"), pods("b")
    view.pods[("default", "a")] = pod_instances("default", "a", "10.66.2.10/24", "fd66:2::10/64")
    view.pods[("default", "b")] = pod_instances("default", "b", "10.66.2.11/24", "fd66:2::11/64")
    for cid, netns, name in (("ca", a, "a"), ("cb", b, "b")):
        assert run_plugin("ADD", agent.config(), container_id=cid, netns=netns, pod=("default", name)).code == 0
    exec_in(a, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.66.2.11")
    exec_in(a, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd66:2::11")
    # After DEL of b, a can no longer reach it.
    assert run_plugin("DEL", agent.config(), container_id="cb", netns=b, pod=("default", "b")).code == 0
    assert exec_in(a, "ping", "-c", "1", "-W", "1", "10.66.2.11", check=False).returncode != 0


def test_add_after_a_crash_converges(agent, node, view, pods):
    """A crash after the veth was made (no addresses, no routes) is repaired by the retried ADD."""
    pod = pods("c")
    host = host_veth_name("default", "crashed")
    pod_name = os.path.basename(pod)
    sh("ip", "-n", node.name, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", pod_name)
    view.pods[("default", "crashed")] = pod_instances("default", "crashed", "10.66.3.5/24")
    add = run_plugin("ADD", agent.config(), container_id="c3", netns=pod, pod=("default", "crashed"))
    assert add.code == 0, add.raw
    check_config = agent.config(prevResult=add.output)
    check = run_plugin("CHECK", check_config, container_id="c3", netns=pod, pod=("default", "crashed"))
    assert check.code == 0, check.raw
    # And a plain repeated ADD converges to the same state.
    again = run_plugin("ADD", agent.config(), container_id="c3", netns=pod, pod=("default", "crashed"))
    assert again.code == 0 and again.output == add.output, again.raw


def test_failed_add_leaves_nothing(agent, node, view, pods):
    pod = pods("f")
    sh("ip", "-n", os.path.basename(pod), "link", "add", "eth0", "type", "veth", "peer", "name", "other")
    view.pods[("default", "taken")] = pod_instances("default", "taken", "10.66.4.5/24")
    add = run_plugin("ADD", agent.config(), container_id="c4", netns=pod, pod=("default", "taken"))
    assert add.code == 1 and add.output["code"] == 101, add.raw
    assert host_veth_name("default", "taken") not in links(node.path)
    assert table_routes(node.path, "-4") == []


def test_missing_ipinstance_is_try_again_later(agent, node, pods):
    pod = pods("t")
    add = run_plugin("ADD", agent.config(), container_id="c5", netns=pod, pod=("default", "nobody"))
    assert add.code == 1 and add.output["code"] == 11, add.raw
    assert "no IPInstance for pod default/nobody" in add.output["msg"]
    assert host_veth_name("default", "nobody") not in links(node.path)


def test_missing_netns_on_add_is_unknown_container(agent, view, prefix):
    view.pods[("default", "gone")] = pod_instances("default", "gone", "10.66.5.5/24")
    gone = f"/var/run/netns/{prefix}gone"
    add = run_plugin("ADD", agent.config(), container_id="c6", netns=gone, pod=("default", "gone"))
    assert add.code == 1 and add.output["code"] == 3, add.raw


def test_gc_removes_only_stale_attachments(agent, node, view, pods):
    keep, stale = pods("k"), pods("s")
    view.pods[("default", "keep")] = pod_instances("default", "keep", "10.66.6.5/24")
    view.pods[("default", "stale")] = pod_instances("default", "stale", "10.66.6.6/24")
    assert run_plugin("ADD", agent.config(), container_id="ck", netns=keep, pod=("default", "keep")).code == 0
    assert run_plugin("ADD", agent.config(), container_id="cs", netns=stale, pod=("default", "stale")).code == 0
    gc_config = agent.config(**{"cni.dev/valid-attachments": [{"containerID": "ck", "ifname": "eth0"}]})
    gc = run_plugin("GC", gc_config, ifname="")
    assert gc.code == 0 and gc.output is None, gc.raw
    present = links(node.path)
    assert host_veth_name("default", "keep") in present and host_veth_name("default", "stale") not in present
    assert run_plugin("STATUS", agent.config(), ifname="").code == 0


def test_late_del_of_an_old_sandbox_keeps_the_new_one(agent, node, view, pods):
    """A StatefulSet pod re-created with the same name: the old sandbox's DEL must not unplumb it."""
    old, new = pods("o"), pods("n")
    view.pods[("default", "db-0")] = pod_instances("default", "db-0", "10.66.7.5/24")
    assert run_plugin("ADD", agent.config(), container_id="old", netns=old, pod=("default", "db-0")).code == 0
    assert run_plugin("ADD", agent.config(), container_id="new", netns=new, pod=("default", "db-0")).code == 0
    assert run_plugin("DEL", agent.config(), container_id="old", netns=old, pod=("default", "db-0")).code == 0
    assert links(node.path)[host_veth_name("default", "db-0")]["ifalias"] == "hybridlay:new:eth0"


VLAN_GATEWAYS = {4: "10.77.0.1", 6: "fd77::1"}


@pytest.fixture
def gateway_ns(node, prefix):
    """The underlay gateway: the far end of the node's uplink (untagged, netID 0) holds 10.77.0.1
    and fd77::1."""
    sh("ip", "-n", node.peer, "addr", "add", "10.77.0.1/24", "dev", node.peer)
    sh("ip", "-n", node.peer, "addr", "add", "fd77::1/64", "dev", node.peer, "nodad")
    return node.peer


def vlan_pod(view, name: str, *ips: str) -> None:
    network = Network("underlay", type=NetworkType.UNDERLAY, mode=NetworkMode.VLAN, net_id=0)
    view.pods[("default", name)] = [
        instance
        for ip in ips
        for instance in pod_instances(
            "default", name, ip, network=network, gateway=VLAN_GATEWAYS[ipaddress.ip_interface(ip).version]
        )
    ]


def test_vlan_add_checks_gateway_and_announces(agent, node, view, pods, gateway_ns):
    pod = pods("u")
    vlan_pod(view, "under", "10.77.0.50/24")
    sh("ip", "netns", "exec", gateway_ns, "ip", "neigh", "flush", "all")
    add = run_plugin("ADD", agent.config(), container_id="cu", netns=pod, pod=("default", "under"))
    assert add.code == 0, add.raw
    # The gratuitous ARP taught the gateway where the pod's address lives (the node's uplink MAC).
    uplink_mac = links(node.path)[UPLINK]["address"]
    neigh = ip_json(f"/var/run/netns/{gateway_ns}", "neigh", "show", "10.77.0.50")
    assert neigh and neigh[0]["lladdr"] == uplink_mac


# A kernel's own unsolicited NA (ndisc_notify=1, address fe80::ff:fe00:aa on a link of MAC
# 02:00:00:00:00:aa), captured once: the frame hybridlay sends must be the same, checksum 0x57a0.
KERNEL_NA = bytes.fromhex(
    "333300000001 0200000000aa 86dd"  # Ethernet
    " 60000000 0020 3a ff fe80000000000000000000fffe0000aa ff020000000000000000000000000001"  # IPv6
    " 88 00 57a0 20000000 fe80000000000000000000fffe0000aa 02 01 0200000000aa"  # NA
)


def plain_checksum(data: bytes) -> int:
    """The Internet checksum, word by word with the carry folded at each step (RFC 1071)."""
    data += b"\0" * (len(data) % 2)
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(src: bytes, dst: bytes, length: int) -> bytes:
    return src + dst + struct.pack("!I3xB", length, socket.IPPROTO_ICMPV6)


def test_unsolicited_na_frame_is_the_kernels():
    assert unsolicited_na_frame(bytes.fromhex("0200000000aa"), "fe80::ff:fe00:aa") == KERNEL_NA


# The kernel's own Neighbor Solicitations from a link of MAC 02:00:00:00:00:aa holding fd77::60,
# captured once: resolving fd77::ab:cdef:1234:5678 (a ping to it), checksum 0xedb1, and the DAD of
# fd77::9:8765:4321 (enhanced_dad=0, else the kernel adds a nonce option), checksum 0x6f1a. Targets
# with 24 significant low bits: the solicited-node group keeps exactly those.
KERNEL_NS = bytes.fromhex(
    "3333ff345678 0200000000aa 86dd"  # Ethernet
    " 60000000 0020 3a ff fd770000000000000000000000000060 ff0200000000000000000001ff345678"  # IPv6
    " 87 00 edb1 00000000 fd7700000000000000abcdef12345678 01 01 0200000000aa"  # NS, source link-layer address
)
KERNEL_DAD_NS = bytes.fromhex(
    "3333ff654321 0200000000aa 86dd"  # Ethernet
    " 60000000 0018 3a ff 00000000000000000000000000000000 ff0200000000000000000001ff654321"  # IPv6, from ::
    " 87 00 6f1a 00000000 fd770000000000000000000987654321"  # NS without options
)


@pytest.mark.parametrize(
    ("source", "target", "kernel"),
    [("fd77::60", "fd77::ab:cdef:1234:5678", KERNEL_NS), ("::", "fd77::9:8765:4321", KERNEL_DAD_NS)],
    ids=["resolution", "dad"],
)
def test_neighbor_solicitation_frame_is_the_kernels(source, target, kernel):
    assert neighbor_solicitation_frame(bytes.fromhex("0200000000aa"), source, target) == kernel


@pytest.mark.parametrize("message", [b"", b"\x88", bytes(range(255)), b"\xff" * 64, KERNEL_NA[54:]])
def test_icmpv6_checksum(message):
    src, dst = ipaddress.IPv6Address("fd77::53").packed, ipaddress.IPv6Address("ff02::1").packed
    assert icmpv6_checksum(src, dst, message) == plain_checksum(pseudo_header(src, dst, len(message)) + message)
    kernel_message = KERNEL_NA[54:56] + b"\0\0" + KERNEL_NA[58:]
    assert icmpv6_checksum(KERNEL_NA[22:38], KERNEL_NA[38:54], kernel_message) == 0x57A0


@contextmanager
def sniffer(netns_name: str, ifname: str | None = None) -> Iterator[socket.socket]:
    """A packet socket receiving the IPv6 frames that arrive at ``ifname`` (by default the interface
    named like its namespace); opened before the action watched, so no frame can be missed."""
    ipv6_only = socket.htons(ETH_P_IPV6)
    sock = in_netns(f"/var/run/netns/{netns_name}", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, ipv6_only))
    with sock:
        sock.bind((ifname or netns_name, ETH_P_IPV6))
        yield sock


def inject(netns: str, ifname: str, frame: bytes) -> None:
    """Send ``frame`` as it is out of ``ifname`` in ``netns``."""
    sock = in_netns(netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
    with sock:
        sock.bind((ifname, 0))
        sock.send(frame)


def capture_nd(sock: socket.socket, icmp_type: int, target: str, timeout: float = 5.0) -> bytes | None:
    """The first Neighbor Discovery frame (ICMPv6 ``icmp_type``: 135 NS, 136 NA) for ``target``
    within ``timeout``."""
    wanted = ipaddress.IPv6Address(target).packed
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            break
        is_nd = frame[12:14] == struct.pack("!H", ETH_P_IPV6) and frame[20] == socket.IPPROTO_ICMPV6
        if is_nd and frame[54] == icmp_type and frame[62:78] == wanted:  # no extension headers in ND
            return frame
    return None


def packed(ip: str) -> bytes:
    return ipaddress.IPv6Address(ip).packed


def valid_icmpv6(frame: bytes) -> bool:
    """Whether the ICMPv6 checksum of an Ethernet frame without IPv6 extension headers is right."""
    ip6 = frame[14:54]
    payload_length = struct.unpack("!H", ip6[4:6])[0]
    return plain_checksum(pseudo_header(ip6[8:24], ip6[24:40], payload_length) + frame[54 : 54 + payload_length]) == 0


def wait_for_lladdr(netns_name: str, ip: str, mac: str, timeout: float = 2.0) -> bool:
    """Whether the neighbour entry of ``ip`` in ``netns_name`` holds ``mac`` within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        neigh = ip_json(f"/var/run/netns/{netns_name}", "-6", "neigh", "show", ip)
        if neigh and neigh[0].get("lladdr") == mac:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def test_vlan_add_announces_ipv6_with_an_unsolicited_na(agent, node, view, pods, gateway_ns):
    pod = pods("n")
    vlan_pod(view, "under6", "10.77.0.53/24", "fd77::53/64")
    # A stale entry with another MAC: the NA's Override flag must make the gateway's kernel replace it.
    stale = "02:00:00:00:00:99"
    sh("ip", "-n", gateway_ns, "neigh", "replace", "fd77::53", "lladdr", stale, "dev", gateway_ns, "nud", "stale")
    with sniffer(gateway_ns) as sock:
        add = run_plugin("ADD", agent.config(), container_id="cn", netns=pod, pod=("default", "under6"))
        assert add.code == 0, add.raw
        frame = capture_nd(sock, 136, "fd77::53")
    assert frame is not None, "no unsolicited NA for fd77::53 on the gateway's side"
    uplink_mac = bytes.fromhex(links(node.path)[UPLINK]["address"].replace(":", ""))
    ip6, icmp = frame[14:54], frame[54:]
    assert frame[:6] == bytes.fromhex("333300000001") and frame[6:12] == uplink_mac
    assert ip6[7] == 255 and ip6[8:24] == ipaddress.IPv6Address("fd77::53").packed
    assert ip6[24:40] == ipaddress.IPv6Address("ff02::1").packed
    assert icmp[0] == 136 and icmp[1] == 0
    flags = icmp[4]
    assert flags & 0x20 and not flags & 0x40 and not flags & 0x80  # Override; not Solicited, not Router
    assert icmp[24:32] == b"\x02\x01" + uplink_mac  # target link-layer address option
    assert valid_icmpv6(frame)
    # The gateway's kernel accepts it (checksum, hop limit, flags): its neighbour entry moves. The
    # ADD's gateway check (an NS from fd77::53) already moved it, so stale it again and replay the NA.
    sh("ip", "-n", gateway_ns, "neigh", "replace", "fd77::53", "lladdr", stale, "dev", gateway_ns, "nud", "stale")
    inject(node.path, UPLINK, frame)
    assert wait_for_lladdr(gateway_ns, "fd77::53", links(node.path)[UPLINK]["address"])


def test_vlan_add_checks_the_ipv6_gateway_with_neighbor_discovery(agent, node, view, pods, gateway_ns):
    pod = pods("s")
    vlan_pod(view, "under6gw", "fd77::60/64")
    with sniffer(gateway_ns) as at_gateway, sniffer(node.name, UPLINK) as at_node:
        add = run_plugin("ADD", agent.config(), container_id="cs", netns=pod, pod=("default", "under6gw"))
        assert add.code == 0, add.raw
        probe = capture_nd(at_gateway, 135, "fd77::60")  # sent before the gateway check
        solicitation = capture_nd(at_gateway, 135, "fd77::1")
        answer = capture_nd(at_node, 136, "fd77::1")
    assert probe and solicitation and answer, (probe, solicitation, answer)
    uplink_mac = bytes.fromhex(links(node.path)[UPLINK]["address"].replace(":", ""))

    # RFC 4862 §5.4.2: from ::, to fd77::60's solicited-node group, hop limit 255, no option.
    assert probe[:12] == bytes.fromhex("3333ff000060") + uplink_mac
    assert probe[18:20] == b"\x00\x18" and probe[21] == 255  # payload length 24: type, code, sum, reserved, target
    assert probe[22:38] == packed("::") and probe[38:54] == packed("ff02::1:ff00:60")
    assert probe[54:56] == b"\x87\x00" and valid_icmpv6(probe)

    # RFC 4861 §7.2.2: from the pod's address, with the uplink's MAC as Source Link-Layer Address.
    assert solicitation[:12] == bytes.fromhex("3333ff000001") + uplink_mac
    assert solicitation[18:20] == b"\x00\x20" and solicitation[21] == 255
    assert solicitation[22:38] == packed("fd77::60") and solicitation[38:54] == packed("ff02::1:ff00:1")
    assert solicitation[54:56] == b"\x87\x00" and solicitation[78:86] == b"\x01\x01" + uplink_mac
    assert valid_icmpv6(solicitation)

    # The gateway's kernel took it as valid: a Solicited NA, unicast back to the pod's address.
    assert answer[:6] == uplink_mac and answer[22:38] == packed("fd77::1") and answer[38:54] == packed("fd77::60")
    assert answer[58] & 0x40


def test_vlan_add_fails_when_the_ipv6_gateway_is_silent(agent, node, view, pods, gateway_ns):
    """The IPv4 gateway answers, the IPv6 one is gone: the IPv6 check alone must fail the ADD."""
    pod = pods("q")
    sh("ip", "-n", gateway_ns, "addr", "del", "fd77::1/64", "dev", gateway_ns)
    vlan_pod(view, "lonely6", "10.77.0.61/24", "fd77::61/64")
    add = run_plugin("ADD", agent.config(), container_id="cq", netns=pod, pod=("default", "lonely6"))
    assert add.code == 1 and add.output["code"] == E_PLUMBING, add.raw
    assert add.output["msg"] == (
        f"vlan network seems not working: gateway fd77::1 does not answer Neighbor Solicitation on {UPLINK} within 0.5s"
    )
    assert host_veth_name("default", "lonely6") not in links(node.path) and "eth0" not in links(pod)


@pytest.mark.parametrize("holder", ["address", "proxy"])
def test_vlan_add_refuses_a_duplicate_ipv6_address(agent, node, pods, gateway_ns, holder):
    """Another host of the VLAN holds fd77::62: configured on it, or (another node's pod) proxied by it
    the way hybridlay's agent proxies its pods on the VLAN interface (proxy_delay 0)."""
    pod = pods("e")
    if holder == "address":  # nodad: a tentative address does not answer
        sh("ip", "-n", gateway_ns, "addr", "add", "fd77::62/64", "dev", gateway_ns, "nodad")
    else:
        conf = (f"net.ipv6.conf.{gateway_ns}.forwarding=1", f"net.ipv6.conf.{gateway_ns}.proxy_ndp=1")
        sh("ip", "netns", "exec", gateway_ns, "sysctl", "-qw", *conf, f"net.ipv6.neigh.{gateway_ns}.proxy_delay=0")
        sh("ip", "-6", "-n", gateway_ns, "neigh", "add", "proxy", "fd77::62", "dev", gateway_ns)
    vlan_pod(agent.view, "dup6", "fd77::62/64")
    add = run_plugin("ADD", agent.config(), container_id="ce", netns=pod, pod=("default", "dup6"))
    assert add.code == 1 and add.output["code"] == E_PLUMBING, add.raw
    assert add.output["msg"] == f"address fd77::62 is already in use on {UPLINK} (duplicate address)"
    assert host_veth_name("default", "dup6") not in links(node.path)


def test_nd_probe_counts_only_another_hosts_answer_for_its_target(node):
    """An NA the node sends itself (its proxy NDP answering a neighbour) is no duplicate, the same NA
    from the far end of the uplink is: the probe must not listen to outgoing frames (ETH_P_ALL).
    Nor is an NA that crossed a router (hop limit below 255), nor one for another address."""
    na = unsolicited_na_frame(bytes.fromhex("0200000000bb"), "fd77::64")
    routed = na[:21] + b"\xfe" + na[22:]  # the hop limit is outside the checksum's pseudo-header
    other = unsolicited_na_frame(bytes.fromhex("0200000000bb"), "fd77::65")

    def probe_while_sending(netns: str, ifname: str, frame: bytes) -> bool:
        done = threading.Event()

        def keep_sending() -> None:
            while not done.wait(0.02):
                inject(netns, ifname, frame)

        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            return nd_resolve(node.path, UPLINK, "::", "fd77::64", 0.3)
        finally:
            done.set()
            sender.join()

    far_end = f"/var/run/netns/{node.peer}"
    assert not probe_while_sending(node.path, UPLINK, na)
    assert not probe_while_sending(far_end, node.peer, routed)
    assert not probe_while_sending(far_end, node.peer, other)
    assert probe_while_sending(far_end, node.peer, na)


def test_vlan_add_fails_when_gateway_is_silent(agent, node, view, pods, gateway_ns):
    pod = pods("g")
    sh("ip", "-n", gateway_ns, "addr", "flush", "dev", gateway_ns)
    vlan_pod(view, "lonely", "10.77.0.51/24")
    add = run_plugin("ADD", agent.config(), container_id="cg", netns=pod, pod=("default", "lonely"))
    assert add.code == 1 and "vlan network seems not working" in add.output["msg"], add.raw
    assert host_veth_name("default", "lonely") not in links(node.path) and "eth0" not in links(pod)


def test_vlan_add_refuses_a_duplicate_address(agent, node, view, pods, gateway_ns):
    pod = pods("d")
    sh("ip", "-n", gateway_ns, "addr", "add", "10.77.0.52/24", "dev", gateway_ns)
    vlan_pod(view, "dup", "10.77.0.52/24")
    add = run_plugin("ADD", agent.config(), container_id="cd", netns=pod, pod=("default", "dup"))
    assert add.code == 1 and "already in use" in add.output["msg"], add.raw
    assert host_veth_name("default", "dup") not in links(node.path)


def test_overlay_pod_before_the_vxlan_device_over_an_ipv6_underlay(agent, node, view, pods):
    """Without the VXLAN device yet, the pod's MTU leaves room for the tunnel's headers over the
    node's underlay: 70 bytes over IPv6 (the device the data plane makes later has that MTU)."""
    view.underlay_version = 6
    pod = pods("v6")
    view.pods[("default", "v6u")] = pod_instances("default", "v6u", "10.66.12.5/24")
    add = run_plugin("ADD", agent.config(), container_id="c6", netns=pod, pod=("default", "v6u"))
    assert add.code == 0 and add.output["interfaces"][1]["mtu"] == UPLINK_MTU - 70, add.raw
    assert links(pod)["eth0"]["mtu"] == UPLINK_MTU - 70


def test_overlay_pod_takes_the_vxlan_devices_mtu(agent, node, view, pods):
    """Once the data plane has made the VXLAN device (here by hand), pods follow its MTU."""
    sh("ip", "-n", node.name, "link", "add", f"{UPLINK}.vxlan4", "mtu", "1400", "type", "vxlan", "id", "4",
       "dev", UPLINK, "dstport", "8472")  # fmt: skip
    pod = pods("m")
    view.pods[("default", "mtu")] = pod_instances("default", "mtu", "10.66.11.5/24")
    add = run_plugin("ADD", agent.config(), container_id="cm", netns=pod, pod=("default", "mtu"))
    assert add.code == 0 and add.output["interfaces"][1]["mtu"] == 1400, add.raw
    assert links(pod)["eth0"]["mtu"] == 1400 and links(node.path)[host_veth_name("default", "mtu")]["mtu"] == 1400


@pytest.mark.parametrize(
    "case",
    [
        (lambda pod: pod + "/../../../etc/passwd", "eth0", None, 4),
        (lambda pod: pod, "../../eth0", None, 4),
        (lambda pod: pod, "a" * 16, None, 4),
        (lambda pod: pod, "eth0", {"cniVersion": "9.9.9", "type": "hybridlay", "name": "x"}, 1),
        (lambda pod: pod, "eth0", {"cniVersion": "1.0.0", "type": "hybridlay", "name": "x", "ipam": {}}, 2),
    ],
)
def test_hostile_calls_change_nothing(agent, node, pods, case):
    netns_of, ifname, stdin_config, code = case
    pod = pods("h")
    agent.view.pods[("default", "target")] = pod_instances("default", "target", "10.66.12.5/24")
    before = set(links(node.path)), set(links(pod))
    config = agent.config(**(stdin_config or {}))
    add = run_plugin("ADD", config, container_id="ch", netns=netns_of(pod), ifname=ifname, pod=("default", "target"))
    assert add.code == 1 and add.output["code"] == code, add.raw
    assert (set(links(node.path)), set(links(pod))) == before
    assert table_routes(node.path, "-4") == []


def test_concurrent_adds_all_converge(agent, node, pods):
    """Ten runtimes calling at once (and one pod twice): every pod ends up plumbed exactly once."""
    calls = []
    for i in range(10):
        netns = pods(f"x{i}")
        agent.view.pods[("default", f"many-{i}")] = pod_instances("default", f"many-{i}", f"10.66.13.{i + 10}/24")
        calls.append((f"cx{i}", netns, ("default", f"many-{i}")))
    calls.append(calls[0])

    def add(call: tuple) -> PluginRun:
        return run_plugin("ADD", agent.config(), container_id=call[0], netns=call[1], pod=call[2])

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        runs = list(pool.map(add, calls))
    assert all(run.code == 0 for run in runs), [run.raw for run in runs if run.code]
    assert sorted(table_routes(node.path, "-4")) == sorted(f"10.66.13.{i + 10}" for i in range(10))
    for cid, netns, pod in calls[:10]:
        assert run_plugin("CHECK", agent.config(), container_id=cid, netns=netns, pod=pod).code == 0
