"""A thread that follows rtnetlink multicast notifications (the base of the agent's kernel listeners)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from pyroute2 import IPRoute

log = logging.getLogger(__name__)


class RtnlListener:
    """Calls :meth:`handle` on its own thread for each notification of ``groups`` (RTMGRP_* bits)."""

    def __init__(self, groups: int, name: str) -> None:
        self.groups = groups
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._events: IPRoute | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Returns once the listener is subscribed (notifications from then on are seen)."""
        self._thread.start()
        self._ready.wait(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        if self._events is not None:
            self._events.close()  # wakes the thread up
        self._thread.join(timeout=5)

    def setup(self, events: IPRoute) -> None:
        """On the listener's thread, once subscribed and before the first notification."""

    def teardown(self) -> None:
        """On the listener's thread, when it ends."""

    def handle(self, message: Any) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        # pyroute2's synchronous sockets run their own event loop: create them on this thread.
        self._events = IPRoute()
        self._events.bind(groups=self.groups)
        self.setup(self._events)
        self._ready.set()
        try:
            while not self._stop.is_set():
                try:
                    for message in self._events.get():
                        self.handle(message)
                except Exception:
                    if self._stop.is_set():
                        return
                    log.exception("%s failed; continuing", self._thread.name)
        finally:
            self.teardown()
