#!/usr/bin/python
# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: frr_static_routes
short_description: Static routes of an FRR router, in the style of the vendors' resource modules
version_added: "0.1.0"
description:
  - Manages FRR static routes through C(vtysh) on the router, as cisco.ios.ios_static_routes and
    its peers do for their platforms (FRR has no such module).
  - States C(merged), C(overridden) and C(deleted) change the running configuration;
    C(gathered) reads it; C(rendered) and C(parsed) work without a router.
options:
  config:
    description: The routes.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Destination network, CIDR.
        type: str
        required: true
      next_hop:
        description: Next-hop address.
        type: str
      interface:
        description: Exit interface.
        type: str
  state:
    description: What to do with the routes (see the vendors' resource modules).
    type: str
    choices: [merged, overridden, deleted, gathered, rendered, parsed]
    default: merged
  running_config:
    description: Configuration text to read for C(parsed).
    type: str
  pathspace:
    description: FRR instance name (C(vtysh -N)); the default instance when omitted.
    type: str
  save:
    description: Write the running configuration to the startup file (C(write memory)) after a change.
    type: bool
    default: false
extends_documentation_fragment:
  - hybridlay.fabric.common
author:
  - hybridlay maintainers (@hybridlay)
"""

EXAMPLES = r"""
- name: Route VLAN 20's subnet to the VLAN interface
  hybridlay.fabric.frr_static_routes:
    config:
      - dest: 192.168.20.0/24
        interface: vlan20
    state: merged
"""

RETURN = r"""
commands:
  description: vtysh configuration commands run (or that would run in check mode).
  returned: when state is merged, overridden or deleted
  type: list
  elements: str
  sample: ["ip route 192.168.20.0/24 vlan20"]
before:
  description: Static routes before the change.
  returned: when state is merged, overridden or deleted
  type: list
  elements: dict
after:
  description: Static routes after the change.
  returned: when changed
  type: list
  elements: dict
rendered:
  description: Configuration lines of C(config).
  returned: when state is rendered
  type: list
  elements: str
gathered:
  description: Static routes read from the router.
  returned: when state is gathered
  type: list
  elements: dict
parsed:
  description: Static routes read from C(running_config).
  returned: when state is parsed
  type: list
  elements: dict
"""

# Imports follow the documentation strings, as in every Ansible module (E402 on purpose).
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.hybridlay.fabric.plugins.module_utils import frr_static_routes as frr  # noqa: E402


def vtysh(module, *commands):
    argv = [module.get_bin_path("vtysh", required=True)]
    if module.params["pathspace"]:
        argv += ["-N", module.params["pathspace"]]
    for command in commands:
        argv += ["-c", command]
    rc, out, err = module.run_command(argv)
    # vtysh reports a refused command on stdout and may still exit 0.
    refused = [line for line in out.splitlines() if line.startswith("%") and "vtysh.conf" not in line]
    if rc != 0 or refused:
        module.fail_json(msg=f"vtysh failed: {(err or out).strip()}", commands=list(commands), rc=rc)
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    dest=dict(type="str", required=True), next_hop=dict(type="str"), interface=dict(type="str")
                ),
            ),
            state=dict(
                type="str",
                default="merged",
                choices=["merged", "overridden", "deleted", "gathered", "rendered", "parsed"],
            ),
            running_config=dict(type="str"),
            pathspace=dict(type="str"),
            save=dict(type="bool", default=False),
        ),
        required_if=[("state", "parsed", ("running_config",))],
        supports_check_mode=True,
    )
    state = module.params["state"]
    try:
        want = [frr.normalize(route) for route in module.params["config"]]
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if state == "rendered":
        module.exit_json(changed=False, rendered=[frr.route_line(r) for r in want])
    if state == "parsed":
        module.exit_json(changed=False, parsed=frr.parse(module.params["running_config"]))
    have = frr.parse(vtysh(module, "show running-config staticd"))
    if state == "gathered":
        module.exit_json(changed=False, gathered=have)
    commands = frr.commands(want, have, state)
    result = dict(changed=bool(commands), commands=commands, before=have)
    if commands:
        result["after"] = frr.after(want, have, state)
        if not module.check_mode:
            vtysh(module, "configure terminal", *commands)
            if module.params["save"]:
                vtysh(module, "write memory")
            result["after"] = frr.parse(vtysh(module, "show running-config staticd"))
        if module._diff:
            result["diff"] = dict(
                before="".join(frr.route_line(r) + "\n" for r in have),
                after="".join(frr.route_line(r) + "\n" for r in result["after"]),
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
