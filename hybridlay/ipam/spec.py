"""A Subnet's address range, parsed and checked once: what IPAM and the throw routes work from.

Reference §3: the allocatable addresses are ``start..end`` (default: network + 1 .. the last
address, the IPv4 broadcast excluded) minus the gateway, the excluded and the reserved addresses.
Every check happens here, before any pool changes, so a bad spec changes nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hybridlay.addresses import IPAddress, IPNetwork, parse_cidr, parse_ip
from hybridlay.errors import InvalidValue
from hybridlay.model import Subnet

# One subnet's pool holds a byte and an 8-byte owner hash per address: 65,536 addresses is
# about 0.6 MB. Larger ranges (a /64 without start/end) must be cut down with start/end.
MAX_CAPACITY = 65_536
# Prefixes too long to hold a pod address next to a network (and IPv4 broadcast) address.
MAX_PREFIX = {4: 30, 6: 126}


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


def _version(subnet: Subnet) -> int | None:
    text = subnet.range.version
    if text in ("", None):
        return None  # taken from the CIDR
    if text not in ("4", "6"):
        raise InvalidValue("spec.range.version", text, 'must be "4" or "6"')
    return int(text)


def _inside(cidr: IPNetwork, address: IPAddress, field: str, text: str) -> int:
    if address not in cidr:
        raise InvalidValue(field, text, f"is outside spec.range.cidr {cidr}")
    return int(address)


def _address_list(values: tuple[str, ...], field: str, cidr: IPNetwork) -> frozenset[int]:
    return frozenset(
        _inside(cidr, parse_ip(text, f"{field}[{i}]", cidr.version), f"{field}[{i}]", text)
        for i, text in enumerate(values)
    )


def parse_range(subnet: Subnet) -> SubnetRange:
    """Parse and check ``subnet.range``; :class:`InvalidValue` names the first bad field and value."""
    r = subnet.range
    cidr = parse_cidr(r.cidr, "spec.range.cidr", _version(subnet))
    version = cidr.version
    if cidr.prefixlen > MAX_PREFIX[version]:
        raise InvalidValue(
            "spec.range.cidr", r.cidr, f"is too small for pods: the prefix may be at most /{MAX_PREFIX[version]}"
        )
    lowest = int(cidr.network_address) + 1
    highest = int(cidr.broadcast_address) - (1 if version == 4 else 0)
    start = lowest if r.start is None else _bounded(r.start, "spec.range.start", cidr, lowest, highest)
    end = highest if r.end is None else _bounded(r.end, "spec.range.end", cidr, lowest, highest)
    if start > end:
        raise InvalidValue("spec.range.start", r.start, f"is after spec.range.end {r.end}")
    capacity = end - start + 1
    if capacity > MAX_CAPACITY:
        field, value = _capacity_field(subnet)
        raise InvalidValue(
            field, value, f"gives {capacity} addresses, more than {MAX_CAPACITY}: narrow it with spec.range.start/end"
        )
    gateway = None
    if r.gateway is not None:
        gateway = _inside(cidr, parse_ip(r.gateway, "spec.range.gateway", version), "spec.range.gateway", r.gateway)
    return SubnetRange(
        version=version,
        cidr=cidr,
        start=start,
        end=end,
        start_given=r.start is not None,
        end_given=r.end is not None,
        gateway=gateway,
        excluded=_address_list(r.exclude_ips, "spec.range.excludeIPs", cidr),
        reserved=_address_list(r.reserved_ips, "spec.range.reservedIPs", cidr),
    )


def _bounded(text: str, field: str, cidr: IPNetwork, lowest: int, highest: int) -> int:
    value = _inside(cidr, parse_ip(text, field, cidr.version), field, text)
    if not lowest <= value <= highest:
        usable = f"{format_address(cidr.version, lowest)}-{format_address(cidr.version, highest)}"
        raise InvalidValue(field, text, f"is not a usable address of {cidr} (those are {usable})")
    return value


def format_address(version: int, value: int) -> str:
    """The address as text; IPv4 by hand because IPAM formats one per allocation."""
    if version == 4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return str(ipaddress.IPv6Address(value))


def _capacity_field(subnet: Subnet) -> tuple[str, str]:
    """The field to blame for too large a range: the bound the user set, else the CIDR."""
    r = subnet.range
    if r.end is not None:
        return "spec.range.end", r.end
    if r.start is not None:
        return "spec.range.start", r.start
    return "spec.range.cidr", r.cidr
