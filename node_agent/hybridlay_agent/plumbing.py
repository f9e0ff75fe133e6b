"""Pod plumbing on the node: the veth pair, the pod's addresses and routes, the host's pod route.

One sequence, as the reference plugins read: check (VLAN gateway and duplicate address) → create
the veth with its peer born inside the pod's namespace under ``CNI_IFNAME`` (so no temporary name
is ever visible in either namespace and a half-made pair never carries a pod's address) → host
side → pod side → announce. On failure the host end is deleted, which removes the peer, the
host routes and proxy entries with it: nothing is left half-applied. Everything we create hangs
off the host veth, named from the pod (:func:`hybridlay.devices.host_veth_name`), so an ADD
retried after a crash finds and replaces what the crash left, and DEL is one idempotent delete.

The host veth carries ``hybridlay:<containerID>:<ifname>`` as its alias: GC and DEL recognise
their attachment by it (a late DEL of a pod's old sandbox leaves the new sandbox alone).

Pod-side gateway semantics (reference §5): IPv4 routes ``169.254.1.1 dev <if> scope link`` and
``default via 169.254.1.1``, answered by proxy ARP on the host veth (MAC ee:ee:ee:ee:ee:ee).
IPv6 uses ``default via fe80::1 dev <if>``, answered by a proxy NDP entry for fe80::1 on the host
veth (``proxy_ndp=1``); pod addresses are added ``nodad`` so they are usable at once. The pod also
gets a permanent neighbour entry gateway → ee:ee:ee:ee:ee:ee per family, because proxy ARP only
answers where the node has a route to 169.254.1.1 (its default route) — not on every node.
The CNI result reports these link-local next hops as ``gateway``, not the subnet's gateway.

Namespaces are entered by a short-lived thread calling setns(2) (a network namespace is per
thread), which opens the netlink or packet socket there: pyroute2's own netns support forks a
child per socket (~7 ms), this costs ~0.2 ms. ADD's requests go over a raw rtnetlink socket
(:class:`hybridlay_agent.netlink.Requests`) in three batches (veth, host end, pod end): each
pyroute2 round trip, an event loop run per request, cost about a millisecond, half of an ADD.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import hashlib
import ipaddress
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ndmsg import NTF_PROXY

from hybridlay import names
from hybridlay.dataplane.state import TABLE_LOCAL_PODS
from hybridlay.devices import host_veth_name
from hybridlay_agent.netlink import (
    CHANGE,
    CREATE,
    DELETE,
    IFA_F_NOPREFIXROUTE,
    REPLACE,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTPROT_STATIC,
    KernelError,
    Requests,
    address_message,
    link_message,
    neighbour_message,
    route_message,
    veth_message,
)
from hybridlay_cni.spec import E_CHECK_MISMATCH, E_PLUMBING, E_UNKNOWN_CONTAINER, CNIError

ALIAS_PREFIX = "hybridlay:"
IFA_F_NODAD = 0x02
CLONE_NEWNET = 0x40000000
SIOCGIFMTU = 0x8921
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARP_REQUEST, ARP_REPLY = 1, 2
IPPROTO_ICMPV6 = 58
ICMPV6_NEIGHBOR_SOLICIT, ICMPV6_NEIGHBOR_ADVERT = 135, 136
NA_FLAG_OVERRIDE = 0x20000000  # R, S, O are the top three bits of the NA's flags word
ND_OPT_SOURCE_LLADDR, ND_OPT_TARGET_LLADDR = 1, 2
ALL_NODES = ipaddress.IPv6Address("ff02::1")
SOLICITED_NODE_PREFIX = int(ipaddress.IPv6Address("ff02::1:ff00:0"))  # RFC 4291 §2.7.1, a /104
ARP_PROBE_SENDER = "0.0.0.0"  # noqa: S104 - an RFC 5227 probe's sender address, nothing binds to it
DAD_SENDER = "::"  # a Duplicate Address Detection probe's source (RFC 4862 §5.4.2)
SO_ATTACH_FILTER = 26
# Classic BPF (code, jt, jf, k) keeping only ICMPv6 Neighbor Advertisements without extension headers.
NA_FILTER = (
    (0x30, 0, 0, 20),  # ldb [20]: IPv6 next header
    (0x15, 0, 3, IPPROTO_ICMPV6),  # jeq, else drop
    (0x30, 0, 0, 54),  # ldb [54]: ICMPv6 type
    (0x15, 0, 1, ICMPV6_NEIGHBOR_ADVERT),  # jeq, else drop
    (0x06, 0, 0, 0xFFFF),  # ret: keep
    (0x06, 0, 0, 0),  # ret: drop
)

_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class VLANCheck:
    """Underlay (VLAN) address: probed on the host's VLAN interface before plumbing (ARP, Neighbor
    Solicitation), announced there after it (gratuitous ARP, unsolicited Neighbor Advertisement)."""

    interface: str
    gateway: str


@dataclass(frozen=True)
class PodAddress:
    ip: IPInterface
    vlan_check: VLANCheck | None = None


@dataclass(frozen=True)
class Attachment:
    """One pod interface to plumb: who it is, where it goes, and what it carries."""

    container_id: str
    netns: str
    ifname: str
    pod_namespace: str
    pod_name: str
    addresses: tuple[PodAddress, ...] = ()
    mac: str = ""
    # The MTU, or None: then that of the first existing device in ``mtu_sources`` minus its overhead.
    mtu: int | None = None
    mtu_sources: tuple[tuple[str, int], ...] = ()

    @property
    def host_ifname(self) -> str:
        return host_veth_name(self.pod_namespace, self.pod_name)

    @property
    def alias(self) -> str:
        return f"{ALIAS_PREFIX}{self.container_id}:{self.ifname}"


def derived_mac(container_id: str, ifname: str) -> str:
    """A MAC under hybridlay's pod prefix for addresses that name none; derived, so a retried ADD
    and CHECK agree on it without stored state."""
    digest = hashlib.sha1(f"{container_id}:{ifname}".encode(), usedforsecurity=False).digest()
    return names.POD_MAC_PREFIX + "".join(f":{b:02x}" for b in digest[:3])


def gateway_of(version: int) -> str:
    """The pod's next hop: link-local, answered by the host veth (not the subnet's gateway)."""
    return names.POD_GATEWAY_V4 if version == 4 else names.POD_GATEWAY_V6


def host_prefix(ip: IPInterface) -> str:
    return f"{ip.ip}/{ip.max_prefixlen}"


def cni_result(attachment: Attachment) -> dict[str, Any]:
    """The CNI result (1.x shape): host veth first, then the pod interface; gateway 169.254.1.1/fe80::1."""
    return {
        "interfaces": [
            {"name": attachment.host_ifname, "mac": names.HOST_VETH_MAC},
            {"name": attachment.ifname, "mac": attachment.mac, "sandbox": attachment.netns, "mtu": attachment.mtu},
        ],
        "ips": [
            {"address": str(a.ip), "gateway": gateway_of(a.ip.version), "interface": 1} for a in attachment.addresses
        ],
        "routes": [
            {"dst": "0.0.0.0/0" if version == 4 else "::/0", "gw": gateway_of(version)}
            for version in sorted({a.ip.version for a in attachment.addresses})
        ],
    }


# --- namespaces ---------------------------------------------------------------------------------


def in_netns(path: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn`` in the network namespace at ``path`` (None: here) on a short-lived thread."""
    if path is None:
        return fn()
    outcome: dict[str, Any] = {}

    def enter_and_run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"{path} is not a network namespace: {os.strerror(err)}")
            finally:
                os.close(fd)
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=enter_and_run, name="hybridlay-netns")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def iproute(netns: str | None) -> Iterator[IPRoute]:
    """An IPRoute whose socket lives in ``netns`` (None: the agent's own), without multicast groups."""
    fd = in_netns(netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0).detach())
    ipr = IPRoute(fileno=fd, groups=0)
    try:
        yield ipr
    finally:
        ipr.close()


@contextlib.contextmanager
def rtnetlink(netns: str | None) -> Iterator[Requests]:
    """Raw rtnetlink requests from ``netns`` (None: the agent's own), sent in batches: ADD's path,
    where each pyroute2 round trip would cost about a millisecond."""
    requests = Requests(in_netns(netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)))
    try:
        yield requests
    finally:
        requests.close()


def _delete_link(requests: Requests, name: str) -> None:
    requests.enqueue(f"delete {name}", link_message(name=name), RTM_DELLINK, DELETE, deleting=True)
    requests.flush()


def write_sysctl(netns: str | None, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")

    def write() -> None:
        with open(path, "w") as f:
            f.write(value)

    in_netns(netns, write)


def device_mtu(netns: str | None, ifname: str) -> int | None:
    """A device's MTU (None: no such device) by SIOCGIFMTU: ~50 times cheaper than a pyroute2 request."""
    sock = in_netns(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with sock:
        try:
            reply = fcntl.ioctl(sock, SIOCGIFMTU, struct.pack("16si", ifname.encode(), 0))
        except OSError:
            return None
    return int(struct.unpack("16si", reply)[1])


def link_index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


# --- ARP on the VLAN interface ------------------------------------------------------------------


def _arp_frame(src_mac: bytes, op: int, sender_ip: str, target_ip: str, dst_mac: bytes = b"\xff" * 6) -> bytes:
    target_mac = b"\x00" * 6 if op == ARP_REQUEST else dst_mac
    return (
        dst_mac
        + src_mac
        + struct.pack("!HHHBBH", ETH_P_ARP, 1, 0x0800, 6, 4, op)
        + src_mac
        + socket.inet_aton(sender_ip)
        + target_mac
        + socket.inet_aton(target_ip)
    )


def _exchange(
    netns: str | None,
    interface: str,
    build: Callable[[bytes], bytes],
    is_reply: Callable[[bytes], bool],
    *,
    ethertype: int,
    timeout: float,
    socket_filter: tuple[tuple[int, int, int, int], ...] = (),
) -> bool:
    """Whether a frame of ``ethertype`` that ``is_reply`` accepts arrives on ``interface`` within
    ``timeout`` seconds of sending the request ``build(mac)`` there (``mac``: the interface's own),
    the request resent against loss.

    ``socket_filter`` (classic BPF) drops what cannot be a reply in the kernel: on a busy interface
    the frames would otherwise cost a Python loop each and could fill the socket's buffer.
    """
    # Protocol 0 until bind: no frame of another interface is queued in between.
    sock = in_netns(netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
    with sock:
        if socket_filter:
            program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in socket_filter))
            fprog = struct.pack("HP", len(socket_filter), ctypes.addressof(program))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        try:
            sock.bind((interface, ethertype))
        except OSError as exc:
            raise CNIError(E_PLUMBING, f"VLAN interface {interface} is not usable", str(exc)) from None
        request = build(sock.getsockname()[4])
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while (now := time.monotonic()) < deadline:
            if now >= next_send:
                sock.send(request)
                next_send = now + min(0.2, timeout / 3)
            sock.settimeout(max(0.001, min(deadline, next_send) - now))
            try:
                frame = sock.recv(128)
            except TimeoutError:
                continue
            if is_reply(frame):
                return True
    return False


def arp_resolve(netns: str | None, interface: str, sender_ip: str, target_ip: str, timeout: float) -> bool:
    """Whether ``target_ip`` answers an ARP request sent on ``interface`` within ``timeout`` seconds.

    ``sender_ip`` 0.0.0.0 makes it an RFC 5227 probe (duplicate detection without disturbing caches).
    """
    wanted = socket.inet_aton(target_ip)

    def is_reply(frame: bytes) -> bool:
        return len(frame) >= 42 and struct.unpack("!H", frame[20:22])[0] == ARP_REPLY and frame[28:32] == wanted

    def request(mac: bytes) -> bytes:
        return _arp_frame(mac, ARP_REQUEST, sender_ip, target_ip)

    return _exchange(netns, interface, request, is_reply, ethertype=ETH_P_ARP, timeout=timeout)


def _send_frame(netns: str | None, interface: str, build: Callable[[bytes], bytes]) -> None:
    """Send the Ethernet frame ``build(mac)`` from ``interface``, ``mac`` being the interface's own:
    with proxy ARP/NDP on the node, it is the MAC that answers for pod addresses."""
    # Protocol 0: a send-only socket, no frame is ever queued to it.
    sock = in_netns(netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
    with sock:
        sock.bind((interface, 0))
        sock.send(build(sock.getsockname()[4]))


def send_gratuitous_arp(netns: str | None, interface: str, ip: str) -> None:
    _send_frame(netns, interface, lambda mac: _arp_frame(mac, ARP_REQUEST, ip, ip))


# --- Neighbor Discovery on the VLAN interface --------------------------------------------------


def icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """RFC 4443 §2.3: ones' complement of the ones' complement sum of the IPv6 pseudo-header
    (RFC 8200 §8.1) and ``message`` (its checksum field zero)."""
    data = src + dst + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6) + message
    data += b"\0" * (len(data) % 2)
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _nd_frame(
    src_mac: bytes, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, *, icmp_type: int, flags: int, body: bytes
) -> bytes:
    """A Neighbor Discovery message (``icmp_type``, code 0, checksum, the 32-bit ``flags`` word,
    ``body``) from ``src`` to the multicast group ``dst``, framed for Ethernet."""

    def icmp(checksum: int) -> bytes:
        return struct.pack("!BBHI", icmp_type, 0, checksum, flags) + body

    message = icmp(icmpv6_checksum(src.packed, dst.packed, icmp(0)))
    # Hop limit 255: receivers discard ND messages that crossed a router (RFC 4861 §7.1.2).
    ipv6 = struct.pack("!IHBB", 6 << 28, len(message), IPPROTO_ICMPV6, 255) + src.packed + dst.packed
    group_mac = b"\x33\x33" + dst.packed[-4:]  # 33:33 + the group's low 32 bits (RFC 2464 §7)
    return group_mac + src_mac + struct.pack("!H", ETH_P_IPV6) + ipv6 + message


def _lladdr_option(kind: int, mac: bytes) -> bytes:
    return struct.pack("!BB", kind, 1) + mac  # option length in 8-byte units


def unsolicited_na_frame(src_mac: bytes, ip: str) -> bytes:
    """RFC 4861 §7.2.6: to all nodes, Override set so caches replace a stale MAC with ``src_mac``,
    Solicited clear (nobody asked; a receiver drops a multicast NA with it), Router clear."""
    target = ipaddress.IPv6Address(ip)
    body = target.packed + _lladdr_option(ND_OPT_TARGET_LLADDR, src_mac)
    return _nd_frame(src_mac, target, ALL_NODES, icmp_type=ICMPV6_NEIGHBOR_ADVERT, flags=NA_FLAG_OVERRIDE, body=body)


def neighbor_solicitation_frame(src_mac: bytes, source_ip: str, target_ip: str) -> bytes:
    """RFC 4861 §7.2.2: to the target's solicited-node group, with ``src_mac`` as Source Link-Layer
    Address so the target answers at once; a DAD probe (source ::) must carry no such option
    (RFC 4861 §7.1.1), its answer goes to all nodes (RFC 4862 §5.4.2)."""
    source, target = ipaddress.IPv6Address(source_ip), ipaddress.IPv6Address(target_ip)
    group = ipaddress.IPv6Address(SOLICITED_NODE_PREFIX | int(target) & 0xFFFFFF)
    option = b"" if source.is_unspecified else _lladdr_option(ND_OPT_SOURCE_LLADDR, src_mac)
    return _nd_frame(src_mac, source, group, icmp_type=ICMPV6_NEIGHBOR_SOLICIT, flags=0, body=target.packed + option)


def nd_resolve(netns: str | None, interface: str, source_ip: str, target_ip: str, timeout: float) -> bool:
    """Whether ``target_ip`` answers a Neighbor Solicitation sent on ``interface`` within ``timeout``
    seconds: IPv6's :func:`arp_resolve`; ``source_ip`` :: makes it a Duplicate Address Detection probe.
    """
    wanted = ipaddress.IPv6Address(target_ip).packed

    def is_reply(frame: bytes) -> bool:
        # ICMPv6 with hop limit 255 (not from beyond a router), a Neighbor Advertisement, code 0, the target.
        return (
            frame[20:22] == bytes((IPPROTO_ICMPV6, 255))
            and frame[54:56] == bytes((ICMPV6_NEIGHBOR_ADVERT, 0))
            and frame[62:78] == wanted
        )

    def request(mac: bytes) -> bytes:
        return neighbor_solicitation_frame(mac, source_ip, target_ip)

    return _exchange(
        netns, interface, request, is_reply, ethertype=ETH_P_IPV6, timeout=timeout, socket_filter=NA_FILTER
    )


def send_unsolicited_na(netns: str | None, interface: str, ip: str) -> None:
    """IPv6's gratuitous ARP: switches and the gateway learn the pod address's new location at once."""
    _send_frame(netns, interface, lambda mac: unsolicited_na_frame(mac, ip))


# --- the plumber --------------------------------------------------------------------------------


class Plumber:
    """ADD, CHECK, DEL and GC of pod interfaces; synchronous (the server runs it on a worker thread).

    ``host_netns`` is the namespace of the node's data plane: None when the agent runs in it (the
    normal case), a path when it does not (tests and the benchmark plumb into node namespaces).
    """

    def __init__(self, host_netns: str | None = None, vlan_check_timeout: float = 1.0) -> None:
        self.host_netns = host_netns
        self.vlan_check_timeout = vlan_check_timeout

    def add(self, attachment: Attachment) -> dict[str, Any]:
        self._check_vlan(attachment)
        try:
            pod_fd = os.open(attachment.netns, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise CNIError(E_UNKNOWN_CONTAINER, f"CNI_NETNS {attachment.netns}: no such network namespace") from None
        try:
            attachment = self._with_mtu(attachment)
            with rtnetlink(self.host_netns) as host:
                try:
                    self._create_veth(host, attachment, pod_fd)
                except KernelError as exc:
                    raise CNIError(
                        E_PLUMBING,
                        f"creating veth {attachment.host_ifname} with peer {attachment.ifname} in {attachment.netns}"
                        " failed",
                        str(exc),
                    ) from None
                try:
                    self._plumb_host(host, attachment)
                    with rtnetlink(attachment.netns) as pod:
                        self._plumb_pod(pod, attachment)
                    for address in attachment.addresses:
                        if address.vlan_check:  # underlay: tell the physical network where the pod is
                            announce = send_gratuitous_arp if address.ip.version == 4 else send_unsolicited_na
                            announce(self.host_netns, address.vlan_check.interface, str(address.ip.ip))
                except BaseException:
                    with contextlib.suppress(KernelError):
                        _delete_link(host, attachment.host_ifname)
                    raise
        finally:
            os.close(pod_fd)
        return cni_result(attachment)

    def _with_mtu(self, attachment: Attachment) -> Attachment:
        if attachment.mtu is not None:
            return attachment
        for device, overhead in attachment.mtu_sources:
            mtu = device_mtu(self.host_netns, device)
            if mtu is not None:
                return dataclasses.replace(attachment, mtu=mtu - overhead)
        devices = ", ".join(device for device, _ in attachment.mtu_sources)
        raise CNIError(E_PLUMBING, f"none of the devices giving the pod MTU exists on this node: {devices}")

    def _check_vlan(self, attachment: Attachment) -> None:
        """Each underlay address's probes; a dual-stack pod's two families at once, so that their
        waits (the duplicate probe waits out its whole window) do not add up."""
        checks = [(address.ip, address.vlan_check) for address in attachment.addresses if address.vlan_check]
        if not checks:
            return
        with concurrent.futures.ThreadPoolExecutor(len(checks), thread_name_prefix="hybridlay-vlan-check") as pool:
            for probe in [pool.submit(self._check_vlan_address, ip, check) for ip, check in checks]:
                probe.result()  # the first address's error first, as when probed one by one

    def _check_vlan_address(self, interface: IPInterface, check: VLANCheck) -> None:
        ip = str(interface.ip)
        resolve: Callable[[str | None, str, str, str, float], bool]
        if interface.version == 4:
            resolve, probe_sender, request = arp_resolve, ARP_PROBE_SENDER, "ARP"
        else:
            resolve, probe_sender, request = nd_resolve, DAD_SENDER, "Neighbor Solicitation"
        if resolve(self.host_netns, check.interface, probe_sender, ip, min(0.3, self.vlan_check_timeout)):
            raise CNIError(E_PLUMBING, f"address {ip} is already in use on {check.interface} (duplicate address)")
        if not resolve(self.host_netns, check.interface, ip, check.gateway, self.vlan_check_timeout):
            raise CNIError(
                E_PLUMBING,
                f"vlan network seems not working: gateway {check.gateway} does not answer {request} on"
                f" {check.interface} within {self.vlan_check_timeout:g}s",
            )

    def _create_veth(self, host: Requests, attachment: Attachment, pod_fd: int) -> None:
        """The pair, its peer born in the pod; a host veth of the same pod (a crashed or repeated
        ADD, an older sandbox) is replaced."""
        name = attachment.host_ifname
        body = veth_message(
            name, names.HOST_VETH_MAC, attachment.mtu, peer=attachment.ifname, peer_mac=attachment.mac,
            peer_netns_fd=pod_fd,
        )  # fmt: skip
        host.enqueue(f"add veth {name}", body, RTM_NEWLINK, CREATE)
        try:
            host.flush()
        except KernelError as exc:
            if exc.code != errno.EEXIST:
                raise
            _delete_link(host, name)
            host.enqueue(f"add veth {name}", body, RTM_NEWLINK, CREATE)
            host.flush()

    def _plumb_host(self, host: Requests, attachment: Attachment) -> None:
        """Configure the host end: its sysctls, then one batch of netlink requests."""
        conf = attachment.host_ifname
        index = in_netns(self.host_netns, lambda: socket.if_nametoindex(conf))
        # The host veth's IPv4 sysctls as the agent's planner wants them, whatever the pod's families:
        # the reconcile that follows the ADD then has nothing to write.
        write_sysctl(self.host_netns, f"net.ipv4.conf.{conf}.proxy_arp", "1")
        write_sysctl(self.host_netns, f"net.ipv4.conf.{conf}.rp_filter", "0")
        if any(a.ip.version == 6 for a in attachment.addresses):
            write_sysctl(self.host_netns, f"net.ipv6.conf.{conf}.proxy_ndp", "1")
            # Permanent: the kernel keeps it across the link's carrier changes (the pod end comes up later).
            proxy = neighbour_message(socket.AF_INET6, index, ip=names.POD_GATEWAY_V6, ndm_flags=NTF_PROXY)
            host.enqueue(f"proxy {names.POD_GATEWAY_V6} on {conf}", proxy, RTM_NEWNEIGH, REPLACE)
        host.enqueue(f"set {conf} up", link_message(index, up=True, alias=attachment.alias), RTM_NEWLINK, CHANGE)
        for address in attachment.addresses:
            # The same route the agent's planner wants (table, protocol, scope): no churn.
            route = route_message(host_prefix(address.ip), table=TABLE_LOCAL_PODS, scope=RT_SCOPE_LINK, oif=index)
            host.enqueue(f"route {address.ip.ip} dev {conf}", route, RTM_NEWROUTE, REPLACE)
        host.flush()

    def _plumb_pod(self, pod: Requests, attachment: Attachment) -> None:
        """The pod end, in one batch: addresses, up, then per family the gateway's entry and routes."""
        ifname = attachment.ifname
        index = in_netns(attachment.netns, lambda: socket.if_nametoindex(ifname))
        for address in attachment.addresses:
            flags = IFA_F_NOPREFIXROUTE | (IFA_F_NODAD if address.ip.version == 6 else 0)
            body = address_message(address.ip, index, scope=RT_SCOPE_UNIVERSE, flags=flags)
            pod.enqueue(f"address {address.ip} on {ifname}", body, RTM_NEWADDR, CREATE)
        pod.enqueue(f"set {ifname} up", link_message(index, up=True), RTM_NEWLINK, CHANGE)
        for version in sorted({a.ip.version for a in attachment.addresses}):
            family = socket.AF_INET if version == 4 else socket.AF_INET6
            gw = gateway_of(version)
            # A permanent entry for the gateway: the pod's first packet needs no ARP/NDP round trip,
            # and it works even where the host's proxy cannot (no route to 169.254.1.1 on the node).
            entry = neighbour_message(family, index, ip=gw, mac=names.HOST_VETH_MAC)
            pod.enqueue(f"neighbour {gw} on {ifname}", entry, RTM_NEWNEIGH, REPLACE)
            routes: list[tuple[str, str | None, int]] = [(f"{gw}/32", None, RT_SCOPE_LINK)] if version == 4 else []
            routes.append(("0.0.0.0/0" if version == 4 else "::/0", gw, RT_SCOPE_UNIVERSE))
            for dst, gateway, scope in routes:
                body = route_message(
                    dst, table=RT_TABLE_MAIN, scope=scope, oif=index, gateway=gateway, protocol=RTPROT_STATIC
                )
                pod.enqueue(f"route {dst} dev {ifname}", body, RTM_NEWROUTE, CREATE)
        pod.flush()

    def delete(self, container_id: str, ifname: str, pod_namespace: str, pod_name: str) -> None:
        """Idempotent: a missing link is success; a link of another sandbox of the pod stays."""
        host_ifname = host_veth_name(pod_namespace, pod_name)
        with iproute(self.host_netns) as host:
            try:
                link = host.link("get", ifname=host_ifname)[0]
            except NetlinkError as exc:
                if exc.code == errno.ENODEV:
                    return
                raise
            alias = link.get("ifalias") or ""
            if alias.startswith(ALIAS_PREFIX) and alias != f"{ALIAS_PREFIX}{container_id}:{ifname}":
                return
            with contextlib.suppress(NetlinkError):
                host.link("del", index=link["index"])

    def gc(self, valid: set[tuple[str, str]]) -> list[str]:
        """Delete host veths whose (containerID, ifname) the runtime no longer lists; returns their names."""
        removed = []
        with iproute(self.host_netns) as host:
            for link in host.get_links():
                alias = link.get("ifalias") or ""
                if not alias.startswith(ALIAS_PREFIX):
                    continue
                container_id, _, ifname = alias[len(ALIAS_PREFIX) :].partition(":")
                if (container_id, ifname) in valid:
                    continue
                with contextlib.suppress(NetlinkError):
                    host.link("del", index=link["index"])
                    removed.append(link.get("ifname"))
        return removed

    def check(self, attachment: Attachment) -> None:
        """Compare both ends with the expected state; any difference is a CNI error listing them all."""
        problems: list[str] = []
        attachment = self._with_mtu(attachment)
        with iproute(self.host_netns) as host:
            problems += self._check_host(host, attachment)
        try:
            with iproute(attachment.netns) as pod:
                problems += self._check_pod(pod, attachment)
        except FileNotFoundError:
            problems.append(f"network namespace {attachment.netns} does not exist")
        if problems:
            message = f"pod interface {attachment.ifname} differs from its expected state"
            raise CNIError(E_CHECK_MISMATCH, message, "; ".join(problems))

    def _check_host(self, host: IPRoute, attachment: Attachment) -> list[str]:
        name = attachment.host_ifname
        index = link_index(host, name)
        if index is None:
            return [f"host veth {name} is missing"]
        link = host.link("get", index=index)[0]
        problems = _link_problems(link, f"host veth {name}", names.HOST_VETH_MAC, attachment.mtu)
        if link.get("ifalias") != attachment.alias:
            problems.append(f"host veth {name} belongs to {link.get('ifalias')!r}, not {attachment.alias!r}")
        for address in attachment.addresses:
            family = socket.AF_INET if address.ip.version == 4 else socket.AF_INET6
            dst = str(address.ip.ip)
            routes = host.route("dump", family=family, table=TABLE_LOCAL_PODS)
            if not any(r.get("dst") == dst and r.get("oif") == index for r in routes):
                problems.append(f"route {host_prefix(address.ip)} dev {name} table {TABLE_LOCAL_PODS} is missing")
        return problems

    def _check_pod(self, pod: IPRoute, attachment: Attachment) -> list[str]:
        index = link_index(pod, attachment.ifname)
        if index is None:
            return [f"interface {attachment.ifname} is missing in {attachment.netns}"]
        link = pod.link("get", index=index)[0]
        problems = _link_problems(link, f"interface {attachment.ifname}", attachment.mac, attachment.mtu)
        present = {(a.get("address"), a["prefixlen"]) for a in pod.addr("dump", index=index)}
        for address in attachment.addresses:
            if (str(address.ip.ip), address.ip.network.prefixlen) not in present:
                problems.append(f"address {address.ip} is missing on {attachment.ifname}")
        for version in sorted({a.ip.version for a in attachment.addresses}):
            family = socket.AF_INET if version == 4 else socket.AF_INET6
            routes = [r for r in pod.route("dump", family=family) if r.get("oif") == index]
            gw = gateway_of(version)
            if version == 4 and not any(r.get("dst") == gw and r["dst_len"] == 32 for r in routes):
                problems.append(f"route {gw} dev {attachment.ifname} scope link is missing")
            if not any(r["dst_len"] == 0 and r.get("gateway") == gw for r in routes):
                problems.append(f"default route via {gw} dev {attachment.ifname} is missing")
        return problems


def _link_problems(link: Any, what: str, mac: str, mtu: int | None) -> list[str]:
    problems = []
    if link.get("address") != mac.lower():
        problems.append(f"{what} has MAC {link.get('address')}, expected {mac.lower()}")
    if link.get("mtu") != mtu:
        problems.append(f"{what} has MTU {link.get('mtu')}, expected {mtu}")
    if not link["flags"] & 1:  # IFF_UP
        problems.append(f"{what} is down")
    kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    if kind not in (None, "veth"):
        problems.append(f"{what} is a {kind}, not a veth")
    return problems
