# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vlan_interface, the live part: read a link's state and apply operations with pyroute2."""

from __future__ import annotations

import ipaddress
import traceback

try:
    from pyroute2 import IPRoute

    PYROUTE2_IMPORT_ERROR = None
except ImportError:
    IPRoute = None
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()

IFF_UP = 0x1


def _index(ipr, name):
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def link_facts(ipr, name):
    """The device's state as vlan_interface compares it, or None when it does not exist."""
    index = _index(ipr, name)
    if index is None:
        return None
    link = ipr.get_links(index)[0]
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info else None
    vlan_id = None
    if kind == "vlan":
        vlan_id = info.get_attr("IFLA_INFO_DATA").get_attr("IFLA_VLAN_ID")
    # Only a VLAN's parent matters here; a veth's IFLA_LINK may index a peer in another
    # namespace (IFLA_LINK_NETNSID set), which this namespace cannot resolve.
    parent_index = link.get_attr("IFLA_LINK")
    parent = None
    if kind == "vlan" and parent_index and link.get_attr("IFLA_LINK_NETNSID") is None:
        parents = ipr.get_links(parent_index)
        parent = parents[0].get_attr("IFLA_IFNAME") if parents else None
    addresses = []
    for addr in ipr.get_addr(index=index):
        ip = addr.get_attr("IFA_ADDRESS")
        if ip and not ipaddress.ip_address(ip).is_link_local:
            addresses.append(str(ipaddress.ip_interface(f"{ip}/{addr['prefixlen']}")))
    return {
        "name": name,
        "kind": kind,
        "parent": parent,
        "vlan_id": vlan_id,
        "mtu": link.get_attr("IFLA_MTU"),
        "up": bool(link["flags"] & IFF_UP),
        "addresses": sorted(addresses),
    }


def apply(ipr, ops):
    for op in ops:
        action, name = op[0], op[1]
        if action == "add_vlan":
            ipr.link("add", ifname=name, kind="vlan", link=_index(ipr, op[2]), vlan_id=op[3])
            continue
        index = _index(ipr, name)
        if action == "delete":
            ipr.link("del", index=index)
        elif action == "set_mtu":
            ipr.link("set", index=index, mtu=op[2])
        elif action == "set_up":
            ipr.link("set", index=index, state="up")
        elif action in ("add_address", "del_address"):
            interface = ipaddress.ip_interface(op[2])
            ipr.addr(
                "add" if action == "add_address" else "del",
                index=index,
                address=str(interface.ip),
                prefixlen=interface.network.prefixlen,
            )
        else:
            raise ValueError(f"unknown operation {action}")


def open_iproute():
    return IPRoute()
