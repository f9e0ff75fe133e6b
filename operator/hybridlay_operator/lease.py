"""One active operator through a coordination.k8s.io Lease: for efficiency, never for correctness.

Two active instances are safe (creating an IPInstance is the claim, and the API server refuses a
second claim of one address); the Lease only saves the standby the work and the 409s. A standby keeps
watching, so its state is warm when it takes over.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping
from typing import Any

from hybridlay_operator.kube import ApiError, Kube, lease_path


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


def _format(moment: datetime.datetime) -> str:
    # MicroTime, as the API stores renewTime.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def lease_spec(identity: str, seconds: int, now: datetime.datetime, acquired: str | None = None) -> dict[str, Any]:
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": seconds,
        "acquireTime": acquired or _format(now),
        "renewTime": _format(now),
    }


def may_take(lease: Mapping[str, Any], identity: str, now: datetime.datetime) -> bool:
    """Ours already, unheld, or expired (its holder missed its renewals)."""
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder or holder == identity:
        return True
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or 0
    return renewed is None or now > renewed + datetime.timedelta(seconds=duration)


class LeaseKeeper:
    """Acquires and renews the Lease; ``try_hold()`` says whether this instance should act."""

    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, seconds: int) -> None:
        self._kube = kube
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self.seconds = seconds

    async def try_hold(self) -> bool:
        now = _now()
        lease = await self._kube.get(lease_path(self._namespace, self._name))
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self._name, "namespace": self._namespace},
                "spec": lease_spec(self.identity, self.seconds, now),
            }
            return await self._kube.create(lease_path(self._namespace), body)
        if not may_take(lease, self.identity, now):
            return False
        spec = lease.get("spec") or {}
        acquired = spec.get("acquireTime") if spec.get("holderIdentity") == self.identity else None
        # Replace with the resourceVersion read: of two candidates for an expired lease, one gets 409.
        lease["spec"] = lease_spec(self.identity, self.seconds, now, acquired)
        try:
            await self._kube.request("PUT", lease_path(self._namespace, self._name), lease)
        except ApiError as e:
            if e.status in (404, 409):
                return False
            raise
        return True

    async def release(self) -> None:
        """Hand over at once on a clean shutdown instead of making the standby wait for expiry."""
        lease = await self._kube.get(lease_path(self._namespace, self._name))
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"]["holderIdentity"] = None
        with contextlib.suppress(ApiError):  # else it expires by itself
            await self._kube.request("PUT", lease_path(self._namespace, self._name), lease)
