"""Names of the devices hybridlay creates on a node: derived, never stored, so every process agrees.

Linux limits interface names to 15 characters (IFNAMSIZ - 1).
"""

from __future__ import annotations

import hashlib

from hybridlay.errors import InvalidValue

IFNAME_MAX = 15
HOST_VETH_PREFIX = "hybr"


def host_veth_name(pod_namespace: str, pod_name: str) -> str:
    """Host side of a pod's veth: ``hybr`` + 11 hex characters of a hash of ``namespace.name``."""
    digest = hashlib.sha1(f"{pod_namespace}.{pod_name}".encode(), usedforsecurity=False).hexdigest()
    return HOST_VETH_PREFIX + digest[: IFNAME_MAX - len(HOST_VETH_PREFIX)]


def vlan_interface_name(parent: str, net_id: int | None) -> str:
    """VLAN forward interface ``<parent>.<netID>``; netID 0 (or none) is the parent itself."""
    _check_ifname("parent interface", parent)
    if not net_id:
        return parent
    if not 1 <= net_id <= 4094:
        raise InvalidValue("netID", net_id, "is not a VLAN id (1-4094, or 0 for untagged)")
    return _check_ifname("VLAN interface name", f"{parent}.{net_id}")


def vxlan_interface_name(parent: str, vni: int) -> str:
    """VXLAN device ``<parent>.vxlan<VNI>``; when that exceeds 15 characters, ``vxlan<VNI>``."""
    _check_ifname("parent interface", parent)
    if not 0 <= vni < 1 << 24:
        raise InvalidValue("netID", vni, "is not a VXLAN VNI (0-16777215)")
    full = f"{parent}.vxlan{vni}"
    return full if len(full) <= IFNAME_MAX else f"vxlan{vni}"


def _check_ifname(what: str, name: str) -> str:
    if not name or len(name) > IFNAME_MAX or "/" in name or any(c.isspace() for c in name) or name in {".", ".."}:
        raise InvalidValue(what, name, f"is not a valid interface name (1-{IFNAME_MAX} characters, no '/' or space)")
    return name
