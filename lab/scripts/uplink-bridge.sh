#!/bin/sh
# uplink-bridge.sh BRIDGE PORT: a Linux bridge over the node's uplink veth. The node's VLAN parent is
# the bridge rather than the veth itself because vlan_interface's netlink facts resolve a link's
# IFLA_LINK in the node's namespace, and a veth's IFLA_LINK is its peer's index in the switch's
# namespace (reported as a defect of plugins/module_utils/netlink.py). Prints "changed" if it did anything.
set -eu
changed=
ip link show "$1" >/dev/null 2>&1 || { ip link add "$1" type bridge; changed=1; }
ip link show "$2" | grep -q "master $1" || { ip link set "$2" master "$1"; changed=1; }
ip link show "$1" | grep -q ",UP" || { ip link set "$1" up; changed=1; }
[ -n "$changed" ] && echo changed || echo unchanged
