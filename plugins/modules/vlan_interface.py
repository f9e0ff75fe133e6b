#!/usr/bin/python
# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vlan_interface
short_description: A node's VLAN sub-interface, live and persistent
version_added: "0.1.0"
description:
  - Makes a VLAN sub-interface C(<parent>.<id>) present or absent on the node, now (netlink,
    through pyroute2) and at boot (a file for the node's network stack).
  - VLAN id 0 means untagged, and the interface is the parent itself. It must exist, is never
    deleted, and no persistent file is written for it (the node's own configuration owns it).
  - Listed addresses are added (present) or removed (absent); other addresses are left alone.
options:
  parent:
    description: The parent (trunk) interface, e.g. C(eth1).
    type: str
    required: true
  id:
    description: VLAN id, 0 (untagged, the parent itself) to 4094.
    type: int
    required: true
  state:
    description: Whether the interface should exist.
    type: str
    choices: [present, absent]
    default: present
  mtu:
    description: MTU of the interface; left as it is when omitted.
    type: int
  addresses:
    description: Addresses with prefix length (C(192.168.20.5/24)) the interface should carry.
    type: list
    elements: str
    default: []
  persist:
    description:
      - Which network stack's configuration to write so the interface survives a reboot.
      - C(auto) detects it (NetworkManager, then systemd-networkd, then ifupdown); C(none) writes nothing.
    type: str
    choices: [auto, systemd-networkd, NetworkManager, ifupdown, none]
    default: auto
  live:
    description:
      - Apply the change to the running kernel too. With C(false) only the persistent files are
        written, for the next boot (an image being prepared, or a kernel without 802.1Q now).
    type: bool
    default: true
  config_root:
    description: Directory the persistent files are written under (another root for image builds).
    type: path
    default: /
requirements:
  - pyroute2 on the managed node
extends_documentation_fragment:
  - hybridlay.fabric.common
author:
  - hybridlay maintainers (@hybridlay)
"""

EXAMPLES = r"""
- name: VLAN 20 on the trunk, persistent
  hybridlay.fabric.vlan_interface:
    parent: eth1
    id: 20
    mtu: 1500

- name: Remove it
  hybridlay.fabric.vlan_interface:
    parent: eth1
    id: 20
    state: absent
"""

RETURN = r"""
interface:
  description: Name of the interface managed.
  returned: always
  type: str
  sample: eth1.20
operations:
  description: Netlink operations run (or that would run in check mode).
  returned: always
  type: list
  elements: list
  sample: [["add_vlan", "eth1.20", "eth1", 20], ["set_up", "eth1.20"]]
files:
  description: Persistent files written or removed.
  returned: always
  type: list
  elements: str
stack:
  description: The network stack the persistent files are for, or null.
  returned: always
  type: str
"""

# Imports follow the documentation strings, as in every Ansible module (E402 on purpose).
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible_collections.hybridlay.fabric.plugins.module_utils import netlink  # noqa: E402
from ansible_collections.hybridlay.fabric.plugins.module_utils import vlan_interface as vlan  # noqa: E402


def argument_spec():
    return dict(
        parent=dict(type="str", required=True),
        id=dict(type="int", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        mtu=dict(type="int"),
        addresses=dict(type="list", elements="str", default=[]),
        persist=dict(type="str", choices=["auto", *vlan.STACKS, "none"], default="auto"),
        live=dict(type="bool", default=True),
        config_root=dict(type="path", default="/"),
    )


def write_files(module, changes):
    for path, (_before, content) in changes.items():
        if content is None:
            os.unlink(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".hybridlay-tmp"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(content)
        module.atomic_move(tmp, path)
        # atomic_move gives a new file the umask's mode; each stack wants its own.
        os.chmod(path, vlan.file_mode(path))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if not 0 <= params["id"] <= 4094:
        module.fail_json(msg=f"id {params['id']} is not a VLAN id (0-4094, 0 for untagged)")
    if params["mtu"] is not None and not 68 <= params["mtu"] <= 65535:
        module.fail_json(msg=f"mtu {params['mtu']} is out of range (68-65535)")
    if params["live"] and netlink.PYROUTE2_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=netlink.PYROUTE2_IMPORT_ERROR)
    try:
        want = vlan.desired_state(params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    stack = vlan.detect_stack(params["config_root"]) if params["persist"] == "auto" else params["persist"]
    stack = None if stack == "none" else stack
    have, ops = None, []
    if params["live"]:
        with netlink.open_iproute() as ipr:
            have = netlink.link_facts(ipr, want["name"])
            try:
                ops = vlan.operations(want, have)
            except LookupError as exc:
                module.fail_json(msg=str(exc), interface=want["name"])
            if not module.check_mode:
                netlink.apply(ipr, ops)
    changes = vlan.file_changes(vlan.persistent_files(want, stack, params["config_root"]))
    if not module.check_mode:
        write_files(module, changes)
    result = dict(
        changed=bool(ops or changes),
        interface=want["name"],
        operations=[list(op) for op in ops],
        files=sorted(changes),
        stack=stack,
    )
    if module._diff:
        result["diff"] = [
            dict(before=before or "", after=after or "", before_header=path, after_header=path)
            for path, (before, after) in sorted(changes.items())
        ]
        if params["live"]:
            after = vlan.state_after(want, have) or {}
            result["diff"].insert(0, dict(before=have or {}, after=after, before_header=want["name"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
