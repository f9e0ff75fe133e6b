"""One Subnet's addresses: next-fit allocation, explicit assignment, release, counts.

Memory is two flat arrays indexed by ``address - start``, never a Python object per address:

- ``_free`` (bytearray): 1 where next-fit may hand the address out (allocatable, not reserved,
  not in use). ``bytearray.find`` scans it at C speed, so allocation stays fast when nearly full.
- ``_owners`` (array of unsigned 64-bit): a hash of the holder (``namespace/pod``), 0 when free.
  The IPInstance objects stay the truth about who holds what; the hash only tells holders apart.

An address claimed by several holders at once (found while rebuilding from IPInstances) is
*contested*: it stays in use, its claimants are listed in ``_contested`` and none of them is its
holder until the others release it.
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass

from hybridlay.addresses import instance_name, parse_ip
from hybridlay.errors import AddressConflict, InvalidValue, NoAddressAvailable
from hybridlay.ipam.spec import SubnetRange, format_address, parse_range
from hybridlay.model import Subnet, SubnetStatus

FREE = 0
CONTESTED = 1  # owner hash of a contested address; real hashes are never 0 or 1


def owner_hash(owner: str) -> int:
    """64-bit hash of an owner key; collisions between two pods are negligible (2**-64)."""
    value = int.from_bytes(hashlib.blake2b(owner.encode(), digest_size=8).digest(), "little")
    return value if value > CONTESTED else value + 2


@dataclass(frozen=True, slots=True)
class Allocation:
    """An address handed to an owner, with what the IPInstance and the CNI result need."""

    network: str
    subnet: str
    version: int
    address: str
    prefix_length: int
    gateway: str | None
    net_id: int | None

    @property
    def ip_with_prefix(self) -> str:
        """The address with its subnet's prefix length, as IPInstance ``spec.address.ip`` holds it."""
        return f"{self.address}/{self.prefix_length}"

    @property
    def instance_name(self) -> str:
        return instance_name(self.address)


# Where next-fit resumes: (index to search from, index allocated last). Saved and restored to
# undo the first half of a dual-stack allocation.
Cursor = tuple[int, int | None]


class SubnetPool:
    """The addresses of one Subnet."""

    def __init__(self, subnet: Subnet, net_id: int | None = None) -> None:
        spec = parse_range(subnet)
        self._subnet = subnet
        self._spec = spec
        self.net_id = subnet.net_id if subnet.net_id is not None else net_id
        capacity = spec.capacity
        self._forbidden = frozenset(
            a - spec.start for a in (*spec.excluded, spec.gateway) if a is not None and spec.start <= a <= spec.end
        )
        self._reserved = self._reserved_indexes(spec)
        self._total = capacity - len(self._forbidden) - len(self._reserved)
        self._free = bytearray()
        self._owners = array("Q")
        self._contested: dict[int, list[int]] = {}
        self._used = 0  # in use and not reserved (reference §3)
        self.clear()
        self._next: int = 0  # next-fit searches from here
        self._last: int | None = None  # and allocated this one last
        self._seek(subnet.status.last_allocated_ip)
        self._gateway = None if spec.gateway is None else spec.text(spec.gateway)

    def _reserved_indexes(self, spec: SubnetRange) -> frozenset[int]:
        return frozenset(a - spec.start for a in spec.reserved if spec.start <= a <= spec.end) - self._forbidden

    def _seek(self, last_allocated_ip: str | None) -> None:
        """Resume next-fit after the status' lastAllocatedIP: a hint, ignored if unusable."""
        if last_allocated_ip is None:
            return
        try:
            index = self._index(last_allocated_ip, "status.lastAllocatedIP")
        except InvalidValue:
            return
        self._next, self._last = (index + 1) % self._spec.capacity, index

    # --- identity and counts -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._subnet.name

    @property
    def network(self) -> str:
        return self._subnet.network

    @property
    def version(self) -> int:
        return self._spec.version

    @property
    def private(self) -> bool:
        return self._subnet.config.private

    @property
    def subnet(self) -> Subnet:
        return self._subnet

    @property
    def spec(self) -> SubnetRange:
        return self._spec

    @property
    def total(self) -> int:
        return self._total

    @property
    def used(self) -> int:
        return self._used

    @property
    def available(self) -> int:
        return self._total - self._used

    @property
    def last_allocated_ip(self) -> str | None:
        last = self._last
        return None if last is None else self._text(last)

    def status(self) -> SubnetStatus:
        return SubnetStatus(
            total=self.total, used=self.used, available=self.available, last_allocated_ip=self.last_allocated_ip
        )

    def contains(self, value: int) -> bool:
        """Whether the integer address lies in this pool's start-end."""
        return self._spec.start <= value <= self._spec.end

    # --- changes -------------------------------------------------------------------------------

    def allocate(self, owner: str) -> Allocation:
        """The next free address after the last one allocated (next-fit, wrapping around)."""
        free = self._free
        start = self._next
        index = free.find(1, start)
        if index < 0:
            index = free.find(1, 0, start)
            if index < 0:
                raise NoAddressAvailable(f"subnet {self.name}")
        free[index] = 0
        self._owners[index] = owner_hash(owner)
        self._used += 1
        self._next, self._last = (index + 1 if index + 1 < len(free) else 0), index
        return self._allocation(index)

    def assign(self, address: str, owner: str) -> Allocation:
        """Give ``address`` (reserved ones too) to ``owner``; idempotent for the same owner."""
        index = self._assignable(address)
        holder, wanted = self._owners[index], owner_hash(owner)
        if holder == FREE:
            self._take(index, wanted)
        elif holder != wanted:
            raise AddressConflict(self._text(index), (owner, f"IPInstance {instance_name(self._text(index))}"))
        return self._allocation(index)

    def release(self, address: str, owner: str | None = None) -> bool:
        """Free ``address``; with ``owner``, only if that owner holds it. True if a hold ended.

        On a contested address, the owner's claim ends and the address stays with the others.
        """
        value = int(parse_ip(address, "address", self.version))
        if not self.contains(value):
            return False
        index = value - self._spec.start
        holder = self._owners[index]
        if holder == FREE:
            return False
        if owner is not None:
            wanted = owner_hash(owner)
            if holder == CONTESTED:
                return self._withdraw_claim(index, wanted)
            if holder != wanted:
                return False
        self._contested.pop(index, None)
        self._give_back(index)
        return True

    def holder_is(self, address: str, owner: str) -> bool:
        value = int(parse_ip(address, "address", self.version))
        return self.contains(value) and self._owners[value - self._spec.start] == owner_hash(owner)

    def update(self, subnet: Subnet, net_id: int | None = None) -> None:
        """Apply a changed spec: reservedIPs, private and netID may change, the range may not."""
        spec = parse_range(subnet)
        if subnet.network != self.network:
            raise InvalidValue("spec.network", subnet.network, f"is immutable (was {self.network})")
        changed = spec.immutable_change(self._spec)
        if changed is not None:
            raise InvalidValue(changed, _field_value(subnet, changed), "is immutable")
        reserved = self._reserved_indexes(spec)
        for index in self._reserved - reserved:
            if self._owners[index] == FREE:
                self._free[index] = 1
            else:
                self._used += 1
        for index in reserved - self._reserved:
            if self._owners[index] == FREE:
                self._free[index] = 0
            else:
                self._used -= 1
        self._subnet, self._spec, self._reserved = subnet, spec, reserved
        self._total = spec.capacity - len(self._forbidden) - len(reserved)
        self.net_id = subnet.net_id if subnet.net_id is not None else net_id

    @property
    def cursor(self) -> Cursor:
        return self._next, self._last

    def rewind(self, cursor: Cursor) -> None:
        self._next, self._last = cursor

    # --- used by IPAM.rebuild -----------------------------------------------------------------

    def clear(self) -> None:
        """Forget every holder (the cursor stays where it is)."""
        capacity = self._spec.capacity
        self._free = bytearray(b"\x01") * capacity
        for index in self._forbidden | self._reserved:
            self._free[index] = 0
        self._owners = array("Q", bytes(8 * capacity))
        self._contested = {}
        self._used = 0

    def forbidden_reason(self, value: int) -> str | None:
        """Why an address may never be held (gateway, excluded), if so."""
        if value == self._spec.gateway:
            return "is the gateway"
        if value in self._spec.excluded:
            return "is excluded (spec.range.excludeIPs)"
        return None

    def hold(self, value: int, owners: list[int]) -> None:
        """Record the distinct owner hashes claiming a free address (two or more: contested)."""
        index = value - self._spec.start
        self._take(index, owners[0] if len(owners) == 1 else CONTESTED)
        if len(owners) > 1:
            self._contested[index] = owners

    # --- internals -----------------------------------------------------------------------------

    def _text(self, index: int) -> str:
        return format_address(self._spec.version, self._spec.start + index)

    def _allocation(self, index: int) -> Allocation:
        return Allocation(
            network=self._subnet.network,
            subnet=self._subnet.name,
            version=self._spec.version,
            address=self._text(index),
            prefix_length=self._spec.cidr.prefixlen,
            gateway=self._gateway,
            net_id=self.net_id,
        )

    def _index(self, address: str, field: str) -> int:
        """Index of an address of this pool's start-end; the gateway and excluded ones too if asked."""
        ip = parse_ip(address, field, self.version)
        value = int(ip)
        if ip not in self._spec.cidr:
            raise InvalidValue(field, address, f"is outside subnet {self.name} ({self._spec.cidr})")
        if not self.contains(value):
            bounds = f"{self._text(0)}-{self._text(self._spec.capacity - 1)}"
            raise InvalidValue(field, address, f"is outside the range {bounds} of subnet {self.name}")
        return value - self._spec.start

    def _assignable(self, address: str) -> int:
        reason = self.forbidden_reason(int(parse_ip(address, "address", self.version)))
        if reason is not None:
            raise InvalidValue("address", address, f"{reason} of subnet {self.name}")
        return self._index(address, "address")

    def _take(self, index: int, holder: int) -> None:
        self._owners[index] = holder
        self._free[index] = 0
        if index not in self._reserved:
            self._used += 1

    def _give_back(self, index: int) -> None:
        self._owners[index] = FREE
        if index not in self._reserved:
            self._free[index] = 1
            self._used -= 1

    def _withdraw_claim(self, index: int, owner: int) -> bool:
        claimants = self._contested[index]
        if owner not in claimants:
            return False
        claimants.remove(owner)
        if len(claimants) == 1:
            self._owners[index] = claimants[0]
            del self._contested[index]
        return True


def _field_value(subnet: Subnet, field: str) -> object:
    r = subnet.range
    return {
        "spec.range.version": r.version,
        "spec.range.cidr": r.cidr,
        "spec.range.start": r.start,
        "spec.range.end": r.end,
        "spec.range.gateway": r.gateway,
        "spec.range.excludeIPs": list(r.exclude_ips),
    }[field]
