"""The node's BGP speaker: ExaBGP 5 run as a subprocess and driven through its process API.

ExaBGP starts the API helper named in its configuration and reads commands from the helper's
stdout, writing acknowledgements (``done``/``error``, one per command) and JSON events (session
state) to its stdin. Our helper is this module run with ``relay SOCKET``: it connects to a unix
socket (0600, in a 0700 run directory) served by the agent and copies bytes both ways, so the agent
talks to ExaBGP over one stream without ExaBGP's named-pipe CLI.

Graceful restart: the routes known at start are written into ExaBGP's configuration as static
routes, so after a restart they are sent again before End-of-RIB and the peer (which kept them
as stale) replaces rather than withdraws them. A graceful stop kills ExaBGP without a BGP
NOTIFICATION, which is what lets the peer keep the routes; a leftover ExaBGP of a crashed agent is
found by its pid file and killed the same way on the next start.

TCP MD5 passwords are given by the caller (read from a Secret), written only into the 0600
configuration file, never into argv, and masked in every log line relayed from ExaBGP.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from hybridlay.bgp import Announcement, SpeakerConfig, changes, host_prefix

log = logging.getLogger(__name__)

MD5_KEY_MAX = 80  # TCP_MD5SIG_MAXKEYLEN
_PROCESS_NAME = "hybridlay"
_COMMAND_TIMEOUT = 10.0
_REDACTED = "******"
# ExaBGP acknowledges a command before its reactor sends the UPDATE: time for that on the way out.
_UPDATE_FLUSH = 0.5
_LOG_POLL = 0.2


class SpeakerError(RuntimeError):
    """ExaBGP could not be started, or refused or did not answer a command."""


def _exabgp_environment(log_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            # Stay root: dropping to nobody would lose access to the 0600 API socket.
            "exabgp.daemon.user": "root",
            "exabgp.daemon.drop": "false",
            "exabgp.daemon.daemonize": "false",
            "exabgp.api.ack": "true",
            "exabgp.api.encoder": "json",
            # No named-pipe CLI: the agent is the only client.
            "exabgp.api.cli": "false",
            # If the agent dies the helper exits; ExaBGP must keep the sessions (and routes) up.
            "exabgp.api.respawn": "false",
            "exabgp.api.terminate": "false",
            # We only connect out; no listening socket on port 179.
            "exabgp.tcp.bind": "",
            # A file, not a pipe to the agent: an ExaBGP orphaned by a crashed agent would die on
            # its next log line into a pipe nobody reads. ExaBGP rotates it (1 MiB, 3 kept).
            "exabgp.log.destination": str(log_path),
            "exabgp.daemon.umask": "0077",
            "exabgp.log.level": "INFO",
            "exabgp.log.statistics": "false",  # a line per keepalive otherwise
            "exabgp.cache.attributes": "false",
        }
    )
    return env


def check_password(peer: str, password: str) -> None:
    """Reject what TCP MD5 or ExaBGP's configuration syntax cannot carry, without echoing the value."""
    bad = not 1 <= len(password.encode()) <= MD5_KEY_MAX or any(
        c in "\"'\\;{}" or not c.isprintable() for c in password
    )
    if bad:
        raise ValueError(
            f"password of BGP peer {peer}: must be 1-{MD5_KEY_MAX} bytes of printable characters "
            "without quotes, backslash, ';' or braces"
        )


def _route(announcement: Announcement) -> str:
    community = " community [no-export]" if announcement.no_export else ""
    return f"route {announcement.prefix} next-hop {announcement.next_hop}{community}"


def render_config(
    config: SpeakerConfig,
    announced: frozenset[Announcement],
    passwords: Mapping[str, str],
    relay_command: Sequence[str],
) -> str:
    """ExaBGP configuration: one neighbor per peer, its routes static so they precede End-of-RIB."""
    lines = [f"process {_PROCESS_NAME} {{", f"    run {' '.join(relay_command)};", "    encoder json;", "}"]
    for peer in config.peers:
        family = "ipv4" if peer.version == 4 else "ipv6"
        lines += [
            f"neighbor {peer.address} {{",
            f"    router-id {config.router_id};",
            f"    local-address {peer.local_address};",
            f"    local-as {config.local_asn};",
            f"    peer-as {peer.asn};",
            "    group-updates false;",
            f"    family {{ {family} unicast; }}",
            f"    capability {{ graceful-restart {peer.graceful_restart_seconds}; }}",
            f"    api {{ processes [ {_PROCESS_NAME} ]; neighbor-changes; }}",
        ]
        if peer.address in passwords:
            # md5-base64 false: ExaBGP would otherwise read a hex-looking password as base64.
            lines += [f'    md5-password "{passwords[peer.address]}";', "    md5-base64 false;"]
        routes = sorted(a for a in announced if a.peer == peer.address)
        if routes:
            lines += ["    static {"] + [f"        {_route(a)};" for a in routes] + ["    }"]
        lines.append("}")
    return "\n".join(lines) + "\n"


def _command(action: str, announcement: Announcement) -> str:
    return f"neighbor {announcement.peer} {action} {_route(announcement)}"


class BGPSpeaker:
    """One ExaBGP process for one BGP network on this node.

    ``command_prefix`` runs ExaBGP elsewhere, e.g. ``("ip", "netns", "exec", NAME)`` in tests
    where a network namespace stands in for a node.
    """

    def __init__(self, run_dir: Path | str, *, command_prefix: Sequence[str] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.command_prefix = tuple(command_prefix)
        self.config_path = self.run_dir / "exabgp.conf"
        self.socket_path = self.run_dir / "api.sock"
        self.pid_path = self.run_dir / "exabgp.pid"
        self.log_path = self.run_dir / "exabgp.log"
        self._config: SpeakerConfig | None = None
        self._secrets: tuple[str, ...] = ()
        self._process: asyncio.subprocess.Process | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._acks: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._states: dict[str, str] = {}
        self._announced: frozenset[Announcement] = frozenset()
        self._changed = asyncio.Condition()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(
        self,
        config: SpeakerConfig,
        announced: frozenset[Announcement] = frozenset(),
        passwords: Mapping[str, str] | None = None,
        timeout: float = 15.0,
    ) -> None:
        """Start ExaBGP with ``announced`` already in its configuration (see graceful restart above).

        ``passwords`` maps a peer address to its TCP MD5 password.
        """
        if self._process is not None:
            raise SpeakerError("speaker already started")
        passwords = dict(passwords or {})
        peers = {p.address for p in config.peers}
        for peer, password in passwords.items():
            if peer not in peers:
                raise ValueError(f"password given for {peer}, which is not a configured BGP peer")
            check_password(peer, password)
        self._config = config
        self._secrets = tuple(passwords.values())
        self._states = {p.address: "down" for p in config.peers}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)
        await self._kill_leftover()
        relay = (sys.executable, "-m", __name__, "relay", str(self.socket_path))
        text = render_config(config, announced, passwords, relay)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.socket_path.unlink(missing_ok=True)
        self._connected.clear()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path))
        self.socket_path.chmod(0o600)
        # Python's own errors (before ExaBGP's logging is up) land in the same file; follow only what is new.
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log_offset = os.fstat(log_fd).st_size
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.command_prefix,
                sys.executable,
                "-m",
                "exabgp",
                "server",
                str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                env=_exabgp_environment(self.log_path),
                start_new_session=True,  # a Ctrl-C to the agent must not reach ExaBGP as well
            )
        finally:
            os.close(log_fd)
        self.pid_path.write_text(f"{self._process.pid}\n")
        self._spawn(self._follow_log(log_offset))
        connected = asyncio.ensure_future(self._connected.wait())
        exited = asyncio.ensure_future(self._process.wait())
        done, _ = await asyncio.wait({connected, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        exited.cancel()
        if connected not in done:
            await self.stop(graceful=False)
            raise SpeakerError(f"ExaBGP did not connect its API helper within {timeout}s (see its log above)")
        self._announced = announced
        log.info("BGP speaker started: AS %s, router id %s, peers %s", config.local_asn, config.router_id,
                 ", ".join(sorted(peers)))

    async def stop(self, graceful: bool = True) -> None:
        """Stop ExaBGP.

        Graceful: killed without a NOTIFICATION, so peers keep our routes for the restart time.
        Otherwise every route is withdrawn first: a peer may treat even a Cease as a graceful
        restart (RFC 8538), and a node leaving the network must not leave routes behind.
        """
        if not graceful and self._writer is not None:
            with contextlib.suppress(SpeakerError):
                await self.apply(frozenset())
                await asyncio.sleep(_UPDATE_FLUSH)
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGKILL if graceful else signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_acks(SpeakerError("speaker stopped"))
        for path in (self.config_path, self.socket_path, self.pid_path):
            path.unlink(missing_ok=True)
        self._states = {}
        async with self._changed:
            self._changed.notify_all()

    async def _kill_leftover(self) -> None:
        """Kill the ExaBGP a crashed agent left running (SIGKILL: no NOTIFICATION, routes kept)."""
        try:
            pid = int(self.pid_path.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.config_path).encode() not in cmdline:
            return  # the pid was reused by an unrelated process
        log.info("killing ExaBGP %s left over by a previous agent", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            if not Path(f"/proc/{pid}").exists():
                return
            await asyncio.sleep(0.01)

    @property
    def running(self) -> bool:
        """ExaBGP is alive and its API helper connected: what :meth:`apply` needs to reach the peers."""
        return (
            self._process is not None
            and self._process.returncode is None
            and self._writer is not None
            and not self._writer.is_closing()
        )

    # --- routes ----------------------------------------------------------------------------

    @property
    def announced(self) -> frozenset[Announcement]:
        return self._announced

    async def apply(self, desired: frozenset[Announcement]) -> None:
        """Announce and withdraw until ExaBGP holds exactly ``desired``; what succeeded stays recorded."""
        async with self._lock:
            for change in changes(desired, self._announced):
                await self._send(_command(change.action, change.announcement))
                if change.action == "withdraw":
                    updated = self._announced - {change.announcement}
                else:
                    key = change.announcement.key
                    updated = frozenset(a for a in self._announced if a.key != key) | {change.announcement}
                async with self._changed:
                    self._announced = updated
                    self._changed.notify_all()

    async def _send(self, command: str) -> None:
        if self._writer is None or self._writer.is_closing():
            raise SpeakerError("ExaBGP API is not connected")
        ack: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._acks.append(ack)
        self._writer.write(command.encode() + b"\n")
        await self._writer.drain()
        try:
            ok = await asyncio.wait_for(ack, _COMMAND_TIMEOUT)
        except TimeoutError:
            raise SpeakerError(f"ExaBGP did not acknowledge: {command}") from None
        if not ok:
            raise SpeakerError(f"ExaBGP refused: {command}")

    # --- state -----------------------------------------------------------------------------

    def session_states(self) -> dict[str, str]:
        """Peer address → last session state ExaBGP reported (down, connected, up)."""
        return dict(self._states)

    def _required_up(self, peers: set[str]) -> bool:
        """At least one of ``peers`` is up, and each one not marked ``allowNotEstablished`` too."""
        configured = self._config.peers if self._config is not None else ()
        relevant = [p for p in configured if p.address in peers]
        up = [p for p in relevant if self._states.get(p.address) == "up"]
        return bool(up) and all(self._states.get(p.address) == "up" or p.allow_not_established for p in relevant)

    async def wait_established(self, timeout: float) -> None:
        """Until the sessions are up (see :meth:`_required_up`); TimeoutError otherwise."""
        if self._config is None:
            raise SpeakerError("speaker not started")
        peers = {p.address for p in self._config.peers}
        await self._wait_for(lambda: self._required_up(peers), timeout)

    async def wait_announced(self, prefix: str, timeout: float) -> None:
        """Until ``prefix`` (a CIDR, or a bare pod address: its host route) is announced over established sessions.

        "Announced" means ExaBGP acknowledged the command; it sends the UPDATE on its next cycle.
        """
        wanted = str(ipaddress.ip_network(prefix)) if "/" in prefix else host_prefix(prefix)

        def ready() -> bool:
            peers = {a.peer for a in self._announced if a.prefix == wanted}
            return bool(peers) and self._required_up(peers)

        await self._wait_for(ready, timeout)

    async def _wait_for(self, predicate: collections.abc.Callable[[], bool], timeout: float) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    # --- I/O with the helper and ExaBGP's log ----------------------------------------------

    def _spawn(self, coro: collections.abc.Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:  # one helper at a time
            writer.close()
            return
        self._writer = writer
        self._connected.set()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            while line := await reader.readline():
                await self._handle(line.decode(errors="replace").strip())
        finally:
            self._writer = None
            self._fail_acks(SpeakerError("ExaBGP API connection closed"))
            self._states = dict.fromkeys(self._states, "down")
            async with self._changed:
                self._changed.notify_all()

    async def _handle(self, line: str) -> None:
        if line in ("done", "error"):
            if self._acks:
                ack = self._acks.popleft()
                if not ack.done():
                    ack.set_result(line == "done")
            return
        if not line.startswith("{"):
            return
        event = json.loads(line)
        if event.get("type") != "state":
            return
        neighbor = event.get("neighbor", {})
        peer = neighbor.get("address", {}).get("peer")
        state = neighbor.get("state")
        if peer is None or state is None:
            return
        log.info("BGP session to %s: %s%s", peer, state, f" ({neighbor['reason']})" if neighbor.get("reason") else "")
        async with self._changed:
            self._states[peer] = state
            self._changed.notify_all()

    def _fail_acks(self, error: Exception) -> None:
        while self._acks:
            ack = self._acks.popleft()
            if not ack.done():
                ack.set_exception(error)

    async def _follow_log(self, offset: int) -> None:
        """Relay ExaBGP's log file into ours, passwords masked; reopen it when ExaBGP rotates it."""
        handle = None
        pending = b""
        try:
            while True:
                if handle is None:
                    try:
                        handle = self.log_path.open("rb")
                    except FileNotFoundError:
                        await asyncio.sleep(_LOG_POLL)
                        continue
                    handle.seek(offset)
                    offset = 0  # a rotated-in file is read from its start
                *lines, pending = (pending + handle.read()).split(b"\n")
                for line in lines:
                    self._log_exabgp(line)
                try:
                    rotated = self.log_path.stat().st_ino != os.fstat(handle.fileno()).st_ino
                except FileNotFoundError:
                    rotated = True
                if rotated:
                    handle.close()
                    handle = None
                    continue
                await asyncio.sleep(_LOG_POLL)
        finally:
            if handle is not None:
                # What ExaBGP wrote while it was being stopped.
                for line in (pending + handle.read()).split(b"\n"):
                    self._log_exabgp(line)
                handle.close()

    def _log_exabgp(self, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip()
        if not text:
            return
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        log.info("exabgp: %s", text)


def relay(socket_path: str) -> None:
    """ExaBGP's API helper: copy the agent's socket to stdout (commands), stdin to the socket.

    It lives as long as ExaBGP, even without the agent: ExaBGP 5.0 fails on the next session event
    once its helper is gone, and an agent crash must leave the sessions (and routes) up until the
    next agent replaces this ExaBGP.
    """
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)

    def commands() -> None:
        out = sys.stdout.buffer
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                out.write(data)
                out.flush()

    threading.Thread(target=commands, daemon=True).start()
    agent_gone = False
    while data := os.read(sys.stdin.fileno(), 65536):
        if not agent_gone:
            try:
                conn.sendall(data)
            except OSError:
                agent_gone = True


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "relay":
        sys.exit(f"usage: {sys.argv[0]} relay SOCKET")
    relay(sys.argv[2])
