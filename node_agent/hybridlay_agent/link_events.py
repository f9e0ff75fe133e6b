"""Asks for a reconcile as soon as a link comes up.

Taking a link down makes the kernel drop what hangs on it: the routes through it and its proxy
ARP/NDP entries (permanent or not). Without this, a flapped VLAN interface or VXLAN device would stay
without them until the next periodic resync, its pods unreachable meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_LINK

from hybridlay_agent.rtnl_events import RtnlListener

log = logging.getLogger(__name__)
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
UP = IFF_UP | IFF_LOWER_UP


class LinkUpWatcher(RtnlListener):
    def __init__(self, on_up: Callable[[str], object]) -> None:
        """``on_up(name)``: called on the watcher's thread for each link that has just come up."""
        super().__init__(RTMGRP_LINK, "link-up")
        self.on_up = on_up
        self._was_up: dict[int, bool] = {}

    def setup(self, events: IPRoute) -> None:
        self._was_up = {link["index"]: link["flags"] & UP == UP for link in events.get_links()}

    def handle(self, message: Any) -> None:
        if message.get("event") != "RTM_NEWLINK":
            return
        up = message["flags"] & UP == UP
        if up and not self._was_up.get(message["index"], False):
            name = message.get_attr("IFLA_IFNAME")
            log.debug("link %s is up: reconciling", name)
            self.on_up(name)
        self._was_up[message["index"]] = up
