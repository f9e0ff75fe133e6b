#!/usr/bin/python
# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: plan_check
short_description: Check the inventory's hybridlay network plan before any change
version_added: "0.1.0"
description:
  - Validates the network plan (C(hybridlay_networks), C(hybridlay_subnets), each node's
    C(hybridlay_node) and each switch's C(hybridlay_switch)) against its JSON schema, against the
    admission rules the operator's webhooks enforce (the same code), and against what only the
    inventory knows (racks are inventory groups with nodes and a switch, parent interfaces exist).
  - Fails listing every problem, each with its inventory path.
  - Runs on the controller (action plugin); it needs the C(hybridlay) Python package there.
  - BGP passwords are never shown in messages.
options:
  networks:
    description: The plan's networks (usually C(hybridlay_networks)). See docs/network-plan.md.
    type: list
    elements: raw
    required: true
  subnets:
    description: The plan's subnets (usually C(hybridlay_subnets)).
    type: list
    elements: raw
    required: true
  check_interfaces:
    description:
      - Check that parent interfaces exist on nodes whose facts were gathered.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
author:
  - hybridlay maintainers (@hybridlay)
"""

EXAMPLES = r"""
- name: Check the network plan
  hybridlay.fabric.plan_check:
    networks: "{{ hybridlay_networks }}"
    subnets: "{{ hybridlay_subnets }}"
  run_once: true
"""

RETURN = r"""
errors:
  description: "Every problem found, each as C(<inventory path>: <message>)."
  returned: always
  type: list
  elements: str
  sample: ["hybridlay_subnets[1].gateway 10.9.0.1 is outside cidr 192.168.20.0/24"]
"""
