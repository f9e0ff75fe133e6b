"""Answers the kernel's neighbour misses on the VXLAN devices from the agent's view (as Hybridnet does).

The planner sets ``app_solicit=1`` and ``mcast_solicit=0`` on the VXLAN devices: an address without
a neighbour entry then makes the kernel ask user space (an ``RTM_GETNEIGH`` notification) instead of
broadcasting ARP/NDP to every VTEP. This thread answers with the owning node's VTEP MAC, looked up
IPInstance (named after its address) → node → NodeInfo. The reconciler also writes these entries
for every known remote pod; the responder covers the moments before it has run (a pod just
created elsewhere) and entries removed behind the agent's back.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_NEIGH

from hybridlay_agent.rtnl_events import RtnlListener

log = logging.getLogger(__name__)
NUD_PERMANENT = 0x80


class NeighbourMissResponder(RtnlListener):
    def __init__(self, resolve: Callable[[str], str | None], tunnels: Callable[[], set[str]]) -> None:
        """``resolve(ip)`` → the VTEP MAC of the node holding ``ip`` (None: unknown or local);
        ``tunnels()`` → the names of our VXLAN devices."""
        super().__init__(RTMGRP_NEIGH, "neighbour-miss")
        self.resolve = resolve
        self.tunnels = tunnels
        self._writer: IPRoute | None = None

    def setup(self, events: IPRoute) -> None:
        self._writer = IPRoute()

    def teardown(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def handle(self, message: Any) -> None:
        if message.get("event") == "RTM_GETNEIGH" and self._writer is not None:
            self._answer(self._writer, message["ifindex"], message.get("dst"))

    def _answer(self, writer: IPRoute, ifindex: int, ip: str | None) -> None:
        try:
            device = socket.if_indextoname(ifindex)
        except OSError:
            return
        if not ip or device not in self.tunnels():
            return
        mac = self.resolve(ip)
        if mac is None:
            log.debug("neighbour miss for %s on %s: no remote pod has that address", ip, device)
            return
        writer.neigh("replace", ifindex=ifindex, dst=ip, lladdr=mac, state=NUD_PERMANENT)
        log.info(json.dumps({"event": "neighbour-miss", "device": device, "ip": ip, "mac": mac}))
