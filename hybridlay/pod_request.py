"""A pod's network request: read from its (and its namespace's) annotations and labels, then resolved.

Reading (:func:`parse_pod_request`) needs only the pod and namespace dicts; resolving
(:func:`resolve_pod_network`) checks the request against the Networks and Subnets that exist. The
mutating webhook writes the resolved choice back onto the pod, the validating webhook refuses a pod
with any :class:`~hybridlay.validation.Violation`, and the operator allocates from the resolved choice.

Where each setting comes from (reference §2, annotation over label on one object):

- ``specified-network``, ``specified-subnet`` and ``network-type`` choose the network together: they
  are taken from the pod if it sets any of them, else from its namespace, never mixed (as
  Hybridnet does), so a pod's ``network-type: Overlay`` is not contradicted by its namespace's
  ``specified-network``.
- ``ip-family`` and ``ip-retain``: pod, else namespace, else the settings' default.
- ``ip-pool`` and ``mac-pool``: the pod's annotations only. They list one entry per ordinal of a
  stateful workload, so they belong to its pod template (and a label value cannot hold a comma).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridlay import names
from hybridlay.addresses import IPAddress, parse_ip, parse_mac
from hybridlay.errors import InvalidValue
from hybridlay.model import IPFamily, IPInstance, Network, NetworkType, Subnet
from hybridlay.validation import Violation

# Keys of the settings, as they appear in PodNetworkRequest.sources.
NETWORK = names.ANNOTATION_SPECIFIED_NETWORK
SUBNET = names.ANNOTATION_SPECIFIED_SUBNET
NETWORK_TYPE = names.ANNOTATION_NETWORK_TYPE
IP_FAMILY = names.ANNOTATION_IP_FAMILY
IP_RETAIN = names.ANNOTATION_IP_RETAIN
IP_POOL = names.ANNOTATION_IP_POOL
MAC_POOL = names.ANNOTATION_MAC_POOL
_SELECTION_KEYS = (NETWORK, SUBNET, NETWORK_TYPE)


@dataclass(frozen=True)
class PodSettings:
    default_network_type: NetworkType = NetworkType.OVERLAY
    default_ip_family: IPFamily = IPFamily.IPV4
    stateful_kinds: tuple[str, ...] = ("StatefulSet",)
    default_ip_retain: bool = True


@dataclass(frozen=True)
class StatefulRef:
    """The stateful workload controlling the pod, and the pod's ordinal in it."""

    kind: str
    name: str
    uid: str
    ordinal: int


@dataclass(frozen=True)
class PodNetworkRequest:
    network_type: NetworkType | None  # None: the specified network's type, else the default
    network: str | None
    subnets: Mapping[int, str]  # by IP version: {4: "a"} or {4: "a", 6: "b"}
    family: IPFamily
    retain: bool  # only meaningful for stateful pods
    stateful: StatefulRef | None
    ip_pool: tuple[str, ...]  # this ordinal's addresses, in family order (v4 then v6)
    mac: str | None  # this ordinal's mac-pool entry
    # Annotation key → field path the value was read from, so messages point at the right object.
    sources: Mapping[str, str] = field(default_factory=dict)
    # What the pod asks that is accepted but not done as written (admission warnings, events).
    warnings: tuple[Violation, ...] = ()

    def source(self, key: str) -> str:
        return self.sources.get(key, _annotation_field("", key))


@dataclass(frozen=True)
class ResolvedPodNetwork:
    network: str | None  # None: an underlay pod whose network is the one of the node it lands on
    type: NetworkType
    subnets: Mapping[int, str]
    family: IPFamily

    def annotations(self) -> dict[str, str]:
        """What the mutating webhook writes onto the pod, so later steps need not resolve again."""
        result = {NETWORK_TYPE: self.type.value, IP_FAMILY: self.family.value}
        if self.network:
            result[NETWORK] = self.network
        if self.subnets:
            result[SUBNET] = "/".join(self.subnets[v] for v in sorted(self.subnets))
        return result

    def node_selector(self, networks: Mapping[str, Network], has_retained_ip: bool) -> dict[str, str]:
        """Labels the mutating webhook adds to ``spec.nodeSelector`` so the pod lands where it can be served.

        Overlay (and GlobalBGP): a node attached to it. Underlay: the specified network's nodes, else any
        underlay node, and, unless the pod keeps a retained address, a node whose network still has free
        addresses of the family (the quota labels the operator keeps).
        """
        if self.type is not NetworkType.UNDERLAY:
            attachment = (
                names.LABEL_OVERLAY_ATTACHMENT if self.type is NetworkType.OVERLAY else names.LABEL_BGP_ATTACHMENT
            )
            return {attachment: "true"}
        network = networks.get(self.network) if self.network else None
        selector = dict(network.node_selector) if network else {names.LABEL_UNDERLAY_ATTACHMENT: "true"}
        if not has_retained_ip:
            selector[_QUOTA_LABEL[self.family]] = names.QUOTA_NONEMPTY
        return selector


_QUOTA_LABEL = {
    IPFamily.IPV4: names.LABEL_IPV4_QUOTA,
    IPFamily.IPV6: names.LABEL_IPV6_QUOTA,
    IPFamily.DUAL_STACK: names.LABEL_DUALSTACK_QUOTA,
}


def _annotation_field(prefix: str, key: str) -> str:
    return f"{prefix}metadata.annotations[{key}]"


@dataclass(frozen=True)
class _Setting:
    value: str
    field: str


class _Source:
    """One object's annotations and labels; the annotation wins, an empty value counts as unset.

    Hybridnet's keys (``networking.alibaba.com/<name>``) are read as aliases of ours, ours first;
    one read records a warning naming our key in ``warnings``.
    """

    def __init__(self, obj: Mapping[str, Any], prefix: str, warnings: list[Violation]) -> None:
        metadata = obj.get("metadata") or {}
        self._prefix = prefix
        self._annotations: Mapping[str, Any] = metadata.get("annotations") or {}
        self._labels: Mapping[str, Any] = metadata.get("labels") or {}
        self._warnings = warnings

    def get(self, key: str, labels: bool = True) -> _Setting | None:
        places = [("annotations", self._annotations)] + ([("labels", self._labels)] if labels else [])
        for where, values in places:
            for name in (key, names.hybridnet_alias(key)):
                value = values.get(name)
                if not value:
                    continue
                field_path = f"{self._prefix}metadata.{where}[{name}]"
                if name != key:
                    warning = Violation(field_path, None, f"is Hybridnet's key: hybridlay reads it, but use {key}")
                    if warning not in self._warnings:
                        self._warnings.append(warning)
                return _Setting(str(value), field_path)
        return None

    def sets_any(self, keys: Sequence[str]) -> bool:
        return any(self.get(k) for k in keys)


def _first(sources: Sequence[_Source], key: str) -> _Setting | None:
    return next((s for s in (source.get(key) for source in sources) if s is not None), None)


# Go's strconv.ParseBool, as Hybridnet reads ip-retain; any case of true and false too.
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
BOOLEANS = (*_TRUE, *_FALSE)


def parse_bool(text: str) -> bool | None:
    if text in _TRUE or text.lower() == "true":
        return True
    if text in _FALSE or text.lower() == "false":
        return False
    return None


def _enum_value(setting: _Setting, options: Sequence[str], out: list[Violation]) -> str | None:
    """Case-insensitive match against ``options``; returns the canonical spelling."""
    for option in options:
        if setting.value.lower() == option.lower():
            return option
    out.append(Violation(setting.field, setting.value, f"must be one of {', '.join(options)}"))
    return None


def parse_pod_request(
    pod: Mapping[str, Any], namespace: Mapping[str, Any] | None, settings: PodSettings
) -> tuple[PodNetworkRequest | None, list[Violation]]:
    """Read the pod's request; ``(None, [])`` for a host-network pod, ``(None, violations)`` if bad."""
    if (pod.get("spec") or {}).get("hostNetwork") is True:
        return None, []
    warnings: list[Violation] = []
    own = _Source(pod, "", warnings)
    levels = [own] if namespace is None else [own, _Source(namespace, "namespace.", warnings)]
    out: list[Violation] = []
    sources: dict[str, str] = {}

    def pick(key: str, among: Sequence[_Source]) -> _Setting | None:
        setting = _first(among, key)
        if setting is not None:
            sources[key] = setting.field
        return setting

    selecting = next(([level] for level in levels if level.sets_any(_SELECTION_KEYS)), [])
    network = pick(NETWORK, selecting)
    network_type = None
    type_setting = pick(NETWORK_TYPE, selecting)
    if type_setting is not None:
        canonical = _enum_value(type_setting, [t.value for t in NetworkType], out)
        network_type = NetworkType(canonical) if canonical else None

    family = settings.default_ip_family
    family_setting = pick(IP_FAMILY, levels)
    if family_setting is not None:
        parsed = IPFamily.from_text(family_setting.value)
        if parsed is None:
            out.append(
                Violation(
                    family_setting.field, family_setting.value, f"must be one of {', '.join(IPFamily.spellings())}"
                )
            )
        family = parsed or family

    retain = settings.default_ip_retain
    retain_setting = pick(IP_RETAIN, levels)
    if retain_setting is not None:
        parsed_retain = parse_bool(retain_setting.value)
        if parsed_retain is None:
            out.append(
                Violation(retain_setting.field, retain_setting.value, f"must be a boolean ({', '.join(BOOLEANS)})")
            )
        retain = retain if parsed_retain is None else parsed_retain

    subnet_setting = pick(SUBNET, selecting)
    subnets = _parse_subnets(subnet_setting, family, family_setting, out) if subnet_setting else {}
    stateful = _stateful_ref(pod, settings, out)

    pools: dict[str, list[tuple[str, ...]]] = {}
    for key, parse_entry in ((IP_POOL, _ip_entry_parser(family)), (MAC_POOL, _parse_mac_entry)):
        setting = own.get(key, labels=False)
        if setting is None:
            continue
        sources[key] = setting.field
        if stateful is None:
            # Hybridnet ignores it: a Deployment's template may carry it, and its pods must start.
            kinds = ", ".join(settings.stateful_kinds)
            reason = f"is ignored: only pods of a stateful workload ({kinds}) take their ordinal's entry"
            warnings.append(Violation(setting.field, None, reason))
            continue
        pools[key] = _parse_pool(setting, parse_entry, out)
    if IP_POOL in pools and network is None and not subnets:
        out.append(
            Violation(sources[IP_POOL], None, f"needs {NETWORK} or {SUBNET}: its addresses must be in a known network")
        )
    chosen = {key: _ordinal_entry(sources[key], entries, stateful, out) for key, entries in pools.items() if stateful}
    if out:
        return None, out
    return (
        PodNetworkRequest(
            network_type=network_type,
            network=network.value if network else None,
            subnets=subnets,
            family=family,
            retain=retain,
            stateful=stateful,
            ip_pool=chosen.get(IP_POOL, ()),
            mac=next(iter(chosen[MAC_POOL]), None) if MAC_POOL in chosen else None,
            sources=sources,
            warnings=tuple(warnings),
        ),
        [],
    )


def _parse_subnets(
    setting: _Setting, family: IPFamily, family_setting: _Setting | None, out: list[Violation]
) -> dict[int, str]:
    """``sub`` (for the one version of the family) or ``v4sub/v6sub`` (DualStack)."""
    parts = setting.value.split("/")
    if any(not p.strip() for p in parts) or len(parts) > 2:
        out.append(Violation(setting.field, setting.value, "must be a subnet name, or v4subnet/v6subnet"))
        return {}
    family_text = f"ip-family {family.value}" + (f" (from {family_setting.field})" if family_setting else "")
    if len(parts) != len(family.versions):
        wanted = "v4subnet/v6subnet" if family is IPFamily.DUAL_STACK else "a single subnet name"
        out.append(Violation(setting.field, setting.value, f"must be {wanted} for {family_text}"))
        return {}
    return {version: part.strip() for version, part in zip(family.versions, parts, strict=True)}


def _stateful_ref(pod: Mapping[str, Any], settings: PodSettings, out: list[Violation]) -> StatefulRef | None:
    """The controlling owner if its kind is stateful; its pods are named ``<owner>-<ordinal>``."""
    metadata = pod.get("metadata") or {}
    owners = metadata.get("ownerReferences") or []
    controller = next((o for o in owners if isinstance(o, Mapping) and o.get("controller") is True), None)
    if controller is None or controller.get("kind") not in settings.stateful_kinds:
        return None
    owner, pod_name = str(controller.get("name", "")), str(metadata.get("name", ""))
    prefix, _, suffix = pod_name.rpartition("-")
    if prefix != owner or not suffix.isdigit():
        out.append(
            Violation("metadata.name", pod_name or None, f"is not <name>-<ordinal> of its {controller['kind']} {owner}")
        )
        return None
    uid = str(controller.get("uid", ""))
    return StatefulRef(kind=str(controller["kind"]), name=owner, uid=uid, ordinal=int(suffix))


_EntryParser = Callable[[str, str], tuple[str, ...]]


def _ip_entry_parser(family: IPFamily) -> _EntryParser:
    """An ip-pool entry holds one address per version of the family: ``ip`` or ``v4/v6``."""

    def parse(entry: str, field_path: str) -> tuple[str, ...]:
        parts = entry.split("/")
        if len(parts) != len(family.versions):
            one = f"a single IPv{family.versions[0]} address"
            shape = "v4address/v6address" if family is IPFamily.DUAL_STACK else one
            raise InvalidValue(field_path, entry, f"must be {shape} for ip-family {family.value}")
        pairs = zip(parts, family.versions, strict=True)
        return tuple(str(parse_ip(part.strip(), field_path, version)) for part, version in pairs)

    return parse


def _parse_mac_entry(entry: str, field_path: str) -> tuple[str, ...]:
    mac = parse_mac(entry.strip(), field_path)
    if int(mac[:2], 16) & 1:
        raise InvalidValue(field_path, entry, "is a multicast MAC; an interface needs a unicast one")
    return (mac,)


def _parse_pool(setting: _Setting, parse_entry: _EntryParser, out: list[Violation]) -> list[tuple[str, ...]]:
    """Split per comma entry first, then each entry on ``/`` (Hybridnet split the whole value on ``/``)."""
    entries: list[tuple[str, ...]] = []
    first_seen: dict[str, int] = {}
    for i, entry in enumerate(setting.value.split(",")):
        try:
            parsed = parse_entry(entry, setting.field)
        except InvalidValue as error:
            out.append(Violation(error.field, error.value, f"{error.reason} (entry {i})"))
            entries.append(())
            continue
        for item in parsed:
            if item in first_seen:
                out.append(Violation(setting.field, item, f"is listed twice (entries {first_seen[item]} and {i})"))
            first_seen.setdefault(item, i)
        entries.append(parsed)
    return entries


def _ordinal_entry(
    field_path: str, entries: list[tuple[str, ...]], stateful: StatefulRef, out: list[Violation]
) -> tuple[str, ...]:
    if stateful.ordinal < len(entries):
        return entries[stateful.ordinal]
    out.append(
        Violation(
            field_path,
            None,
            f"has {len(entries)} entries, none for ordinal {stateful.ordinal} of {stateful.kind} {stateful.name}",
        )
    )
    return ()


def resolve_pod_network(
    request: PodNetworkRequest, networks: Mapping[str, Network], subnets: Mapping[str, Subnet], settings: PodSettings
) -> tuple[ResolvedPodNetwork | None, list[Violation]]:
    """Check the request against existing objects and fill in the network and its type."""
    out: list[Violation] = []
    found = _specified_subnets(request, subnets, out)
    subnet_networks = sorted({s.network for s in found.values()})
    if len(subnet_networks) > 1:
        out.append(
            Violation(
                request.source(SUBNET),
                "/".join(request.subnets[v] for v in sorted(request.subnets)),
                f"names subnets of different networks ({', '.join(subnet_networks)})",
            )
        )
    network_name = request.network or (subnet_networks[0] if len(subnet_networks) == 1 else None)
    network_type = request.network_type or settings.default_network_type
    if request.network is not None:
        network = networks.get(request.network)
        if network is None:
            out.append(Violation(request.source(NETWORK), request.network, "does not exist"))
        else:
            network_type = _agreeing_type(request, network, out)
        for version, subnet in sorted(found.items()):
            if subnet.network != request.network:
                out.append(
                    Violation(
                        request.source(SUBNET),
                        request.subnets[version],
                        f"belongs to network {subnet.network}, not to the specified network {request.network}",
                    )
                )
    elif network_name is not None and network_name in networks:
        network_type = _agreeing_type(request, networks[network_name], out)
    elif network_name is None:
        network_name = _network_of_type(request, network_type, networks, out)
    # A missing network is reported above; the pool cannot be checked against it.
    if network_name is not None and network_name in networks:
        out += _pool_in_network(request, network_name, found, subnets)
    if out:
        return None, out
    return ResolvedPodNetwork(network_name, network_type, dict(request.subnets), request.family), []


def _specified_subnets(
    request: PodNetworkRequest, subnets: Mapping[str, Subnet], out: list[Violation]
) -> dict[int, Subnet]:
    found = {}
    for version, name in sorted(request.subnets.items()):
        subnet = subnets.get(name)
        if subnet is None:
            out.append(Violation(request.source(SUBNET), name, "does not exist"))
        elif subnet.range.version != str(version):
            out.append(
                Violation(
                    request.source(SUBNET),
                    name,
                    f"is an IPv{subnet.range.version} subnet where an IPv{version} one is needed",
                )
            )
        else:
            found[version] = subnet
    return found


def _agreeing_type(request: PodNetworkRequest, network: Network, out: list[Violation]) -> NetworkType:
    """The network's own type; a network-type setting must agree with it."""
    if request.network_type is not None and request.network_type is not network.type:
        out.append(
            Violation(
                request.source(NETWORK_TYPE),
                request.network_type.value,
                f"disagrees with network {network.name}, which is {network.type.value}",
            )
        )
    return network.type


def _network_of_type(
    request: PodNetworkRequest,
    network_type: NetworkType,
    networks: Mapping[str, Network],
    out: list[Violation],
) -> str | None:
    """Overlay and GlobalBGP have one network each; an underlay pod gets its node's (None here)."""
    candidates = sorted(n.name for n in networks.values() if n.type is network_type)
    if not candidates:
        how = "requested" if request.network_type else "the default (settings)"
        out.append(Violation(request.source(NETWORK_TYPE), network_type.value, f"is {how}, but no such network exists"))
        return None
    return None if network_type is NetworkType.UNDERLAY else candidates[0]


def _pool_in_network(
    request: PodNetworkRequest, network: str, found: Mapping[int, Subnet], subnets: Mapping[str, Subnet]
) -> list[Violation]:
    """This ordinal's pool addresses must lie in the specified subnet, else in a subnet of the network,
    and be addresses that subnet may hand out (reserved ones may: the pool asks for them by name)."""
    violations = []
    for text in request.ip_pool:
        address = ipaddress.ip_address(text)
        if address.version in found:
            candidates: Sequence[Subnet] = [found[address.version]]
            where = f"the specified subnet {candidates[0].name} ({candidates[0].range.cidr})"
        else:
            candidates = sorted((s for s in subnets.values() if s.network == network), key=lambda s: s.name)
            where = f"any subnet of network {network}"
        home = next((s for s in candidates if _contains(s, address)), None)
        if home is None:
            violations.append(Violation(request.source(IP_POOL), text, f"is outside {where}"))
        elif reason := _not_assignable(home, address):
            violations.append(Violation(request.source(IP_POOL), text, reason))
    return violations


def _contains(subnet: Subnet, address: IPAddress) -> bool:
    try:
        return address in ipaddress.ip_network(subnet.range.cidr)
    except ValueError:
        return False


def _not_assignable(subnet: Subnet, address: IPAddress) -> str | None:
    """Why the subnet can never give this address to a pod, if so."""
    if subnet.range.gateway and address in _addresses([subnet.range.gateway]):
        return f"is the gateway of subnet {subnet.name}"
    if address in _addresses(subnet.range.exclude_ips):
        return f"is excluded from subnet {subnet.name} (spec.range.excludeIPs)"
    return None


def _addresses(texts: Iterable[str]) -> set[IPAddress]:
    """Parse what parses: the subnet's own admission has reported the rest."""
    result: set[IPAddress] = set()
    for text in texts:
        try:
            result.add(ipaddress.ip_address(text))
        except ValueError:
            continue
    return result


def _retained_elsewhere(
    request: PodNetworkRequest, resolved: ResolvedPodNetwork, retained: Iterable[IPInstance]
) -> list[Violation]:
    """A kept address outside the network or subnet the pod now asks for: the pod would get it
    back where it no longer belongs (Hybridnet refuses such a pod too)."""
    violations = []
    for instance in retained:
        address = instance.address.ip.partition("/")[0]
        if resolved.network is not None and instance.network != resolved.network:
            violations.append(
                Violation(
                    request.source(NETWORK),
                    resolved.network,
                    f"differs from network {instance.network} of the address {address} this pod keeps"
                    f" ({instance.name}); delete that IPInstance to move the pod",
                )
            )
        elif (wanted := resolved.subnets.get(int(instance.address.version))) and wanted != instance.subnet:
            violations.append(
                Violation(
                    request.source(SUBNET),
                    wanted,
                    f"differs from subnet {instance.subnet} of the address {address} this pod keeps"
                    f" ({instance.name}); delete that IPInstance to move the pod",
                )
            )
    return violations


def validate_pod_create(  # noqa: PLR0917 - the signature the webhooks were written against
    pod: Mapping[str, Any],
    namespace: Mapping[str, Any] | None,
    networks: Mapping[str, Network],
    subnets: Mapping[str, Subnet],
    settings: PodSettings,
    has_free: Callable[[str, IPFamily], bool] | None = None,
    retained: Iterable[IPInstance] = (),
) -> list[Violation]:
    """Every reason to refuse the pod; ``has_free(network, family)`` checks overlay capacity;
    ``retained`` are the addresses its stateful ordinal keeps."""
    request, violations = parse_pod_request(pod, namespace, settings)
    if request is None:
        return violations
    resolved, violations = resolve_pod_network(request, networks, subnets, settings)
    if resolved is None:
        return violations
    if request.stateful is not None and request.retain and (moved := _retained_elsewhere(request, resolved, retained)):
        return moved
    if (
        has_free is not None
        and resolved.type is NetworkType.OVERLAY
        and resolved.network is not None
        and not has_free(resolved.network, resolved.family)
    ):
        return [
            Violation(
                request.source(NETWORK_TYPE),
                resolved.type.value,
                f"network {resolved.network} has no free {resolved.family.value} address",
            )
        ]
    return []
