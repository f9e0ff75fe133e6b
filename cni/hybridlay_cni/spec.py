"""CNI spec 1.1 as the plugin meets it: environment and network-config validation, result formats.

Pure functions over plain values (no I/O, standard library only), run by the agent on what the
plugin's shim forwards. Every rejection is a :class:`CNIError` carrying the spec's well-known
code and naming the variable or field and value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hybridlay_cni.shim import (
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT_SECONDS,
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    socket_path_problem,
    timeout_problem,
)

PLUGIN_TYPE = "hybridlay"

# Well-known error codes (CNI spec 1.1, "Error").
E_INCOMPATIBLE_VERSION = 1
E_UNSUPPORTED_FIELD = 2
E_UNKNOWN_CONTAINER = 3
E_INVALID_ENVIRONMENT = 4
E_IO = 5
E_DECODE = 6
E_INVALID_CONFIG = 7
E_TRY_AGAIN_LATER = 11
E_PLUGIN_NOT_AVAILABLE = 50
# Plugin-specific codes (100 and up).
E_CHECK_MISMATCH = 100
E_PLUMBING = 101

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
# The spec version that introduced each command; older configs may not use it.
COMMAND_SINCE = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}
# Variables the runtime must set, per command (CNI_NETNS is optional for DEL).
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "STATUS": ("CNI_PATH",),
    "GC": ("CNI_PATH",),
    "VERSION": (),
}
# Where runtimes put network namespaces; anything else is refused before a file is opened.
NETNS_DIRS = ("/var/run/netns/", "/run/netns/")
_PROC_NETNS = re.compile(r"/proc/[1-9][0-9]{0,9}(/task/[1-9][0-9]{0,9})?/ns/net")
IFNAME_MAX = 15
CONTAINER_ID_MAX = 256
# libcni's rule for container ids.
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
# Kubernetes object names: DNS-1123 subdomain (pod) and label (namespace).
_POD_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_MTU_RANGE = (576, 65535)


class CNIError(Exception):
    """A failure reported to the runtime as the spec's error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str) -> dict[str, Any]:
        return {"cniVersion": cni_version, "code": self.code, "msg": self.msg, "details": self.details}


@dataclass(frozen=True, kw_only=True)
class Invocation:
    """One validated call: the command, the container attachment, and the pod it belongs to."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    pod_namespace: str = ""
    pod_name: str = ""


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def parse_env(env: Mapping[str, str]) -> Invocation:
    """Validate the ``CNI_*`` variables; a hostile value is refused with code 4 naming it."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CNIError(E_INVALID_ENVIRONMENT, f"CNI_COMMAND {command!r}: must be one of {', '.join(COMMANDS)}")
    missing = [name for name in REQUIRED_ENV[command] if not env.get(name)]
    if missing:
        raise CNIError(E_INVALID_ENVIRONMENT, f"{', '.join(missing)}: required for {command} but not set")
    if command in ("VERSION", "STATUS", "GC"):
        return Invocation(command=command)
    container_id = check_container_id(env["CNI_CONTAINERID"])
    ifname = check_ifname(env["CNI_IFNAME"])
    netns = env.get("CNI_NETNS", "")
    if netns:
        check_netns_path(netns)
    pod_namespace, pod_name = pod_identity(env.get("CNI_ARGS", ""), container_id)
    return Invocation(
        command=command,
        container_id=container_id,
        netns=netns,
        ifname=ifname,
        pod_namespace=pod_namespace,
        pod_name=pod_name,
    )


def check_container_id(value: str) -> str:
    if len(value) > CONTAINER_ID_MAX or not _CONTAINER_ID.fullmatch(value):
        raise CNIError(
            E_INVALID_ENVIRONMENT,
            f"CNI_CONTAINERID {value[:80]!r}: must start with a letter or digit and hold only letters, digits,"
            f" '_', '.', '-' (at most {CONTAINER_ID_MAX} characters)",
        )
    return value


def check_ifname(value: str) -> str:
    if (
        not value
        or len(value) > IFNAME_MAX
        or value in (".", "..")
        or any(c in "/:" or c.isspace() or not c.isprintable() for c in value)
    ):
        raise CNIError(
            E_INVALID_ENVIRONMENT,
            f"CNI_IFNAME {value[:80]!r}: must be an interface name of 1-{IFNAME_MAX} characters without '/', ':'"
            " or white space",
        )
    return value


def check_netns_path(value: str) -> str:
    """A normalised path in a runtime's netns directory, or a process's ``/proc/<pid>/ns/net``."""
    parts = value.split("/")
    normalised = value.startswith("/") and "" not in parts[1:] and "." not in parts and ".." not in parts
    if value.startswith("/proc/"):
        allowed = _PROC_NETNS.fullmatch(value) is not None
    else:
        allowed = normalised and value.startswith(NETNS_DIRS) and len(value) <= 4096
    if not allowed or "\0" in value:
        raise CNIError(
            E_INVALID_ENVIRONMENT,
            f"CNI_NETNS {value[:120]!r}: must be /proc/<pid>/ns/net or a normalised path under {', '.join(NETNS_DIRS)}",
        )
    return value


def parse_cni_args(value: str) -> dict[str, str]:
    """``K1=V1;K2=V2`` into a dict; a pair without '=' is refused."""
    pairs: dict[str, str] = {}
    for item in filter(None, value.split(";")):
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise CNIError(E_INVALID_ENVIRONMENT, f"CNI_ARGS {value[:120]!r}: {item[:60]!r} is not KEY=VALUE")
        pairs[key] = val
    return pairs


def pod_identity(cni_args: str, container_id: str) -> tuple[str, str]:
    """The pod (namespace, name) from Kubernetes' CNI_ARGS.

    A runtime without Kubernetes (``ctr run --cni``) passes none: the attachment is then the
    container itself, named by its id in namespace ``default``.
    """
    args = parse_cni_args(cni_args)
    namespace = args.get("K8S_POD_NAMESPACE") or "default"
    name = args.get("K8S_POD_NAME") or container_id.lower()
    if not _NAMESPACE.fullmatch(namespace):
        raise CNIError(E_INVALID_ENVIRONMENT, f"CNI_ARGS K8S_POD_NAMESPACE {namespace[:80]!r}: not a namespace name")
    if not _POD_NAME.fullmatch(name):
        raise CNIError(E_INVALID_ENVIRONMENT, f"CNI_ARGS K8S_POD_NAME {name[:80]!r}: not a pod name")
    return namespace, name


def parse_config(config: Any, command: str) -> dict[str, Any]:
    """Validate the decoded network configuration for ``command``; returns it unchanged."""
    if not isinstance(config, dict):
        raise CNIError(E_DECODE, f"network configuration {type(config).__name__}: must be a JSON object")
    version = config.get("cniVersion")
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise CNIError(
            E_INCOMPATIBLE_VERSION,
            f"cniVersion {version!r}: not supported",
            f"supported versions: {', '.join(SUPPORTED_VERSIONS)}",
        )
    since = COMMAND_SINCE.get(command)
    if since and version_tuple(version) < version_tuple(since):
        raise CNIError(E_INCOMPATIBLE_VERSION, f"cniVersion {version}: does not allow {command} (needs {since})")
    if config.get("type") != PLUGIN_TYPE:
        raise CNIError(E_INVALID_CONFIG, f"type {config.get('type')!r}: must be {PLUGIN_TYPE!r}")
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise CNIError(E_INVALID_CONFIG, f"name {name!r}: required, a non-empty string")
    if "ipam" in config:
        raise CNIError(
            E_UNSUPPORTED_FIELD, f"ipam {config['ipam']!r}: unsupported, hybridlay allocates through IPInstances"
        )
    socket_path(config)
    timeout_seconds(config)
    mtu(config)
    prev_result(config)
    if command == "GC":
        valid_attachments(config)
    return config


def socket_path(config: Mapping[str, Any]) -> str:
    value = config.get("socket", DEFAULT_SOCKET)
    if reason := socket_path_problem(value):
        raise CNIError(E_INVALID_CONFIG, f"socket {value!r}: {reason}")
    return str(value)


def timeout_seconds(config: Mapping[str, Any]) -> float:
    value = config.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
    if reason := timeout_problem(value):
        raise CNIError(E_INVALID_CONFIG, f"timeoutSeconds {value!r}: {reason}")
    return float(value)


def mtu(config: Mapping[str, Any]) -> int | None:
    value = config.get("mtu")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not _MTU_RANGE[0] <= value <= _MTU_RANGE[1]:
        raise CNIError(E_INVALID_CONFIG, f"mtu {value!r}: must be an integer in {_MTU_RANGE[0]}-{_MTU_RANGE[1]}")
    return value


def prev_result(config: Mapping[str, Any]) -> dict[str, Any]:
    """The previous plugins' result (chaining), checked whole before anything is plumbed: the result
    printed at the end is built from it, and a malformed one found then would leave the pod plumbed
    with no answer."""
    prev = config.get("prevResult")
    if prev is None:
        return {}
    if not isinstance(prev, dict):
        raise CNIError(E_INVALID_CONFIG, f"prevResult {_short(prev)}: must be an object")
    interfaces = _objects(prev, "interfaces")
    for i, interface in enumerate(interfaces):
        _string(interface, f"prevResult.interfaces[{i}]", "name", required=True)
        for key in ("mac", "sandbox"):
            _string(interface, f"prevResult.interfaces[{i}]", key)
    for i, ip in enumerate(_objects(prev, "ips")):
        where = f"prevResult.ips[{i}]"
        _string(ip, where, "address", required=True)
        _string(ip, where, "gateway")
        index = ip.get("interface")
        if index is not None and (
            isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(interfaces)
        ):
            raise CNIError(
                E_INVALID_CONFIG,
                f"{where}.interface {_short(index)}: must index prevResult.interfaces (0-{len(interfaces) - 1})",
            )
    for i, route in enumerate(_objects(prev, "routes")):
        _string(route, f"prevResult.routes[{i}]", "dst", required=True)
        _string(route, f"prevResult.routes[{i}]", "gw")
    dns = prev.get("dns")
    if dns is not None and not isinstance(dns, dict):
        raise CNIError(E_INVALID_CONFIG, f"prevResult.dns {_short(dns)}: must be an object")
    return prev


def _objects(prev: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = prev.get(key, [])
    if not isinstance(value, list):
        raise CNIError(E_INVALID_CONFIG, f"prevResult.{key} {_short(value)}: must be a list")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise CNIError(E_INVALID_CONFIG, f"prevResult.{key}[{i}] {_short(item)}: must be an object")
    return value


def _string(obj: Mapping[str, Any], where: str, key: str, required: bool = False) -> None:
    value = obj.get(key)
    if (value is None and required) or (value is not None and not isinstance(value, str)):
        raise CNIError(
            E_INVALID_CONFIG, f"{where}.{key} {_short(value)}: {'required, ' if required else ''}must be a string"
        )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def valid_attachments(config: Mapping[str, Any]) -> set[tuple[str, str]]:
    """GC's ``cni.dev/valid-attachments`` as (containerID, ifname) pairs."""
    key = "cni.dev/valid-attachments"
    value = config.get(key, config.get("cni.dev/attachments", []))
    if not isinstance(value, list):
        raise CNIError(E_INVALID_CONFIG, f"{key} {value!r}: must be a list")
    pairs = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
            raise CNIError(E_INVALID_CONFIG, f"{key}[{i}] {item!r}: must be an object with a containerID string")
        pairs.add((item["containerID"], str(item.get("ifname", ""))))
    return pairs


def format_result(result: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's result (1.x shape) in the config's cniVersion, appended to any ``prevResult``.

    0.3.x and 0.4.0 carry ``ips[].version``; 1.x dropped it. Interface indices of our entries
    are shifted past the previous plugins' interfaces, so chained plugins find them.
    """
    version = config["cniVersion"]
    prev = config.get("prevResult") or {}
    interfaces = list(prev.get("interfaces", []))
    offset = len(interfaces)
    with_mtu = version_tuple(version) >= (1, 1, 0)  # Interface.mtu is new in spec 1.1.0
    for interface in result.get("interfaces", []):
        interfaces.append(interface if with_mtu else {k: v for k, v in interface.items() if k != "mtu"})
    ips = [dict(ip) for ip in prev.get("ips", [])]
    for ip in result.get("ips", []):
        entry = dict(ip)
        if "interface" in entry:
            entry["interface"] += offset
        ips.append(entry)
    legacy = version_tuple(version) < (1, 0, 0)
    for entry in ips:
        if legacy:
            entry["version"] = "6" if ":" in entry["address"] else "4"
        else:
            entry.pop("version", None)
    formatted: dict[str, Any] = {"cniVersion": version, "interfaces": interfaces, "ips": ips}
    routes = list(prev.get("routes", [])) + list(result.get("routes", []))
    if routes:
        formatted["routes"] = routes
    dns = prev.get("dns") or result.get("dns")
    if dns:
        formatted["dns"] = dns
    return formatted


def version_result() -> dict[str, Any]:
    return {"cniVersion": LATEST_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)}
