"""All networks and subnets of a cluster: subnet rotation, dual stack, rebuild from IPInstances."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from typing import Any

from hybridlay.addresses import address_from_instance_name, parse_ip
from hybridlay.errors import AddressConflict, InvalidValue, NoAddressAvailable
from hybridlay.ipam.claims import ClaimProblem, live_claims, parse_claim_address
from hybridlay.ipam.pool import Allocation, SubnetPool, owner_hash
from hybridlay.ipam.spec import format_address
from hybridlay.model import IPFamily, IPInstance, Network, NetworkStatus, Statistics, Subnet, SubnetStatus


class IPAM:
    """Every pool of the cluster, found by subnet name or by address.

    Start-end ranges of pools never overlap (``set_subnet`` refuses that), so an address belongs
    to at most one pool and can never be handed out twice.
    """

    def __init__(self) -> None:
        self._networks: dict[str, Network] = {}
        self._pools: dict[str, SubnetPool] = {}
        # network → version → subnet names, sorted: the rotation order
        self._rotation: dict[str, dict[int, list[str]]] = {}
        # (network, version) → last subnet allocated from, the next rotation starts after it
        self._last_subnet: dict[tuple[str, int], str] = {}
        # version → pools sorted by start, and their starts, to find an address' pool
        self._by_start: dict[int, list[SubnetPool]] = {4: [], 6: []}
        self._starts: dict[int, list[int]] = {4: [], 6: []}

    # --- networks and subnets ------------------------------------------------------------------

    def set_network(self, network: Network) -> None:
        """Add or update a network; its status seeds the subnet rotation the first time only."""
        self._networks[network.name] = network
        seeds = {4: network.status.last_allocated_subnet, 6: network.status.last_allocated_ipv6_subnet}
        for version, seed in seeds.items():
            if seed:
                self._last_subnet.setdefault((network.name, version), seed)
        for pool in self._pools_of(network.name):
            pool.net_id = self._net_id(pool.subnet)

    def remove_network(self, name: str) -> None:
        """Forget the network record; its subnets stay until removed (admission keeps that order)."""
        self._networks.pop(name, None)
        for pool in self._pools_of(name):
            pool.net_id = self._net_id(pool.subnet)

    def set_subnet(self, subnet: Subnet) -> None:
        """Add a subnet, or apply a spec change to it keeping its allocations."""
        existing = self._pools.get(subnet.name)
        if existing is not None:
            existing.update(subnet, self._net_id(subnet))
            return
        pool = SubnetPool(subnet, self._net_id(subnet))
        self._refuse_overlap(pool)
        self._pools[subnet.name] = pool
        self._reindex(pool.network, pool.version)

    def remove_subnet(self, name: str) -> None:
        pool = self._pools.pop(name, None)
        if pool is not None:
            self._reindex(pool.network, pool.version)

    def _net_id(self, subnet: Subnet) -> int | None:
        network = self._networks.get(subnet.network)
        return subnet.net_id if subnet.net_id is not None or network is None else network.net_id

    def _refuse_overlap(self, pool: SubnetPool) -> None:
        spec = pool.spec
        for other in self._by_start[pool.version]:
            if other.spec.start <= spec.end and spec.start <= other.spec.end:
                mine, theirs = _bounds(pool), _bounds(other)
                reason = f"overlaps the range {theirs} of subnet {other.name}: an address must have one pool"
                raise InvalidValue("spec.range", mine, reason)

    def _reindex(self, network: str, version: int) -> None:
        names = sorted(p.name for p in self._pools.values() if p.network == network and p.version == version)
        self._rotation.setdefault(network, {})[version] = names
        pools = sorted((p for p in self._pools.values() if p.version == version), key=lambda p: p.spec.start)
        self._by_start[version] = pools
        self._starts[version] = [p.spec.start for p in pools]

    def _pools_of(self, network: str, version: int | None = None) -> list[SubnetPool]:
        versions = (4, 6) if version is None else (version,)
        rotation = self._rotation.get(network, {})
        return [self._pools[name] for v in versions for name in rotation.get(v, [])]

    def _pool(self, name: str, field: str = "subnet") -> SubnetPool:
        pool = self._pools.get(name)
        if pool is None:
            raise InvalidValue(field, name, "is not a known subnet")
        return pool

    def _pool_at(self, version: int, value: int) -> SubnetPool | None:
        """The pool whose start-end holds the address, if any."""
        position = bisect_right(self._starts[version], value) - 1
        if position < 0:
            return None
        pool = self._by_start[version][position]
        return pool if pool.contains(value) else None

    # --- allocation ----------------------------------------------------------------------------

    def allocate(
        self,
        network: str,
        owner: str,
        family: IPFamily = IPFamily.IPV4,
        subnets: Mapping[int, str] | None = None,
    ) -> list[Allocation]:
        """One address per version of ``family``: all of them or none (dual stack rolls back).

        ``subnets`` names the subnet per version ({4: "a", 6: "b"}); unnamed versions rotate over
        the network's subnets that are not private, starting after the last one used.
        """
        versions = family.versions
        named = {v: self._named_pool(network, v, (subnets or {}).get(v)) for v in versions}
        if network not in self._networks and network not in self._rotation:
            raise InvalidValue("network", network, "is not a known network")
        if len(versions) == 1:
            pool = named[versions[0]]
            return [pool.allocate(owner) if pool is not None else self._rotate(network, versions[0], owner)]
        saved = [(pool, pool.cursor) for pool in self._pools_of(network)]
        saved_last = dict(self._last_subnet)
        done: list[Allocation] = []
        try:
            for version, pool in named.items():
                done.append(pool.allocate(owner) if pool is not None else self._rotate(network, version, owner))
        except NoAddressAvailable:
            for allocation in done:
                self._pools[allocation.subnet].release(allocation.address, owner)
            for pool, cursor in saved:
                pool.rewind(cursor)
            self._last_subnet = saved_last
            raise
        return done

    def _named_pool(self, network: str, version: int, name: str | None) -> SubnetPool | None:
        if name is None:
            return None
        field = f"subnets[{version}]"
        pool = self._pool(name, field)
        if pool.network != network:
            raise InvalidValue(field, name, f"belongs to network {pool.network}, not {network}")
        if pool.version != version:
            raise InvalidValue(field, name, f"is an IPv{pool.version} subnet, not IPv{version}")
        return pool

    def _rotate(self, network: str, version: int, owner: str) -> Allocation:
        names = self._rotation.get(network, {}).get(version, [])
        last = self._last_subnet.get((network, version))
        first = bisect_right(names, last) if last is not None else 0
        for step in range(len(names)):
            pool = self._pools[names[(first + step) % len(names)]]
            if pool.private or pool.available == 0:
                continue
            self._last_subnet[(network, version)] = pool.name
            return pool.allocate(owner)
        raise NoAddressAvailable(f"network {network} (IPv{version})")

    def assign(self, network: str, address: str, owner: str, subnet: str | None = None) -> Allocation:
        """Give a chosen address (reserved ones too) to ``owner``; idempotent for the same owner."""
        if subnet is not None:
            pool = self._pool(subnet)
            if pool.network != network:
                raise InvalidValue("subnet", subnet, f"belongs to network {pool.network}, not {network}")
            return pool.assign(address, owner)
        ip = parse_ip(address, "address")
        pool_or_none = self._pool_at(ip.version, int(ip))
        if pool_or_none is None or pool_or_none.network != network:
            # Not in any start-end of the network: let a subnet whose CIDR holds it say why.
            holder = next((p for p in self._pools_of(network, ip.version) if ip in p.spec.cidr), None)
            if holder is None:
                raise InvalidValue("address", address, f"is in no subnet of network {network}")
            return holder.assign(address, owner)
        return pool_or_none.assign(address, owner)

    def release(self, address: str, owner: str | None = None) -> bool:
        """Free an address (only if ``owner`` holds it, when given); False if it was not held."""
        ip = parse_ip(address, "address")
        pool = self._pool_at(ip.version, int(ip))
        return pool is not None and pool.release(address, owner)

    def holder_is(self, address: str, owner: str) -> bool:
        ip = parse_ip(address, "address")
        pool = self._pool_at(ip.version, int(ip))
        return pool is not None and pool.holder_is(address, owner)

    def has_free(self, network: str, family: IPFamily = IPFamily.IPV4) -> bool:
        """Whether an allocation without named subnets would succeed (private subnets left out)."""
        return all(
            any(not p.private and p.available > 0 for p in self._pools_of(network, version))
            for version in family.versions
        )

    # --- status ----------------------------------------------------------------------------------

    def subnet_status(self, name: str) -> SubnetStatus:
        return self._pool(name).status()

    def network_status(self, name: str) -> NetworkStatus:
        """Counts per family (every subnet, private ones too, as Hybridnet sums them); dual stack
        reports only ``available``: min(IPv4, IPv6)."""
        v4, v6 = _sum(self._pools_of(name, 4)), _sum(self._pools_of(name, 6))
        known = self._networks.get(name)
        return NetworkStatus(
            last_allocated_subnet=self._last_subnet.get((name, 4)),
            last_allocated_ipv6_subnet=self._last_subnet.get((name, 6)),
            subnet_list=tuple(sorted(p.name for p in self._pools_of(name))),
            node_list=known.status.node_list if known is not None else (),
            statistics=v4,
            ipv6_statistics=v6,
            dual_stack_statistics=Statistics(available=min(v4.available, v6.available)),
        )

    def pool(self, name: str) -> SubnetPool:
        """The pool of a subnet (InvalidValue if unknown)."""
        return self._pool(name)

    # --- rebuild ---------------------------------------------------------------------------------

    def rebuild(self, instances: Iterable[IPInstance | Mapping[str, Any]]) -> list[AddressConflict]:
        """Replace every allocation by what the IPInstances claim; report what does not add up.

        Nothing is silently dropped or picked: an address claimed by several owners stays in use,
        contested (see :class:`SubnetPool`) and is reported as :class:`AddressConflict`; every
        other problem (wrong name, unknown subnet, forbidden or untracked address) is a
        :class:`ClaimProblem`. Terminating IPInstances claim nothing.
        """
        problems: list[AddressConflict] = []
        holds = self._collect(instances, problems)
        for cleared in self._pools.values():
            cleared.clear()
        near: SubnetPool | None = None  # claims come mostly in address order: the last pool fits
        for key, claims in holds.items():
            version, value = (4, key) if key < _V6 else (6, key ^ _V6)
            if near is None or near.version != version or not near.contains(value):
                near = self._pool_at(version, value)
            pool = self._holding_pool(near, version, value, claims, problems)
            if pool is not None:
                owners = [claims[0][1]] if len(claims) == 1 else list(dict.fromkeys(c[1] for c in claims))
                if len(owners) > 1:
                    text = format_address(version, value)
                    problems.append(AddressConflict(text, tuple(dict.fromkeys(name for name, _, _ in claims))))
                pool.hold(value, owners)
        return problems

    def _collect(
        self, instances: Iterable[IPInstance | Mapping[str, Any]], problems: list[AddressConflict]
    ) -> dict[int, list[_Claim]]:
        """Every live claim by address key (IPv6 keys carry the bit :data:`_V6`)."""
        holds: dict[int, list[_Claim]] = {}
        for claim in live_claims(instances, problems):
            parsed = parse_claim_address(claim.address)
            if parsed is None:
                problems.append(ClaimProblem(claim.address, (claim.name,), "spec.address.ip is not an IP address"))
                continue
            version, value, expected = parsed
            owner = owner_hash(claim.owner)
            key = value if version == 4 else value | _V6
            holds.setdefault(key, []).append((claim.name, owner, claim.subnet))
            if claim.name != expected:
                text = format_address(version, value)
                reason = f"the name does not match the address (expected {expected})"
                problems.append(ClaimProblem(text, (claim.name,), reason))
                # The name blocks the address it spells too: no second IPInstance can take that name.
                try:
                    named = address_from_instance_name(claim.name)
                except InvalidValue:
                    continue
                key = int(named) if named.version == 4 else int(named) | _V6
                holds.setdefault(key, []).append((claim.name, owner, None))
        return holds

    def _holding_pool(
        self, pool: SubnetPool | None, version: int, value: int, claims: list[_Claim], problems: list[AddressConflict]
    ) -> SubnetPool | None:
        """Report what is wrong with the claims on one address; the pool to hold it in, if any."""
        if pool is None:
            names = tuple(name for name, _, _ in claims)
            problems.append(ClaimProblem(format_address(version, value), names, "is in no known subnet's start-end"))
            return None
        reason = pool.forbidden_reason(value)
        if reason is not None:
            names = tuple(name for name, _, _ in claims)
            problems.append(ClaimProblem(format_address(version, value), names, f"{reason} of subnet {pool.name}"))
            return None
        for name, _, subnet in claims:
            if subnet is not None and subnet != pool.name:
                why = "is not a known subnet" if subnet not in self._pools else "does not hold it"
                reason = f"spec.subnet {subnet} {why} (subnet {pool.name} does)"
                problems.append(ClaimProblem(format_address(version, value), (name,), reason))
        return pool


# A claim on one address: IPInstance name, owner hash, the subnet its spec names (None when the
# claim comes from its name only).
_Claim = tuple[str, int, str | None]
# Marks IPv6 address keys so that ::1 and 0.0.0.1 differ.
_V6 = 1 << 128


def _sum(pools: list[SubnetPool]) -> Statistics:
    total = sum(p.total for p in pools)
    used = sum(p.used for p in pools)
    return Statistics(total=total, used=used, available=total - used)


def _bounds(pool: SubnetPool) -> str:
    spec = pool.spec
    return f"{spec.text(spec.start)}-{spec.text(spec.end)}"
