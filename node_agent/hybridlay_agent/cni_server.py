"""The agent's side of the CNI plugin: a root-only unix socket, and the pod plumbing behind it.

The plugin executable is a shim (:mod:`hybridlay_cni.shim`, wire format there) that forwards
its environment and stdin; the plugin's logic (:func:`hybridlay_cni.plugin.respond`) runs here:
validation before anything is touched, the command, the result in the caller's cniVersion.
Failures go back as CNI error codes (11 "try again later" when the pod's IPInstances do not
appear within ``address_timeout``, or a BGP pod's route is not announced over established
sessions within ``announce_timeout``; the pod is then unplumbed again). The plumbing
(:mod:`hybridlay_agent.plumbing`) is blocking netlink work and runs on a small thread pool, one
call at a time per pod.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import logging
import os
import socket
import stat
import time
from typing import Any, Protocol

from hybridlay.dataplane.state import VXLAN_OVERHEAD, VXLAN_OVERHEAD_V6
from hybridlay.devices import vlan_interface_name, vxlan_interface_name
from hybridlay.errors import InvalidValue
from hybridlay.model import IPInstance, Network, NetworkMode, Subnet
from hybridlay_agent import plumbing
from hybridlay_agent.plumbing import Attachment, Plumber, PodAddress, VLANCheck
from hybridlay_cni import plugin, shim, spec
from hybridlay_cni.spec import E_PLUMBING, E_TRY_AGAIN_LATER, CNIError, Invocation

log = logging.getLogger(__name__)
PodInstances = list[tuple[IPInstance, Subnet, Network]]


class PodAddressSource(Protocol):
    """What the CNI server needs from the agent's cluster view (``hybridlay_agent.view.ClusterView``)."""

    async def pod_addresses(
        self, namespace: str, pod: str, timeout: float
    ) -> list[tuple[IPInstance, Subnet, Network]]:  # raises TimeoutError
        ...

    def node_name(self) -> str: ...

    def parent_interface(self, mode: NetworkMode) -> str: ...

    def vtep_version(self) -> int: ...

    def request_reconcile(self) -> None: ...


class RouteAnnouncer(Protocol):
    """The node's BGP speaker as the CNI server sees it (``hybridlay_agent.bgp_driver.BGPDriver``)."""

    async def wait_announced(self, ip: str, timeout: float) -> None:  # raises TimeoutError
        ...


# A plugin sends its whole request at once: a connection still incomplete after this is idle or hostile.
REQUEST_READ_SECONDS = 5.0


class RequestTooLarge(Exception):
    """A request over the shim's message limit: refused whole, nothing of it used."""


async def read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    """One framed request (see :mod:`hybridlay_cni.shim`): the environment block, then the network
    configuration to the end of the stream, however many reads that takes, up to the limit."""
    size = int.from_bytes(await reader.readexactly(4), "big")
    if size > shim.MAX_MESSAGE:
        await _discard_rest(reader)
        raise RequestTooLarge(f"CNI environment of {size} bytes: more than the {shim.MAX_MESSAGE} bytes allowed")
    env = shim.decode_env(await reader.readexactly(size))
    chunks, received = [], 0
    while chunk := await reader.read(65536):
        received += len(chunk)
        if received > shim.MAX_MESSAGE:
            await _discard_rest(reader)
            raise RequestTooLarge(f"network configuration of more than {shim.MAX_MESSAGE} bytes: too large")
        chunks.append(chunk)
    return env, b"".join(chunks)


async def _discard_rest(reader: asyncio.StreamReader) -> None:
    """Read what the plugin still sends: it reads the answer only once it has sent everything."""
    while await reader.read(65536):
        pass


class CNIServer:
    """Serves the plugin on ``socket_path`` (0600, in a 0700 directory) until :meth:`stop`.

    ``mtu`` overrides the MTU derived from the network's parent interface (overlay: from its
    VXLAN device); a ``mtu`` key in the plugin's network config overrides both. ``host_netns``: see
    :class:`~hybridlay_agent.plumbing.Plumber`.
    """

    def __init__(
        self,
        socket_path: str,
        view: PodAddressSource,
        *,
        address_timeout: float = 10.0,
        mtu: int | None = None,
        host_netns: str | None = None,
        vlan_check_timeout: float = 1.0,
        workers: int = 8,
        announcements: RouteAnnouncer | None = None,
        announce_timeout: float = 10.0,
    ) -> None:
        self.socket_path = socket_path
        self.view = view
        self.address_timeout = address_timeout
        self.mtu = mtu
        self.announcements = announcements
        self.announce_timeout = announce_timeout
        self.plumber = Plumber(host_netns=host_netns, vlan_check_timeout=vlan_check_timeout)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hybridlay-cni")
        self._pod_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen on a socket born 0600, in a directory created 0700 when missing.

        An existing directory that others may write to (where the socket could be swapped) is
        refused; one they may only read (a hostPath made 0755) is used with a warning.
        """
        directory = os.path.dirname(self.socket_path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.stat(directory)
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid != os.geteuid() or mode & 0o022:
            raise PermissionError(
                f"socket directory {directory} has mode {mode:04o} (owner uid {info.st_uid}):"
                " the CNI socket needs a directory only its owner may write to (best 0700)"
            )
        if mode & 0o077:
            log.warning("CNI socket directory %s has mode %04o; 0700 is expected", directory, mode)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.socket_path).st_mode):
                os.unlink(self.socket_path)  # left by a previous agent
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # born 0600: no window in which others may connect
        try:
            sock.bind(self.socket_path)
        finally:
            os.umask(old_umask)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=shim.MAX_MESSAGE)
        log.info("CNI server listening on %s", self.socket_path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self._executor.shutdown(wait=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                env, stdin = await asyncio.wait_for(read_request(reader), REQUEST_READ_SECONDS)
            except RequestTooLarge as exc:
                code, output = 1, shim.error_output(shim.LATEST_VERSION, spec.E_INVALID_CONFIG, str(exc)).decode()
            else:
                code, output = await plugin.respond(env, stdin, self.dispatch)
            writer.write(bytes([code]) + output.encode())
            await writer.drain()
        except TimeoutError:
            log.warning("CNI client sent no whole request within %g s; closing its connection", REQUEST_READ_SECONDS)
        except (ConnectionError, ValueError, asyncio.IncompleteReadError) as exc:
            log.warning("CNI client went away or sent a malformed request: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def dispatch(self, invocation: Invocation, config: dict[str, Any]) -> dict[str, Any]:
        """Run one validated command; returns the result (ADD) or ``{}``."""
        try:
            return await self._dispatch(invocation, config)
        except CNIError:
            raise
        except Exception as exc:
            log.exception("CNI %s for %s/%s failed", invocation.command, invocation.pod_namespace, invocation.pod_name)
            raise CNIError(E_PLUMBING, f"pod plumbing failed: {exc}", repr(exc)) from exc

    async def _dispatch(self, invocation: Invocation, config: dict[str, Any]) -> dict[str, Any]:
        if invocation.command == "STATUS":
            return {}
        if invocation.command == "GC":
            removed = await self._run(self.plumber.gc, spec.valid_attachments(config))
            if removed:
                log.info("CNI GC removed %s", ", ".join(removed))
            return {}
        lock = self._pod_locks.setdefault((invocation.pod_namespace, invocation.pod_name), asyncio.Lock())
        async with lock:
            if invocation.command == "DEL":
                await self._unplumb(invocation)
                self.view.request_reconcile()
                return {}
            instances = await self._instances(invocation)
            attachment = self._attachment(invocation, config, instances)
            if invocation.command == "CHECK":
                await self._run(self.plumber.check, attachment)
                return {}
            result: dict[str, Any] = await self._run(self.plumber.add, attachment)
            self.view.request_reconcile()
            try:
                await self._wait_announced(invocation, instances)
            except CNIError:
                # Nothing half-applied: a pod the switch cannot reach yet is not left plumbed.
                await self._unplumb(invocation)
                raise
            return result

    async def _unplumb(self, invocation: Invocation) -> None:
        await self._run(
            self.plumber.delete,
            invocation.container_id,
            invocation.ifname,
            invocation.pod_namespace,
            invocation.pod_name,
        )

    async def _wait_announced(self, invocation: Invocation, instances: PodInstances) -> None:
        """A BGP pod is only reachable once the switch has its route: wait (bounded) for the announcement."""
        if self.announcements is None:
            return
        deadline = time.monotonic() + self.announce_timeout
        for instance, _, network in instances:
            if network.effective_mode is not NetworkMode.BGP:
                continue
            ip = str(ipaddress.ip_interface(instance.address.ip).ip)
            try:
                await self.announcements.wait_announced(ip, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise CNIError(
                    E_TRY_AGAIN_LATER,
                    f"route of pod {invocation.pod_namespace}/{invocation.pod_name} ({ip}) not announced"
                    f" over established BGP sessions within {self.announce_timeout:g}s",
                ) from None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _instances(self, invocation: Invocation) -> PodInstances:
        try:
            instances = await self.view.pod_addresses(
                invocation.pod_namespace, invocation.pod_name, self.address_timeout
            )
        except TimeoutError:
            raise CNIError(
                E_TRY_AGAIN_LATER,
                f"no IPInstance for pod {invocation.pod_namespace}/{invocation.pod_name}"
                f" within {self.address_timeout:g}s",
            ) from None
        if not instances:
            raise CNIError(E_TRY_AGAIN_LATER, f"pod {invocation.pod_namespace}/{invocation.pod_name} has no IPInstance")
        return instances

    def _attachment(self, invocation: Invocation, config: dict[str, Any], instances: PodInstances) -> Attachment:
        network = instances[0][2]
        addresses = []
        for instance, subnet, net in instances:
            try:
                ip = ipaddress.ip_interface(instance.address.ip)
            except ValueError:
                raise CNIError(
                    E_PLUMBING, f"IPInstance {instance.name} spec.address.ip {instance.address.ip!r}: not an address"
                ) from None
            addresses.append(PodAddress(ip, self._vlan_check(instance, subnet, net)))
        mac = next((i.address.mac for i, _, _ in instances if i.address.mac), None)
        return Attachment(
            container_id=invocation.container_id,
            netns=invocation.netns,
            ifname=invocation.ifname,
            pod_namespace=invocation.pod_namespace,
            pod_name=invocation.pod_name,
            addresses=tuple(sorted(addresses, key=lambda a: a.ip.version)),
            mac=mac or plumbing.derived_mac(invocation.container_id, invocation.ifname),
            mtu=spec.mtu(config) or self.mtu,
            mtu_sources=self._mtu_sources(network),
        )

    def _mtu_sources(self, network: Network) -> tuple[tuple[str, int], ...]:
        """Overlay pods take the VXLAN device's MTU (while it does not exist yet: the parent's minus
        the tunnel's overhead over this node's underlay, 50 over IPv4, 70 over IPv6)."""
        mode = network.effective_mode
        parent = self.view.parent_interface(mode)
        if mode is not NetworkMode.VXLAN:
            return ((parent, 0),)
        overhead = VXLAN_OVERHEAD_V6 if self.view.vtep_version() == 6 else VXLAN_OVERHEAD
        try:
            vxlan = vxlan_interface_name(parent, network.net_id or 0)
        except InvalidValue:
            return ((parent, overhead),)
        return ((vxlan, 0), (parent, overhead))

    def _vlan_check(self, instance: IPInstance, subnet: Subnet, network: Network) -> VLANCheck | None:
        if network.effective_mode is not NetworkMode.VLAN:
            return None
        gateway = subnet.range.gateway or instance.address.gateway
        if not gateway:
            return None
        net_id = subnet.net_id if subnet.net_id is not None else network.net_id
        try:
            interface = vlan_interface_name(self.view.parent_interface(NetworkMode.VLAN), net_id)
        except InvalidValue as exc:
            raise CNIError(E_PLUMBING, f"no VLAN interface for subnet {subnet.name}: {exc}") from None
        return VLANCheck(interface=interface, gateway=gateway)
