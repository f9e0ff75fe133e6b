"""The core's error types.

Every piece of bad input reaching the core (a malformed CIDR, an address of the wrong family,
start after end, ...) raises :class:`InvalidValue`, whose message names the field and the value.
The core validates before it changes any state, so an exception means nothing was applied.
"""

from __future__ import annotations


class HybridlayError(Exception):
    """Base of every error the core raises on purpose."""


class InvalidValue(HybridlayError, ValueError):
    """A value that cannot be accepted; ``field`` is its path, e.g. ``spec.range.gateway``."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field} {value!s}: {reason}" if field else f"{value!s}: {reason}")


class AddressConflict(HybridlayError):
    """Two claimants for one address (state rebuilt from IPInstances, or an explicit assign)."""

    def __init__(self, address: str, holders: tuple[str, ...]) -> None:
        self.address = address
        self.holders = holders
        super().__init__(f"address {address} is claimed by {', '.join(holders)}")


class NoAddressAvailable(HybridlayError):
    """A pool (subnet or network) has no address left that may be handed out."""

    def __init__(self, pool: str) -> None:
        self.pool = pool
        super().__init__(f"no address available in {pool}")
