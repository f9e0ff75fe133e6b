"""The consistency check behind ``hybridlay doctor``: every way the addresses and their records can
disagree, each finding naming what and why. Pure: the edge lists the objects and asks.

- ``duplicated``: one address claimed by two holders, two addresses of one IP version held by one
  pod in one network;
- ``invalid``: a claim IPAM cannot take as it is (a name that is not its address, an address outside
  its subnet's range, a gateway or excluded address: :meth:`hybridlay.ipam.IPAM.rebuild`'s reports);
- ``leaked``: an IPInstance nobody holds (:func:`hybridlay.claims.is_orphan`, the operator's own rule);
- ``missing``: a pod that wants addresses (scheduled, running or starting) without one of each IP
  version its request names, once it is older than the grace period allocation may take;
- ``status``: a Subnet's or Network's counts that disagree with its IPInstances;
- ``view``: an operator's in-memory claims that disagree with the API's IPInstances.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hybridlay import claims
from hybridlay.errors import AddressConflict
from hybridlay.ipam import IPAM
from hybridlay.ipam.claims import ClaimProblem
from hybridlay.model import IPInstance, Network, Statistics, Subnet
from hybridlay.pod_request import PodSettings, parse_pod_request

DUPLICATED, INVALID, LEAKED, MISSING, STATUS, VIEW = "duplicated", "invalid", "leaked", "missing", "status", "view"


@dataclass(frozen=True, order=True)
class Finding:
    kind: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: {self.detail}"


def check_addresses(
    instances: Iterable[IPInstance],
    pods: Iterable[Mapping[str, Any]],
    live_workload_uids: Collection[str],
    stateful_kinds: Collection[str] = ("StatefulSet",),
    unknown_owner_uids: Collection[str] = (),
) -> list[Finding]:
    """Leaked IPInstances, and pods holding two addresses of one version. ``unknown_owner_uids``:
    referred workloads whose kind could not be listed: whether they live is unknown, so their
    addresses are not called leaked."""
    findings = []
    pod_uids = {claims.key_of(p): (p.get("metadata") or {}).get("uid", "") for p in pods}
    by_holder: dict[tuple[str, str, str], list[str]] = {}
    for instance in instances:
        if instance.terminating:
            continue
        by_holder.setdefault((instance.owner_key, instance.network, instance.address.version), []).append(instance.name)
        ref = instance.binding.referred_object
        unknown = ref is not None and ref.uid in unknown_owner_uids
        if claims.is_orphan(instance, pod_uids, live_workload_uids, stateful_kinds, owner_unknown=unknown):
            findings.append(Finding(LEAKED, instance.name, _why_leaked(instance, pod_uids)))
    for (owner, network, version), held in by_holder.items():
        if len(held) > 1:
            listed = ", ".join(sorted(held))
            findings.append(
                Finding(DUPLICATED, owner, f"holds {len(held)} IPv{version} addresses in {network}: {listed}")
            )
    return sorted(findings)


def _why_leaked(instance: IPInstance, pod_uids: Mapping[str, str]) -> str:
    current = pod_uids.get(instance.owner_key)
    if current is None:
        retained = instance.binding.retained
        return f"bound to {instance.owner_key}, which is gone" + (" with its workload" if retained else "")
    return f"bound to an earlier pod {instance.owner_key} (UID {instance.binding.pod_uid}, now {current})"


def check_missing(
    pods: Iterable[Mapping[str, Any]],
    namespaces: Mapping[str, Mapping[str, Any]],
    instances: Iterable[IPInstance],
    settings: PodSettings,
    *,
    now: datetime.datetime,
    grace: datetime.timedelta,
) -> list[Finding]:
    """Pods older than ``grace`` that want addresses and lack one of each version they ask for."""
    versions_held: dict[str, set[int]] = {}
    for instance in instances:
        if not instance.terminating:
            versions_held.setdefault(instance.owner_key, set()).add(int(instance.address.version))
    findings = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if not claims.wants_addresses(pod) or _age(meta.get("creationTimestamp"), now) < grace:
            continue
        request, _ = parse_pod_request(pod, namespaces.get(meta.get("namespace", "")), settings)
        if request is None:
            continue  # host network, or a request the operator reports itself (an event on the pod)
        key = claims.key_of(pod)
        lacking = [v for v in request.family.versions if v not in versions_held.get(key, set())]
        if lacking:
            what = " and ".join(f"IPv{v}" for v in lacking)
            findings.append(Finding(MISSING, key, f"has no {what} address ({request.family.value} asked)"))
    return sorted(findings)


def _age(created: object, now: datetime.datetime) -> datetime.timedelta:
    if not isinstance(created, str):
        return datetime.timedelta.max
    try:
        born = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return datetime.timedelta.max
    return now - born


def check_records(
    networks: Iterable[Network], subnets: Iterable[Subnet], instances: Iterable[IPInstance]
) -> list[Finding]:
    """The claims as IPAM takes them (as the operator rebuilds its state), and the Subnet and Network
    counts against those the claims give."""
    networks, subnets = list(networks), list(subnets)
    ipam = IPAM()
    for network in networks:
        ipam.set_network(network)
    usable = []
    for subnet in subnets:
        try:
            ipam.set_subnet(subnet)
        except ValueError:
            continue  # a subnet the operator refuses has no counts to check
        usable.append(subnet)
    findings = [_claim_finding(problem) for problem in ipam.rebuild(instances)]
    for subnet in usable:
        want, have = ipam.subnet_status(subnet.name), subnet.status
        wrong = [
            f"{k} {getattr(have, k)} (IPInstances give {getattr(want, k)})"
            for k in ("total", "used", "available")
            if getattr(have, k) != getattr(want, k)
        ]
        if wrong:
            findings.append(Finding(STATUS, f"Subnet {subnet.name}", ", ".join(wrong)))
    for network in networks:
        want_status = ipam.network_status(network.name)
        for family, have_stats, want_stats in (
            ("IPv4", network.status.statistics, want_status.statistics),
            ("IPv6", network.status.ipv6_statistics, want_status.ipv6_statistics),
        ):
            if _counts(have_stats) != _counts(want_stats):
                detail = f"{family} total/used/available {_counts(have_stats)} (IPInstances give {_counts(want_stats)})"
                findings.append(Finding(STATUS, f"Network {network.name}", detail))
    return sorted(findings)


def _claim_finding(problem: AddressConflict) -> Finding:
    holders = ", ".join(problem.holders)
    if isinstance(problem, ClaimProblem):
        return Finding(INVALID, holders, f"{problem.address} {problem.reason}")
    return Finding(DUPLICATED, problem.address, f"claimed by {holders}")


def _counts(stats: Statistics | None) -> tuple[int, int, int]:
    return (stats.total, stats.used, stats.available) if stats is not None else (0, 0, 0)


def check_view(operator: str, held: Mapping[str, str], instances: Iterable[IPInstance]) -> list[Finding]:
    """An operator's claims in memory (IPInstance name → holder ``namespace/pod``) against the API's."""
    api = {i.name: i.owner_key for i in instances if not i.terminating}
    findings = [
        Finding(VIEW, operator, f"remembers {name} for {holder}, which no IPInstance records")
        for name, holder in held.items()
        if name not in api
    ]
    findings += [
        Finding(VIEW, operator, f"does not know {name} (held by {holder})")
        for name, holder in api.items()
        if name not in held
    ]
    findings += [
        Finding(VIEW, operator, f"remembers {name} for {held[name]}, the API for {holder}")
        for name, holder in api.items()
        if name in held and held[name] != holder
    ]
    return sorted(findings)
