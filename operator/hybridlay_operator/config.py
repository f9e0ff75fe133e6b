"""The operator's settings, read once from environment variables (a Deployment's ``env``)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hybridlay.errors import InvalidValue
from hybridlay.model import IPFamily, NetworkType
from hybridlay.pod_request import PodSettings

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidValue(name, raw, "must be true or false")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidValue(name, raw, "must be an integer") from None


def _enum_ci(env: Mapping[str, str], name: str, kind: type[NetworkType] | type[IPFamily], default: str) -> str:
    """Case-insensitive enum value (``overlay`` → ``Overlay``), as the annotations accept it."""
    raw = env.get(name) or default
    for member in kind:
        if member.value.lower() == raw.lower():
            return member.value
    allowed = ", ".join(m.value for m in kind)
    raise InvalidValue(name, raw, f"must be one of {allowed}")


STATEFUL_WORKLOAD_KINDS = "STATEFUL_WORKLOAD_KINDS"


def api_group(api_version: str) -> str:
    """``apps.kruise.io/v1beta1`` → ``apps.kruise.io``; ``v1`` → ``""`` (the core group)."""
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class WorkloadKind:
    """A stateful workload kind (one entry of STATEFUL_WORKLOAD_KINDS): the pods it controls keep
    their addresses, and the workload's deletion frees them."""

    kind: str  # as ownerReferences name it: StatefulSet, CloneSet
    group: str  # API group: apps, apps.kruise.io
    version: str  # the version to watch and list: v1, v1beta1
    plural: str  # the resource: statefulsets, clonesets

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def path(self, namespace: str | None = None) -> str:
        """The collection's path: every namespace, or one."""
        return f"/apis/{self.api_version}" + (f"/namespaces/{namespace}" if namespace else "") + f"/{self.plural}"

    def matches(self, reference: Mapping[str, Any]) -> bool:
        """Whether an ownerReference is to a workload of this kind: same kind and API group (any version)."""
        return reference.get("kind") == self.kind and api_group(str(reference.get("apiVersion") or "")) == self.group

    def __str__(self) -> str:
        return f"{self.kind}.{self.group}/{self.version}/{self.plural}"


APPS_STATEFULSET = WorkloadKind("StatefulSet", "apps", "v1", "statefulsets")
STATEFUL_SYNTAX = "StatefulSet (that of apps/v1) or Kind.group/version/plural"
STATEFUL_EXAMPLE = "StatefulSet.apps.kruise.io/v1beta1/statefulsets"
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"  # a DNS label, as Kubernetes wants group parts and plurals
_WORKLOAD = re.compile(
    rf"(?P<kind>[A-Z][A-Za-z0-9]*)\.(?P<group>{_LABEL}(?:\.{_LABEL})*)/(?P<version>{_LABEL})/(?P<plural>{_LABEL})"
)
_BARE_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def parse_stateful_workloads(value: str, name: str = STATEFUL_WORKLOAD_KINDS) -> tuple[WorkloadKind, ...]:
    """The comma-separated STATEFUL_WORKLOAD_KINDS: ``StatefulSet`` (apps/v1's) and ``Kind.group/version/plural``.

    Empty entries are skipped (an empty value: no kind keeps addresses) and repeats kept once; a
    kind of one group given twice with different versions or plurals is an error, as is any entry
    of another shape. Errors name the setting and the entry.
    """
    found: dict[tuple[str, str], WorkloadKind] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        workload = _workload_kind(entry, name)
        first = found.setdefault((workload.group, workload.kind), workload)
        if first != workload:
            raise InvalidValue(name, entry, f"{workload.kind} of {workload.group} is already given as {first}")
    return tuple(found.values())


def _workload_kind(entry: str, name: str) -> WorkloadKind:
    if entry == APPS_STATEFULSET.kind:
        return APPS_STATEFULSET
    match = _WORKLOAD.fullmatch(entry)
    if match is None:
        if _BARE_KIND.fullmatch(entry):
            reason = (
                f"only StatefulSet (that of apps/v1) may be given by its kind alone; name the API group, version "
                f"and plural of any other: {entry}.<group>/<version>/<plural>, e.g. {STATEFUL_EXAMPLE}"
            )
        else:
            reason = f"must be {STATEFUL_SYNTAX}, e.g. {STATEFUL_EXAMPLE}"
        raise InvalidValue(name, entry, reason)
    if len(match["group"]) > 253:  # a DNS subdomain's limit
        raise InvalidValue(name, entry, "has an API group longer than 253 characters")
    return WorkloadKind(kind=match["kind"], group=match["group"], version=match["version"], plural=match["plural"])


@dataclass(frozen=True)
class OperatorConfig:
    # ``stateful_kinds`` is replaced by the kind names of ``stateful_workloads``.
    pod: PodSettings = field(default_factory=PodSettings)
    # Workloads whose pods keep their addresses (STATEFUL_WORKLOAD_KINDS). Pods are matched to them by
    # their controller's API group and kind; the core sees only the kind names (``pod.stateful_kinds``).
    stateful_workloads: tuple[WorkloadKind, ...] = (APPS_STATEFULSET,)
    # Namespace of the coordination Lease (the operator's own namespace in a cluster).
    namespace: str = "kube-system"
    lease_name: str = "hybridlay-operator"
    # False runs every instance active at once: correctness never depends on the Lease.
    leader_election: bool = True
    lease_seconds: int = 15
    identity: str = "hybridlay-operator"
    # Reconciliation workers: concurrent API writes for allocation.
    workers: int = 16
    # Seconds between full resyncs (orphan collection, retries of failed pods).
    resync_seconds: int = 60
    # Port of /healthz, /readyz and /metrics (plain HTTP, cluster-internal).
    probe_port: int = 8080
    # Admission webhook server (TLS). An empty certificate path disables the server.
    webhook_port: int = 9443
    webhook_addr: str = "0.0.0.0"  # noqa: S104  # the API server reaches it through a Service
    webhook_certfile: str = ""
    webhook_keyfile: str = ""

    def __post_init__(self) -> None:
        kinds = tuple(dict.fromkeys(w.kind for w in self.stateful_workloads))
        if self.pod.stateful_kinds != kinds:
            object.__setattr__(self, "pod", dataclasses.replace(self.pod, stateful_kinds=kinds))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatorConfig:
        pod = PodSettings(
            default_network_type=NetworkType(_enum_ci(env, "DEFAULT_NETWORK_TYPE", NetworkType, "Overlay")),
            default_ip_family=IPFamily(_enum_ci(env, "DEFAULT_IP_FAMILY", IPFamily, "IPv4")),
            default_ip_retain=_bool(env, "DEFAULT_IP_RETAIN", True),
        )
        return cls(
            pod=pod,
            stateful_workloads=parse_stateful_workloads(env.get(STATEFUL_WORKLOAD_KINDS, APPS_STATEFULSET.kind)),
            namespace=env.get("POD_NAMESPACE", "kube-system"),
            lease_name=env.get("LEASE_NAME", "hybridlay-operator"),
            leader_election=_bool(env, "LEADER_ELECTION", True),
            lease_seconds=_int(env, "LEASE_SECONDS", 15),
            identity=env.get("POD_NAME") or env.get("HOSTNAME") or "hybridlay-operator",
            workers=_int(env, "WORKERS", 16),
            resync_seconds=_int(env, "RESYNC_SECONDS", 60),
            probe_port=_int(env, "PROBE_PORT", 8080),
            webhook_port=_int(env, "WEBHOOK_PORT", 9443),
            webhook_addr=env.get("WEBHOOK_ADDR", "0.0.0.0"),  # noqa: S104
            webhook_certfile=env.get("WEBHOOK_CERTFILE", ""),
            webhook_keyfile=env.get("WEBHOOK_KEYFILE", ""),
        )
