"""Property tests: random allocate/assign/release/reserve sequences over random subnets behave
exactly like a slow reference written with plain Python sets (reference §3).

The reference decides every outcome independently: which address next-fit must give (or that
none is left), whether an assign is refused or conflicts, whether a release frees. IPAM must
agree on each step, never hand out an address twice or a forbidden one, and its counts must
equal the reference's after every step.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridlay.errors import AddressConflict, InvalidValue, NoAddressAvailable
from hybridlay.ipam import IPAM
from hybridlay.model import AddressRange, IPFamily, Network, Subnet, SubnetConfig

CIDRS = {"a": "10.0.0.0/27", "b": "10.0.1.0/28", "c": "fd00::/126"}
OWNERS = [f"ns/pod-{i}" for i in range(5)]


@dataclass
class Model:
    """The reference: one subnet's rules as sets of integers."""

    spec: Subnet
    version: int
    allocatable: set[int]  # start..end minus gateway and excluded
    reserved: set[int]
    private: bool
    held: dict[int, str] = field(default_factory=dict)
    last: int | None = None

    def candidates(self) -> list[int]:
        return sorted(self.allocatable - self.reserved - set(self.held))

    def next_fit(self) -> int | None:
        free = self.candidates()
        if not free:
            return None
        after = [a for a in free if self.last is not None and a > self.last]
        return after[0] if after else free[0]

    def text(self, value: int) -> str:
        return str(ipaddress.ip_address(value) if self.version == 6 else ipaddress.IPv4Address(value))


@st.composite
def subnet_models(draw: st.DrawFn, name: str) -> Model:
    cidr = ipaddress.ip_network(CIDRS[name])
    base, size = int(cidr.network_address), cidr.num_addresses
    lowest, highest = 1, size - (2 if cidr.version == 4 else 1)
    start = draw(st.none() | st.integers(lowest, highest))
    end = draw(st.none() | st.integers(start or lowest, highest))
    # Admission refuses a gateway or reserved address that is the network or IPv4 broadcast address.
    gateway = draw(st.none() | st.integers(lowest, highest))
    excluded = draw(st.sets(st.integers(0, size - 1), max_size=5))
    reserved = draw(st.sets(st.integers(lowest, highest), max_size=5))
    private = name == "b" and draw(st.booleans())

    def text(offset: int) -> str:
        return str(ipaddress.ip_address(base + offset) if cidr.version == 6 else ipaddress.IPv4Address(base + offset))

    spec = Subnet(
        name=name,
        network="net",
        range=AddressRange(
            version=str(cidr.version),
            cidr=str(cidr),
            start=None if start is None else text(start),
            end=None if end is None else text(end),
            gateway=None if gateway is None else text(gateway),
            reserved_ips=tuple(text(o) for o in sorted(reserved)),
            exclude_ips=tuple(text(o) for o in sorted(excluded)),
        ),
        config=SubnetConfig(private=private),
    )
    first, last = base + (lowest if start is None else start), base + (highest if end is None else end)
    forbidden = {base + o for o in excluded} | ({base + gateway} if gateway is not None else set())
    allocatable = set(range(first, last + 1)) - forbidden
    return Model(spec, cidr.version, allocatable, {base + o for o in reserved} & allocatable, private)


def steps(models: dict[str, Model]) -> st.SearchStrategy[tuple[object, ...]]:
    """One step, drawn against the current state so that releases mostly hit held addresses."""
    held = sorted((name, v) for name, m in models.items() for v in m.held)
    names = st.sampled_from(sorted(models))
    choices = [
        st.tuples(st.just("allocate"), st.sampled_from(OWNERS), st.sampled_from(list(IPFamily)), st.none() | names),
        st.tuples(st.just("allocate"), st.sampled_from(OWNERS), st.just(IPFamily.IPV4), st.none()),
        st.tuples(st.just("assign"), st.sampled_from(OWNERS), names, st.integers(0, 31), st.booleans()),
        st.tuples(st.just("release"), st.none() | st.sampled_from(OWNERS), names, st.integers(0, 31)),
        st.tuples(st.just("reserve"), names, st.sets(st.integers(0, 31), max_size=5)),
    ]
    if held:
        choices.append(
            st.sampled_from(held).flatmap(
                lambda nv: st.tuples(
                    st.just("release"),
                    st.sampled_from([None, models[nv[0]].held.get(nv[1])]),
                    st.just(nv[0]),
                    st.just(nv[1] - int(ipaddress.ip_network(CIDRS[nv[0]]).network_address)),
                )
            )
        )
    return st.one_of(*choices)


class Reference:
    def __init__(self, models: dict[str, Model]) -> None:
        self.models = models
        self.last_subnet: dict[int, str] = {}

    def pick(self, version: int, named: str | None) -> Model | None:
        if named is not None:
            return self.models[named]
        names = sorted(n for n, m in self.models.items() if m.version == version)
        last = self.last_subnet.get(version)
        first = bisect_right(names, last) if last is not None else 0
        for step in range(len(names)):
            model = self.models[names[(first + step) % len(names)]]
            if not model.private and model.candidates():
                return model
        return None

    def allocate(self, owner: str, family: IPFamily, named: dict[int, str]) -> list[tuple[str, int]] | None:
        plan: list[tuple[Model, int]] = []
        for version in family.versions:
            model = self.pick(version, named.get(version))
            value = None if model is None else model.next_fit()
            if model is None or value is None:
                return None
            plan.append((model, value))
        for model, value in plan:
            model.held[value] = owner
            model.last = value
            if model.spec.name not in named.values():
                self.last_subnet[model.version] = model.spec.name
        return [(model.spec.name, value) for model, value in plan]


def check_counts(ipam: IPAM, models: dict[str, Model]) -> None:
    for name, model in models.items():
        status = ipam.subnet_status(name)
        total = len(model.allocatable - model.reserved)
        used = len(set(model.held) - model.reserved)
        assert (status.total, status.used, status.available) == (total, used, total - used)
        for value, owner in model.held.items():
            assert ipam.holder_is(model.text(value), owner)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=subnet_models("a"), b=subnet_models("b"), c=subnet_models("c"), data=st.data())
def test_ipam_agrees_with_a_set_based_reference(a: Model, b: Model, c: Model, data: st.DataObject) -> None:
    models = {"a": a, "b": b, "c": c}
    ipam = IPAM()
    ipam.set_network(Network("net"))
    for model in models.values():
        ipam.set_subnet(model.spec)
    reference = Reference(models)
    check_counts(ipam, models)
    for _ in range(data.draw(st.integers(0, 50), label="steps")):
        run_step(ipam, reference, data.draw(steps(models)))
        check_counts(ipam, models)


def run_step(ipam: IPAM, reference: Reference, step: tuple[object, ...]) -> None:
    models = reference.models
    match step:
        case ("allocate", str(owner), IPFamily() as family, named_subnet):
            named = {}
            if isinstance(named_subnet, str) and models[named_subnet].version in family.versions:
                named = {models[named_subnet].version: named_subnet}
            held_before = {(n, v) for n, m in models.items() for v in m.held}
            expected = reference.allocate(owner, family, named)
            if expected is None:
                try:
                    ipam.allocate("net", owner, family, named)
                except NoAddressAvailable:
                    return
                raise AssertionError("allocated although the reference has nothing left")
            got = ipam.allocate("net", owner, family, named)
            assert [(g.subnet, int(ipaddress.ip_address(g.address))) for g in got] == expected
            for subnet, value in expected:
                assert (subnet, value) not in held_before
                assert value in models[subnet].allocatable - models[subnet].reserved
        case ("assign", str(owner), str(name), int(offset), bool(by_name)):
            model = models[name]
            cidr = ipaddress.ip_network(model.spec.range.cidr)
            value = int(cidr.network_address) + offset % cidr.num_addresses
            address = model.text(value)
            chosen = name if by_name else None
            if value not in model.allocatable:
                try:
                    ipam.assign("net", address, owner, chosen)
                except InvalidValue as refused:
                    assert refused.field == "address" and refused.value == address
                    return
                raise AssertionError(f"assigned {address}, which is not allocatable")
            if model.held.get(value, owner) != owner:
                try:
                    ipam.assign("net", address, owner, chosen)
                except AddressConflict as conflict:
                    assert conflict.address == address
                    return
                raise AssertionError(f"assigned {address} held by {model.held[value]} to {owner}")
            assert ipam.assign("net", address, owner, chosen).address == address
            model.held[value] = owner
        case ("release", owner, str(name), int(offset)):
            model = models[name]
            cidr = ipaddress.ip_network(model.spec.range.cidr)
            value = int(cidr.network_address) + offset % cidr.num_addresses
            frees = value in model.held and owner in (None, model.held[value])
            assert ipam.release(model.text(value), owner if isinstance(owner, str) else None) == frees
            if frees:
                del model.held[value]
        case ("reserve", str(name), set() as offsets):
            model = models[name]
            cidr = ipaddress.ip_network(model.spec.range.cidr)
            usable = cidr.num_addresses - (2 if cidr.version == 4 else 1)  # not network, not broadcast
            values = {int(cidr.network_address) + 1 + o % usable for o in offsets}
            texts = tuple(model.text(v) for v in sorted(values))
            model.spec = Subnet(
                model.spec.name,
                "net",
                AddressRange(**{**model.spec.range.__dict__, "reserved_ips": texts}),
                config=model.spec.config,
            )
            ipam.set_subnet(model.spec)
            model.reserved = values & model.allocatable
        case _:
            raise AssertionError(f"unknown step {step}")
