# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON Schema of the network plan held in the inventory (docs/network-plan.md describes it).

One schema per variable, because each lives in its own place: ``hybridlay_networks`` and
``hybridlay_subnets`` in group_vars/all, ``hybridlay_node`` per node, ``hybridlay_switch`` per
top-of-rack switch. The schema checks shapes and ranges; the rules shared with the admission
webhooks (overlaps, gateway inside its CIDR, modes per type, ...) are the core's
``hybridlay.validation`` and are not repeated here.
"""

from __future__ import annotations

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
IFNAME = r"^[^/\s]{1,15}$"
PLATFORMS = ("ios", "eos", "junos", "frr")

_NAME = {"type": "string", "pattern": DNS_LABEL, "maxLength": 63}
_IP = {"type": "string", "minLength": 2}
_IP_LIST = {"type": "array", "items": _IP}

BGP_PEER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["asn", "address"],
    "properties": {
        "asn": {"type": "integer", "minimum": 1, "maximum": 4294967295},
        "address": _IP,
        # The secret itself: the seed role stores it in a Secret and the Network names that Secret.
        "password": {"type": "string", "minLength": 1},
        "gracefulRestartSeconds": {"type": "integer", "minimum": 0, "maximum": 4095},
        "doesNotRouteTraffic": {"type": "boolean"},
        "allowNotEstablished": {"type": "boolean"},
    },
}

NETWORK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "type"],
    "properties": {
        "name": _NAME,
        "type": {"enum": ["Overlay", "Underlay"]},
        "mode": {"enum": ["VXLAN", "VLAN", "BGP"]},
        "netID": {"type": "integer", "minimum": 0},
        "racks": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
        "bgpPeers": {"type": "array", "items": BGP_PEER},
    },
    "allOf": [
        {
            # A VLAN network's netID is its 802.1Q tag (0 = untagged).
            "if": {
                "properties": {"type": {"const": "Underlay"}, "mode": {"enum": ["VLAN"]}},
                "required": ["type"],
            },
            "then": {"properties": {"netID": {"maximum": 4094}}},
        },
        {
            "if": {"properties": {"type": {"const": "Underlay"}}, "required": ["type"], "not": {"required": ["mode"]}},
            "then": {"properties": {"netID": {"maximum": 4094}}},
        },
        {
            "if": {"properties": {"type": {"const": "Overlay"}}, "required": ["type"]},
            "then": {"properties": {"netID": {"maximum": 16777215}}},
        },
    ],
}

SUBNET = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "network", "cidr"],
    "properties": {
        "name": _NAME,
        "network": _NAME,
        "netID": {"type": "integer", "minimum": 0},
        "cidr": _IP,
        "gateway": _IP,
        "start": _IP,
        "end": _IP,
        "reservedIPs": _IP_LIST,
        "excludeIPs": _IP_LIST,
        "autoNatOutgoing": {"type": "boolean"},
        "private": {"type": "boolean"},
    },
}

NODE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "vlan_parent": {"type": "string", "pattern": IFNAME},
        "vxlan_parent": {"type": "string", "pattern": IFNAME},
        "bgp_parent": {"type": "string", "pattern": IFNAME},
        "vlan_mtu": {"type": "integer", "minimum": 68, "maximum": 65535},
    },
}

SWITCH = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rack", "platform"],
    "properties": {
        "rack": {"type": "string", "minLength": 1},
        "platform": {"enum": list(PLATFORMS)},
        # Name of the switch's interface for a VLAN, with {net_id} standing for the tag.
        "vlan_interface": {"type": "string", "pattern": r"\{net_id\}"},
        # FRR only: the instance name (vtysh -N) when the router runs several.
        "frr_pathspace": {"type": "string", "minLength": 1},
    },
}

PLAN_VARIABLES = {
    "hybridlay_networks": {"type": "array", "items": NETWORK},
    "hybridlay_subnets": {"type": "array", "items": SUBNET},
}
HOST_VARIABLES = {"hybridlay_node": NODE, "hybridlay_switch": SWITCH}
