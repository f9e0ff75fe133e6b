"""A Subnet's address range, parsed and checked once: what IPAM and the throw routes work from.

Reference §3: the allocatable addresses are ``start..end`` (default: network + 1 .. the last
address, the IPv4 broadcast excluded) minus the gateway, the excluded and the reserved addresses.
Every check happens here, before any pool changes, so a bad spec changes nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hybridlay.addresses import IPNetwork
from hybridlay.errors import InvalidValue
from hybridlay.model import Subnet
from hybridlay.validation import MAX_SUBNET_CAPACITY, range_violations

# One subnet's pool holds a byte and an 8-byte owner hash per address: 65,536 addresses is
# about 0.6 MB. Larger ranges (a /64 without start/end) must be cut down with start/end.
MAX_CAPACITY = MAX_SUBNET_CAPACITY


@dataclass(frozen=True)
class SubnetRange:
    """A subnet's range as integers; ``start``/``end`` are the effective (defaulted) bounds."""

    version: int
    cidr: IPNetwork
    start: int
    end: int
    start_given: bool
    end_given: bool
    gateway: int | None
    excluded: frozenset[int]
    reserved: frozenset[int]

    @property
    def capacity(self) -> int:
        return self.end - self.start + 1

    def text(self, value: int) -> str:
        return format_address(self.version, value)

    def assignable_span(self) -> tuple[int, int] | None:
        """The first and last address the subnet may hand out: start..end without the gateway and
        excluded addresses at either edge (what its total counts); None when it may hand out none."""
        blocked = self.excluded | ({self.gateway} if self.gateway is not None else set())
        low, high = self.start, self.end
        while low <= high and low in blocked:
            low += 1
        while high >= low and high in blocked:
            high -= 1
        return (low, high) if low <= high else None

    def immutable_change(self, other: SubnetRange) -> str | None:
        """The first immutable field (reference §4) that differs from ``other``, or ``None``."""
        pairs = {
            "spec.range.version": (self.version, other.version),
            "spec.range.cidr": (self.cidr, other.cidr),
            "spec.range.start": (self.start, other.start),
            "spec.range.end": (self.end, other.end),
            "spec.range.gateway": (self.gateway, other.gateway),
            "spec.range.excludeIPs": (self.excluded, other.excluded),
        }
        return next((field for field, (mine, theirs) in pairs.items() if mine != theirs), None)


def _addresses(values: tuple[str, ...]) -> frozenset[int]:
    return frozenset(int(ipaddress.ip_address(text)) for text in values)


def parse_range(subnet: Subnet) -> SubnetRange:
    """Check ``subnet.range`` with the admission rules; :class:`InvalidValue` names the first bad field.

    The rules (and so the messages) are :func:`hybridlay.validation.range_violations`, the ones the
    webhooks and the Ansible plan check apply: IPAM accepts exactly what admission accepts.
    """
    violations, bounds = range_violations(subnet)
    if violations or bounds is None:
        first = violations[0]
        raise InvalidValue(first.field, first.value, first.message)
    r = subnet.range
    return SubnetRange(
        version=bounds.cidr.version,
        cidr=bounds.cidr,
        start=int(bounds.start),
        end=int(bounds.end),
        start_given=r.start is not None,
        end_given=r.end is not None,
        gateway=None if r.gateway is None else int(ipaddress.ip_address(r.gateway)),
        excluded=_addresses(r.exclude_ips),
        reserved=_addresses(r.reserved_ips),
    )


def format_address(version: int, value: int) -> str:
    """The address as text; IPv4 by hand because IPAM formats one per allocation."""
    if version == 4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return str(ipaddress.IPv6Address(value))
