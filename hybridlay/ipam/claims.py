"""What IPInstances claim, read for rebuilding IPAM state, and the problems found in them.

Resource dicts take a fast path that reads only the five fields IPAM needs: parsing 65,536 of
them through :func:`hybridlay.model.ipinstance_from_resource` would take longer than the one
second an operator restart may spend here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from hybridlay.addresses import instance_name
from hybridlay.errors import AddressConflict
from hybridlay.model import IPInstance


class ClaimProblem(AddressConflict):
    """An IPInstance whose claim IPAM cannot take as it is; ``reason`` says why.

    Cases: its name is not its address (it then blocks both addresses), its subnet is unknown
    or does not hold the address, the address is a gateway, excluded, outside every subnet's
    start-end, or not an address at all. A subclass of :class:`AddressConflict` so that
    :meth:`IPAM.rebuild <hybridlay.ipam.IPAM.rebuild>` returns one kind of report.
    """

    def __init__(self, address: str, holders: tuple[str, ...], reason: str) -> None:
        super().__init__(address, holders)
        self.reason = reason
        self.args = (f"address {address} of IPInstance {', '.join(holders)}: {reason}",)


class Claim(NamedTuple):  # a tuple: built 65,536 times in a restart, a dataclass is slower
    """One live IPInstance: its name, subnet, address (prefix length dropped) and owner key."""

    name: str
    subnet: str
    address: str
    owner: str


def _mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # the common case, without the slower abstract-class check
        return value
    return value if isinstance(value, Mapping) else {}


def _claim_from_dict(obj: Mapping[str, Any]) -> Claim | ClaimProblem | None:
    metadata = _mapping(obj.get("metadata"))
    if metadata.get("deletionTimestamp") is not None:
        return None
    spec = _mapping(obj.get("spec"))
    binding = _mapping(spec.get("binding"))
    name, subnet = metadata.get("name"), spec.get("subnet")
    ip = _mapping(spec.get("address")).get("ip")
    namespace, pod = binding.get("podNamespace") or "", binding.get("podName") or ""
    if not (
        isinstance(name, str)
        and isinstance(subnet, str)
        and isinstance(ip, str)
        and isinstance(namespace, str)
        and isinstance(pod, str)
    ):
        return ClaimProblem(str(ip), (str(name),), "metadata.name, spec.subnet, spec.address.ip or binding not strings")
    return Claim(name, subnet, ip.partition("/")[0], f"{namespace}/{pod}")


def live_claims(
    instances: Iterable[IPInstance | Mapping[str, Any]], problems: list[AddressConflict]
) -> Iterator[Claim]:
    """The claims of the instances not being deleted (Hybridnet releases a terminating IPInstance's
    address as it removes the finalizer, so a restart must not hold it again); malformed ones go to
    ``problems``."""
    for instance in instances:
        if isinstance(instance, IPInstance):
            if not instance.terminating:
                yield Claim(instance.name, instance.subnet, instance.address.ip.partition("/")[0], instance.owner_key)
            continue
        claim = _claim_from_dict(instance)
        if isinstance(claim, ClaimProblem):
            problems.append(claim)
        elif claim is not None:
            yield claim


_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(r"\.".join([_OCTET] * 4))


def parse_claim_address(text: str) -> tuple[int, int, str] | None:
    """(version, integer, IPInstance name) of an address; IPv4 by hand, ``ipaddress`` is slower."""
    match = _IPV4.fullmatch(text)
    if match is not None:
        a, b, c, d = map(int, match.groups())
        return 4, a << 24 | b << 16 | c << 8 | d, text.replace(".", "-")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip.version, int(ip), instance_name(ip)
