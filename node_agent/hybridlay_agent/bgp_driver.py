"""Runs this node's BGP speaker from the cluster view: which network, which configuration, which routes.

The decisions are pure functions (:func:`member_bgp_network`, :func:`plan_speaker`,
:func:`speaker_action`); :class:`BGPDriver` only carries them out with
:class:`~hybridlay_agent.bgp_speaker.BGPSpeaker`:

- first time, or a changed configuration or password: the old speaker (if any) stops gracefully
  (peers keep our routes) and a new one starts with the desired routes already in its configuration;
- otherwise the routes are brought to the desired set in place;
- the node leaves its BGP network: the speaker withdraws everything and stops;
- the speaker fails (:class:`SpeakerError`), or is found not running (ExaBGP died while nothing
  changed, so no command would have failed): it is restarted the same graceful way.

Peer passwords are read from their Secrets on every pass (a rotated password restarts the speaker);
their values are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from hybridlay.bgp import Announcement, BGPNode, SpeakerConfig, desired_announcements, speaker_config
from hybridlay.dataplane.planner import ClusterState
from hybridlay.model import Network, NetworkMode, SecretKeyRef
from hybridlay_agent.bgp_speaker import BGPSpeaker, SpeakerError, check_password

log = logging.getLogger(__name__)

Action = Literal["none", "start", "restart", "apply", "stop"]


@dataclass(frozen=True)
class SpeakerPlan:
    """What this node's speaker should be: its network, configuration and announcements."""

    network: str
    config: SpeakerConfig
    announcements: frozenset[Announcement]


@dataclass(frozen=True)
class RunningSpeaker:
    network: str
    config: SpeakerConfig
    passwords: Mapping[str, str]


def member_bgp_network(networks: Iterable[Network], node_name: str, labels: Mapping[str, str]) -> Network | None:
    """The BGP network this node belongs to (selected by its labels or listed in the status); first by name."""
    members = sorted(
        (
            n
            for n in networks
            if n.effective_mode is NetworkMode.BGP and (n.selects(labels) or node_name in n.status.node_list)
        ),
        key=lambda n: n.name,
    )
    if len(members) > 1:
        log.warning(
            "node %s is in several BGP networks (%s); speaking for %s only",
            node_name,
            ", ".join(n.name for n in members),
            members[0].name,
        )
    return members[0] if members else None


def plan_speaker(state: ClusterState, labels: Mapping[str, str], node: BGPNode) -> SpeakerPlan | None:
    """None when the node is in no BGP network; :class:`InvalidValue` for a network it cannot speak for."""
    network = member_bgp_network(state.networks, node.name, labels)
    if network is None:
        return None
    config = speaker_config(network, node)
    announcements = desired_announcements(network, config, state.subnets, state.ipinstances, node)
    return SpeakerPlan(network.name, config, announcements)


def speaker_action(running: RunningSpeaker | None, plan: SpeakerPlan | None, passwords: Mapping[str, str]) -> Action:
    """What to do to get from the running speaker to the planned one."""
    if plan is None:
        return "none" if running is None else "stop"
    if running is None:
        return "start"
    if (running.network, running.config, dict(running.passwords)) != (plan.network, plan.config, dict(passwords)):
        return "restart"
    return "apply"


def password_refs(config: SpeakerConfig) -> dict[str, SecretKeyRef]:
    """Peer address → where its password lives, for the peers that have one."""
    return {p.address: p.password_secret for p in config.peers if p.password_secret is not None}


def secret_value(data: Mapping[str, str] | None, ref: SecretKeyRef, namespace: str) -> str:
    """The decoded ``ref.key`` of a Secret's base64 ``data``; errors name the Secret and key, never the value."""
    where = f"Secret {namespace}/{ref.name} key {ref.key!r}"
    encoded = (data or {}).get(ref.key)
    if encoded is None:
        raise KeyError(f"{where}: no such key")
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"{where}: not base64-encoded UTF-8") from None


class Speaker(Protocol):
    """What the driver uses of :class:`BGPSpeaker` (a fake stands in for it in unit tests)."""

    async def start(
        self, config: SpeakerConfig, announced: frozenset[Announcement], passwords: Mapping[str, str]
    ) -> None: ...

    @property
    def running(self) -> bool: ...

    async def apply(self, desired: frozenset[Announcement]) -> None: ...

    async def stop(self, graceful: bool = True) -> None: ...

    async def wait_announced(self, prefix: str, timeout: float) -> None: ...


class BGPDriver:
    """Owns at most one speaker (one BGP network per node); lives on the agent's event loop.

    ``read_secret`` returns a password (:func:`secret_value` of the Secret ``ref`` names).
    """

    def __init__(
        self,
        run_dir: Path,
        read_secret: Callable[[SecretKeyRef], Awaitable[str]],
        new_speaker: Callable[[Path], Speaker] = BGPSpeaker,
    ) -> None:
        self.run_dir = run_dir
        self.read_secret = read_secret
        self.new_speaker = new_speaker
        self._speaker: Speaker | None = None
        self._running: RunningSpeaker | None = None
        self._changed = asyncio.Condition()

    async def sync(self, plan: SpeakerPlan | None) -> Action:
        """Bring the speaker to ``plan``; returns what it did. Raises when it could not."""
        passwords = await self._passwords(plan.config) if plan is not None else {}
        action = speaker_action(self._running, plan, passwords)
        if plan is None:
            if self._running is not None:
                log.info("node left BGP network %s: withdrawing its routes", self._running.network)
                await self._stop(graceful=False)
        elif action in ("start", "restart"):
            await self._start(plan, passwords)
        elif self._speaker is not None and not self._speaker.running:
            log.warning("BGP speaker is not running (ExaBGP or its API helper gone); restarting it")
            await self._start(plan, passwords)
            action = "restart"
        elif self._speaker is not None:
            try:
                await self._speaker.apply(plan.announcements)
            except SpeakerError as e:
                log.warning("BGP speaker failed (%s); restarting it", e)
                await self._start(plan, passwords)
                action = "restart"
        return action

    async def stop(self) -> None:
        """Agent shutdown: peers keep our routes (graceful restart) until the next agent's speaker is up."""
        await self._stop(graceful=True)

    async def wait_announced(self, ip: str, timeout: float) -> None:
        """Until the pod address ``ip`` is announced over established sessions; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self._speaker is not None), timeout)
            speaker = self._speaker
        if speaker is None:  # stopped again meanwhile
            raise TimeoutError
        await speaker.wait_announced(ip, max(0.0, deadline - time.monotonic()))

    async def _passwords(self, config: SpeakerConfig) -> dict[str, str]:
        """Read and checked before anything is stopped: a bad password must not take down a working speaker."""
        passwords = {peer: await self.read_secret(ref) for peer, ref in password_refs(config).items()}
        for peer, password in passwords.items():
            check_password(peer, password)
        return passwords

    async def _start(self, plan: SpeakerPlan, passwords: Mapping[str, str]) -> None:
        await self._stop(graceful=True)
        speaker = self.new_speaker(self.run_dir)
        try:
            await speaker.start(plan.config, plan.announcements, passwords)
        except BaseException:
            await speaker.stop(graceful=True)  # nothing half-started is left running
            raise
        async with self._changed:
            self._speaker = speaker
            self._running = RunningSpeaker(plan.network, plan.config, dict(passwords))
            self._changed.notify_all()

    async def _stop(self, graceful: bool) -> None:
        speaker, self._speaker, self._running = self._speaker, None, None
        if speaker is not None:
            await speaker.stop(graceful=graceful)
