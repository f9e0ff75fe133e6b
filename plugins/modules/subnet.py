#!/usr/bin/python
# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: subnet
short_description: A hybridlay Subnet (networking.hybridlay.io/v1)
version_added: "0.1.0"
description:
  - Creates, updates or deletes a Subnet custom resource with the Kubernetes client.
  - The object is checked with the admission webhooks' own rules (the C(hybridlay) package) before
    any API call; a refusal lists every broken rule (overlaps, gateway outside the CIDR, netID of
    the network, fields that cannot change, ...).
  - A Subnet whose addresses are in use is not deleted; the message names the IPInstances.
  - Check mode sends the change as a server-side dry run.
options:
  name:
    description: Name of the Subnet.
    type: str
    required: true
  state:
    description: Whether the Subnet should exist.
    type: str
    choices: [present, absent]
    default: present
  network:
    description: The Network the Subnet belongs to (required when present).
    type: str
  net_id:
    description: VLAN id; inherited from a VLAN network when omitted.
    type: int
  cidr:
    description: The subnet, canonical CIDR (required when present).
    type: str
  start:
    description: First address IPAM may hand out.
    type: str
  end:
    description: Last address IPAM may hand out.
    type: str
  gateway:
    description: Gateway (required for VLAN networks).
    type: str
  reserved_ips:
    description: Addresses handed out only when asked for by name.
    type: list
    elements: str
    default: []
  exclude_ips:
    description: Addresses never handed out.
    type: list
    elements: str
    default: []
  auto_nat_outgoing:
    description: Masquerade traffic leaving the cluster (overlay only).
    type: bool
  private:
    description: Used only by pods that name the subnet.
    type: bool
    default: false
extends_documentation_fragment:
  - hybridlay.fabric.common
  - hybridlay.fabric.common.cluster
author:
  - hybridlay maintainers (@hybridlay)
"""

EXAMPLES = r"""
- name: A subnet of the VLAN 20 network
  hybridlay.fabric.subnet:
    name: vlan20-a
    network: underlay-vlan20
    cidr: 192.168.20.0/24
    gateway: 192.168.20.1
  delegate_to: localhost
"""

RETURN = r"""
result:
  description: The Subnet as the API server returned it (empty once deleted).
  returned: always
  type: dict
"""

# Imports follow the documentation strings, as in every Ansible module (E402 on purpose).
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.hybridlay.fabric.plugins.module_utils import custom_resource as cr  # noqa: E402

RANGE_FIELDS = (
    ("start", "start"),
    ("end", "end"),
    ("gateway", "gateway"),
    ("reserved_ips", "reservedIPs"),
    ("exclude_ips", "excludeIPs"),
)


def desired(params):
    cidr = params["cidr"] or ""
    address_range = {"version": "6" if ":" in cidr else "4", "cidr": cidr}
    address_range.update({api: params[arg] for arg, api in RANGE_FIELDS if params[arg]})
    spec = {"network": params["network"] or "", "range": address_range}
    if params["net_id"] is not None:
        spec["netID"] = params["net_id"]
    config = {"private": params["private"]}
    if params["auto_nat_outgoing"] is not None:
        config["autoNatOutgoing"] = params["auto_nat_outgoing"]
    spec["config"] = config
    return {
        "apiVersion": "networking.hybridlay.io/v1",
        "kind": "Subnet",
        "metadata": {"name": params["name"]},
        "spec": spec,
    }


def rules():
    def create(cluster, wanted):
        return cr.validation.validate_subnet_create(wanted, cr.networks_by_name(cluster), cr.subnets(cluster))

    def update(cluster, current, wanted):
        return cr.validation.validate_subnet_update(current, wanted, cr.networks_by_name(cluster))

    def delete(cluster, current):
        return cr.validation.validate_subnet_delete(current, cr.instances(cluster))

    return create, update, delete


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            network=dict(type="str"),
            net_id=dict(type="int"),
            cidr=dict(type="str"),
            start=dict(type="str"),
            end=dict(type="str"),
            gateway=dict(type="str"),
            reserved_ips=dict(type="list", elements="str", default=[]),
            exclude_ips=dict(type="list", elements="str", default=[]),
            auto_nat_outgoing=dict(type="bool"),
            private=dict(type="bool", default=False),
            **cr.CONNECTION_ARGS,
        ),
        required_if=[("state", "present", ("network", "cidr"))],
        supports_check_mode=True,
    )
    cr.ensure(module, "Subnet", "subnets", desired(module.params), rules())


if __name__ == "__main__":
    main()
