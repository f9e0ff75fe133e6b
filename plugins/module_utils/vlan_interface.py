# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vlan_interface, the pure part: desired vs existing state -> operations, and persistent files.

Runs on managed nodes, so it depends on the standard library only (not on the ``hybridlay``
package, which lives on the controller). The naming rule is the core's (hybridlay.devices):
``<parent>.<id>``, and VLAN id 0 is the parent itself (untagged).
"""

from __future__ import annotations

import ipaddress
import os
import re

IFNAME_MAX = 15
STACKS = ("systemd-networkd", "NetworkManager", "ifupdown")
HEADER = "# Managed by hybridlay.fabric.vlan_interface: changes here are overwritten.\n"


def interface_name(parent, vlan_id):
    """``<parent>.<id>``; 0 is the parent itself."""
    name = parent if vlan_id == 0 else f"{parent}.{vlan_id}"
    if len(name) > IFNAME_MAX:
        raise ValueError(f"interface name {name} is longer than {IFNAME_MAX} characters")
    return name


def normalize_addresses(addresses):
    """Addresses as ``ip/prefix`` strings in canonical form; raises ValueError naming the bad one."""
    result = []
    for value in addresses or []:
        try:
            if "/" not in value:
                raise ValueError(value)
            result.append(str(ipaddress.ip_interface(value)))
        except ValueError:
            raise ValueError(f"addresses: {value} is not an address with prefix (e.g. 192.168.20.5/24)") from None
    return result


def desired_state(params):
    """The module's parameters as the state it wants (``None`` for what it leaves alone)."""
    return {
        "name": interface_name(params["parent"], params["id"]),
        "parent": params["parent"],
        "id": params["id"],
        "present": params["state"] == "present",
        "mtu": params.get("mtu"),
        "addresses": normalize_addresses(params.get("addresses")),
    }


def operations(want, have):
    """Operations turning ``have`` (live facts, ``None`` when the device is missing) into ``want``.

    Listed addresses are added (present) or removed (absent); others are left alone, since on
    VLAN id 0 the device is the node's own interface. VLAN id 0 is never deleted.
    """
    name = want["name"]
    ops = []
    if not want["present"]:
        if have is None:
            return ops
        if want["id"] != 0:
            return [("delete", name)]
        return [("del_address", name, a) for a in want["addresses"] if a in have["addresses"]]
    if have is None:
        if want["id"] == 0:
            raise LookupError(f"parent interface {want['parent']} does not exist")
        ops.append(("add_vlan", name, want["parent"], want["id"]))
        have = {"mtu": None, "up": False, "addresses": []}
    elif want["id"] != 0 and (have["kind"], have["vlan_id"], have["parent"]) != ("vlan", want["id"], want["parent"]):
        raise LookupError(
            f"{name} exists but is not VLAN {want['id']} on {want['parent']} "
            f"(kind {have['kind']}, id {have['vlan_id']}, parent {have['parent']})"
        )
    if want["mtu"] is not None and have["mtu"] != want["mtu"]:
        ops.append(("set_mtu", name, want["mtu"]))
    if not have["up"]:
        ops.append(("set_up", name))
    ops.extend(("add_address", name, a) for a in want["addresses"] if a not in have["addresses"])
    return ops


def state_after(want, have):
    """What the device looks like once the operations ran (for diff mode)."""
    if not want["present"]:
        if have is None or want["id"] != 0:
            return None
        return dict(have, addresses=[a for a in have["addresses"] if a not in want["addresses"]])
    after = dict(have or {"name": want["name"], "kind": "vlan", "parent": want["parent"], "vlan_id": want["id"]})
    after["mtu"] = want["mtu"] if want["mtu"] is not None else after.get("mtu")
    after["up"] = True
    after["addresses"] = list(have["addresses"] if have else []) + [
        a for a in want["addresses"] if not have or a not in have["addresses"]
    ]
    return after


# --- persistence ----------------------------------------------------------------------------------


def detect_stack(root="/"):
    """The network stack that configures the node at boot: the running one first, then what is installed."""
    checks = (
        ("NetworkManager", "run/NetworkManager/NetworkManager.pid"),
        ("systemd-networkd", "run/systemd/netif/links"),
        ("ifupdown", "etc/network/interfaces"),
    )
    for stack, marker in checks:
        if os.path.exists(os.path.join(root, marker)):
            return stack
    return None


def _ips_by_family(addresses):
    v4 = [a for a in addresses if ":" not in a]
    v6 = [a for a in addresses if ":" in a]
    return v4, v6


def render_networkd(want):
    name = want["name"]
    netdev = HEADER + f"[NetDev]\nName={name}\nKind=vlan\n"
    if want["mtu"] is not None:
        netdev += f"MTUBytes={want['mtu']}\n"
    netdev += f"\n[VLAN]\nId={want['id']}\n"
    network = HEADER + f"[Match]\nName={name}\n\n[Network]\nLinkLocalAddressing=no\nConfigureWithoutCarrier=yes\n"
    network += "".join(f"Address={a}\n" for a in want["addresses"])
    # The parent's own .network file must name the VLAN: a drop-in adds that line to it.
    parent_dropin = HEADER + f"[Network]\nVLAN={name}\n"
    return netdev, network, parent_dropin


def _nm_addresses(addresses, no_address_method):
    if not addresses:
        return f"method={no_address_method}\n"
    return "method=manual\n" + "".join(f"address{i}={a}\n" for i, a in enumerate(addresses, start=1))


def render_networkmanager(want):
    name = want["name"]
    v4, v6 = _ips_by_family(want["addresses"])
    text = HEADER + f"[connection]\nid=hybridlay-{name}\ntype=vlan\ninterface-name={name}\nautoconnect=true\n\n"
    text += f"[vlan]\nparent={want['parent']}\nid={want['id']}\n\n"
    if want["mtu"] is not None:
        text += f"[ethernet]\nmtu={want['mtu']}\n\n"
    text += "[ipv4]\n" + _nm_addresses(v4, "disabled")
    text += "\n[ipv6]\n" + _nm_addresses(v6, "ignore")
    return text


def render_ifupdown(want):
    name = want["name"]
    text = HEADER + f"auto {name}\niface {name} inet manual\n    vlan-raw-device {want['parent']}\n"
    if want["mtu"] is not None:
        text += f"    mtu {want['mtu']}\n"
    text += "".join(f"    up ip address add {a} dev {name}\n" for a in want["addresses"])
    return text


_MATCH_NAME = re.compile(r"^\s*Name\s*=\s*(.+)$", re.MULTILINE)


def networkd_parent_file(directory, parent):
    """The .network file (basename) that matches the parent, or None: its drop-in directory takes our line."""
    try:
        candidates = sorted(f for f in os.listdir(directory) if f.endswith(".network"))
    except OSError:
        return None
    for filename in candidates:
        with open(os.path.join(directory, filename)) as handle:
            text = handle.read()
        match_section = text.split("[Match]", 1)[1].split("\n[", 1)[0] if "[Match]" in text else ""
        for names in _MATCH_NAME.findall(match_section):
            if parent in names.split():
                return filename
    return None


def persistent_files(want, stack, root="/"):
    """Files (path -> content, or None to remove) that make ``want`` survive a reboot.

    VLAN id 0 is the node's own interface, configured by the node's network stack: nothing to write.
    """
    name = want["name"]
    if stack is None or want["id"] == 0:
        return {}
    present = want["present"]
    if stack == "systemd-networkd":
        directory = os.path.join(root, "etc/systemd/network")
        netdev, network, dropin = render_networkd(want)
        parent_file = networkd_parent_file(directory, want["parent"]) or "10-hybridlay-{}.network".format(
            want["parent"]
        )
        files = {
            os.path.join(directory, f"20-hybridlay-{name}.netdev"): netdev if present else None,
            os.path.join(directory, f"20-hybridlay-{name}.network"): network if present else None,
            os.path.join(directory, parent_file + ".d", f"hybridlay-{name}.conf"): dropin if present else None,
        }
        if not os.path.exists(os.path.join(directory, parent_file)) and present:
            # No .network file manages the parent yet: ours only attaches the VLAN to it.
            files[os.path.join(directory, parent_file)] = (
                HEADER + "[Match]\nName={}\n\n[Network]\nLinkLocalAddressing=no\n".format(want["parent"])
            )
        return files
    if stack == "NetworkManager":
        path = os.path.join(root, "etc/NetworkManager/system-connections", f"hybridlay-{name}.nmconnection")
        return {path: render_networkmanager(want) if present else None}
    if stack == "ifupdown":
        path = os.path.join(root, "etc/network/interfaces.d", f"hybridlay-{name}")
        return {path: render_ifupdown(want) if present else None}
    raise ValueError("unknown network stack {} (one of {})".format(stack, ", ".join(STACKS)))


def file_mode(path):
    """NetworkManager ignores connection files others can read; networkd reads its files as its own user."""
    return 0o600 if path.endswith(".nmconnection") else 0o644


def read_file(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def file_changes(files):
    """Of ``files`` (path -> wanted content or None), those whose content or mode differs: path -> (before, after)."""
    changes = {}
    for path, content in files.items():
        before = read_file(path)
        wrong_mode = before is not None and content is not None and os.stat(path).st_mode & 0o777 != file_mode(path)
        if before != content or wrong_mode:
            changes[path] = (before, content)
    return changes
