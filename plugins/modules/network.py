#!/usr/bin/python
# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: network
short_description: A hybridlay Network (networking.hybridlay.io/v1)
version_added: "0.1.0"
description:
  - Creates, updates or deletes a Network custom resource with the Kubernetes client.
  - The object is checked with the admission webhooks' own rules (the C(hybridlay) package) before
    any API call; a refusal lists every broken rule. Type, mode and netID cannot change.
  - A Network still referenced by a Subnet is not deleted; the message names the subnets.
  - Check mode sends the change as a server-side dry run.
options:
  name:
    description: Name of the Network.
    type: str
    required: true
  state:
    description: Whether the Network should exist.
    type: str
    choices: [present, absent]
    default: present
  type:
    description: Network type.
    type: str
    choices: [Underlay, Overlay, GlobalBGP]
    default: Underlay
  mode:
    description: Network mode; by default VLAN for Underlay, VXLAN for Overlay.
    type: str
    choices: [VLAN, VXLAN, BGP, GlobalBGP]
  net_id:
    description: VLAN id, VXLAN VNI or local BGP ASN.
    type: int
  node_selector:
    description: Labels selecting the nodes of an underlay network.
    type: dict
    default: {}
  bgp_peers:
    description: BGP peers of a BGP network.
    type: list
    elements: dict
    default: []
    suboptions:
      asn:
        description: Peer ASN.
        type: int
        required: true
      address:
        description: Peer address.
        type: str
        required: true
      graceful_restart_seconds:
        description: Graceful restart time.
        type: int
        default: 300
      password_secret:
        description: The Secret key holding the session password (never the password itself).
        type: dict
        suboptions:
          name:
            description: Secret name.
            type: str
            required: true
          key:
            description: Key in the Secret.
            type: str
            required: true
          namespace:
            description: Namespace of the Secret.
            type: str
      does_not_route_traffic:
        description: The peer only exchanges routes.
        type: bool
        default: false
      allow_not_established:
        description: Pods may start while the session is down.
        type: bool
        default: false
extends_documentation_fragment:
  - hybridlay.fabric.common
  - hybridlay.fabric.common.cluster
author:
  - hybridlay maintainers (@hybridlay)
"""

EXAMPLES = r"""
- name: The seeds' VLAN 20 underlay network
  hybridlay.fabric.network:
    name: underlay-vlan20
    type: Underlay
    mode: VLAN
    net_id: 20
    node_selector:
      networking.hybridlay.io/network-underlay-vlan20: "true"
  delegate_to: localhost
"""

RETURN = r"""
result:
  description: The Network as the API server returned it (empty once deleted).
  returned: always
  type: dict
"""

# Imports follow the documentation strings, as in every Ansible module (E402 on purpose).
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.hybridlay.fabric.plugins.module_utils import custom_resource as cr  # noqa: E402

PEER_FIELDS = (
    ("asn", "asn"),
    ("address", "address"),
    ("graceful_restart_seconds", "gracefulRestartSeconds"),
    ("does_not_route_traffic", "doesNotRouteTraffic"),
    ("allow_not_established", "allowNotEstablished"),
)


def desired(params):
    peers = []
    for peer in params["bgp_peers"]:
        item = {api: peer[arg] for arg, api in PEER_FIELDS}
        if peer.get("password_secret"):
            item["passwordSecretRef"] = {k: v for k, v in peer["password_secret"].items() if v is not None}
        peers.append(item)
    spec = {"type": params["type"], "nodeSelector": params["node_selector"]}
    if params["mode"]:
        spec["mode"] = params["mode"]
    if params["net_id"] is not None:
        spec["netID"] = params["net_id"]
    if peers:
        spec["config"] = {"bgpPeers": peers}
    return {
        "apiVersion": "networking.hybridlay.io/v1",
        "kind": "Network",
        "metadata": {"name": params["name"]},
        "spec": spec,
    }


def rules():
    def create(cluster, wanted):
        return cr.validation.validate_network_create(
            wanted, cr.networks_by_name(cluster).values(), cluster.node_labels()
        )

    def update(cluster, current, wanted):
        networks = cr.networks_by_name(cluster).values()
        return cr.validation.validate_network_update(current, wanted, networks, cluster.node_labels())

    def delete(cluster, current):
        return cr.validation.validate_network_delete(current, cr.subnets(cluster))

    return create, update, delete


def main():
    secret_ref = dict(
        name=dict(type="str", required=True),
        key=dict(type="str", required=True, no_log=False),
        namespace=dict(type="str"),
    )
    peer = dict(
        asn=dict(type="int", required=True),
        address=dict(type="str", required=True),
        graceful_restart_seconds=dict(type="int", default=300),
        # A reference to the Secret, not the password: nothing to hide.
        password_secret=dict(type="dict", options=secret_ref, no_log=False),
        does_not_route_traffic=dict(type="bool", default=False),
        allow_not_established=dict(type="bool", default=False),
    )
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            type=dict(type="str", choices=["Underlay", "Overlay", "GlobalBGP"], default="Underlay"),
            mode=dict(type="str", choices=["VLAN", "VXLAN", "BGP", "GlobalBGP"]),
            net_id=dict(type="int"),
            node_selector=dict(type="dict", default={}),
            bgp_peers=dict(type="list", elements="dict", default=[], options=peer),
            **cr.CONNECTION_ARGS,
        ),
        supports_check_mode=True,
    )
    cr.ensure(module, "Network", "networks", desired(module.params), rules())


if __name__ == "__main__":
    main()
