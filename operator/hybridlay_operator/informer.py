"""List, then watch, one collection: the operator's own reflector for its busiest resources.

kopf watches the few, small resources (networks, subnets, nodes, namespaces, workloads); pods and
IPInstances come through here instead, because they are many: kopf lists each resource at start
(a second full list of 20,000 IPInstances after the operator's own) and hands every event through a
per-object worker, which in a burst costs more CPU than the API write the event is about.

The list comes from the API server's watch cache (``resourceVersion=0``, or not older than what was
seen) and is streamed item by item into the consumer; the watch resumes from the list's version.
A relist (after ``410 Gone``, a failed reconnect, or on request: the periodic resync) hands the
consumer a complete new list, so whatever drifted in memory converges to the API's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from hybridlay_operator import cache
from hybridlay_operator.kube import ApiError, Kube

logger = logging.getLogger(__name__)

WATCH_SECONDS = 300
BACKOFF_SECONDS = (0.2, 1.0, 2.0, 5.0)


class Consumer(Protocol):
    def listing(self) -> Callable[[dict[str, Any]], None]:
        """A new complete list begins: the callable receives each of its items."""

    def listed(self) -> None:
        """The list is complete: the state is now that list (plus what was written meanwhile)."""

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""


class Informer:
    def __init__(self, kube: Kube, path: str, consumer: Consumer, name: str, resource_version: str = "0") -> None:
        self.kube = kube
        self.path = path
        self.consumer = consumer
        self.name = name
        self.resource_version = resource_version  # listed from (the first time), then last seen
        self.lists = 0  # complete lists handed over so far
        self._relist = True
        self._listed = asyncio.Event()
        self._waiting: list[asyncio.Future[None]] = []
        self._watch: asyncio.Task[None] | None = None

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if self._relist:
                    await self._list()
                self._watch = asyncio.create_task(self._follow(), name=f"watch-{self.name}")
                started = asyncio.get_running_loop().time()
                await asyncio.wait([self._watch])
                watch, self._watch = self._watch, None
                if not watch.cancelled():
                    watch.result()
                    if asyncio.get_running_loop().time() - started < 1:
                        await asyncio.sleep(1)  # a server that ends every watch at once is not asked in a loop
                failures = 0
            except asyncio.CancelledError:
                if self._watch is not None:
                    self._watch.cancel()
                raise
            except ApiError as e:
                if e.status == 410:
                    logger.debug("%s: watch version expired; listing again", self.name)
                    self._relist = True
                    continue
                failures = self._failed(failures, e)
            except Exception as e:  # a dropped connection, a server restarting: try again soon
                failures = self._failed(failures, e)
            if failures:
                await asyncio.sleep(BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS)) - 1])

    def _failed(self, failures: int, error: Exception) -> int:
        log = logger.warning if failures >= 2 else logger.debug
        log("%s: list or watch failed (%s); retrying", self.name, error or type(error).__name__)
        if failures >= 1:
            self._relist = True  # a resumed watch did not work either: start from a fresh list
        return failures + 1

    async def _list(self) -> None:
        started = time.monotonic()
        count = 0

        def counted(obj: dict[str, Any]) -> None:
            nonlocal count
            count += 1
            on_item(obj)

        with cache.gc_paused():
            on_item = self.consumer.listing()
            version = await self.kube.list_each(self.path, counted, resource_version=self.resource_version or "0")
            self._listed.set()
            self.consumer.listed()
        log = logger.info if not self.lists else logger.debug
        log("%s: listed %d in %.2f s", self.name, count, time.monotonic() - started)
        self.resource_version = version
        self._relist = False
        self.lists += 1
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            if not future.done():
                future.set_result(None)

    async def _follow(self) -> None:
        async for event in self.kube.watch(self.path, self.resource_version, WATCH_SECONDS):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                code = obj.get("code") or 500
                raise ApiError(
                    int(code), "WATCH", self.path, str(obj.get("message", "")), reason=str(obj.get("reason", ""))
                )
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if kind != "BOOKMARK":
                self.consumer.event(str(kind), obj)
            if version:
                self.resource_version = version

    async def wait_listed(self) -> None:
        """Until the first complete list has been handed over."""
        await self._listed.wait()

    async def relist(self) -> None:
        """List again now (the watch pauses meanwhile), and return once the consumer has it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._relist = True
        if self._watch is not None:
            self._watch.cancel()
        await future

    @property
    def listed(self) -> bool:
        return self._listed.is_set()


async def stop(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
