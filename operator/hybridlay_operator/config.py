"""The operator's settings, read once from environment variables (a Deployment's ``env``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class OperatorConfig:
    pod: PodSettings = field(default_factory=PodSettings)
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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatorConfig:
        kinds = tuple(k.strip() for k in env.get("STATEFUL_WORKLOAD_KINDS", "StatefulSet").split(",") if k.strip())
        pod = PodSettings(
            default_network_type=NetworkType(_enum_ci(env, "DEFAULT_NETWORK_TYPE", NetworkType, "Overlay")),
            default_ip_family=IPFamily(_enum_ci(env, "DEFAULT_IP_FAMILY", IPFamily, "IPv4")),
            stateful_kinds=kinds,
            default_ip_retain=_bool(env, "DEFAULT_IP_RETAIN", True),
        )
        return cls(
            pod=pod,
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
