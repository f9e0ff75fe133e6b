"""Kubernetes Events about pods and our objects, posted in the background.

Events never delay an allocation: they queue here, and a few workers post them once the operator
is not busy claiming addresses (or once an event has waited ``MAX_DELAY_SECONDS``): in a burst of
pods the API's write capacity goes to the claims first. Reasons follow Hybridnet's (reference §3)
so existing dashboards and alerts keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hybridlay_operator.kube import ApiError, Kube, core_path

logger = logging.getLogger(__name__)

ALLOCATION_SUCCEEDED = "IPAllocationSucceed"
ALLOCATION_FAILED = "IPAllocationFail"
RELEASE_SUCCEEDED = "IPReleaseSucceed"
RESERVE_SUCCEEDED = "IPReserveSucceed"
ADDRESS_CONFLICT = "IPAddressConflict"
INVALID_SPEC = "InvalidSpec"
COMPONENT = "hybridlay-operator"
QUEUE_LIMIT = 10_000
MAX_DELAY_SECONDS = 30.0


@dataclass(frozen=True)
class Involved:
    """The object an Event is about."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = "v1"


def involved_pod(namespace: str, name: str, uid: str = "") -> Involved:
    return Involved("Pod", name, namespace, uid)


def build_event(about: Involved, type_: str, reason: str, message: str, instance: str) -> dict[str, Any]:
    now = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Named like client-go names them (object name + unique suffix): no generateName round trip.
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{about.name}.{secrets.token_hex(8)}", "namespace": about.namespace or "default"},
        "involvedObject": {
            "apiVersion": about.api_version,
            "kind": about.kind,
            "name": about.name,
            "namespace": about.namespace or None,
            "uid": about.uid or None,
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class EventPoster:
    def __init__(self, kube: Kube, instance: str, busy: Callable[[], bool] = lambda: False, workers: int = 2) -> None:
        self._kube = kube
        self._busy = busy
        self._instance = instance
        self._queue: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    def post(self, about: Involved, type_: str, reason: str, message: str) -> None:
        event = build_event(about, type_, reason, message, self._instance)
        try:
            self._queue.put_nowait((time.monotonic(), event))
        except asyncio.QueueFull:
            # An event storm must not grow memory without bound; the log keeps the message.
            logger.warning("event queue full, dropping %s %s: %s", reason, about.name, message)

    def normal(self, about: Involved, reason: str, message: str) -> None:
        self.post(about, "Normal", reason, message)

    def warning(self, about: Involved, reason: str, message: str) -> None:
        self.post(about, "Warning", reason, message)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"events-{i}") for i in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _work(self) -> None:
        while True:
            queued, event = await self._queue.get()
            while self._busy() and time.monotonic() - queued < MAX_DELAY_SECONDS:
                await asyncio.sleep(0.05)
            namespace = event["metadata"]["namespace"]
            try:
                await self._kube.create(core_path("events", namespace), event)
            except ApiError as e:
                # A namespace that is going (or gone) takes no events: nobody will read them there.
                gone = e.status == 404 or "being terminated" in str(e)
                (logger.debug if gone else logger.warning)("could not post event %s: %s", event["reason"], e)
            except Exception as e:  # an event is not worth dying for; the log keeps it
                logger.warning("could not post event %s: %s", event["reason"], e)
