#!/bin/sh
# The lab switch's data plane: switch.sh NODE_NET_ADDR UNDERLAY_GATEWAY_ADDR EXTERNAL_ADDR [NODE_NET_ADDR6].
# Bridge br-nodes (ports n-*) holds the node network's address, bridge vlan0 (ports t-*: the rack's
# trunk, untagged) the underlay gateway, port ext the external segment. Prints "changed" if it did anything.
set -eu
changed=
run() { "$@"; changed=1; }
bridge() {  # name address
  ip link show "$1" >/dev/null 2>&1 || run ip link add "$1" type bridge
  ip -br addr show dev "$1" | grep -qw "$2" || run ip addr add "$2" dev "$1"
  ip link show "$1" | grep -q "state UP\|,UP" || run ip link set "$1" up
}
port() {  # port bridge
  ip link show "$1" | grep -q "master $2" || run ip link set "$1" master "$2"
}
bridge br-nodes "$1"
if [ -n "${4:-}" ]; then
  ip -br addr show dev br-nodes | grep -qw "$4" || run ip addr add "$4" dev br-nodes nodad
fi
bridge vlan0 "$2"
for p in $(ip -o link show | sed -n 's/^[0-9]*: \([nt]-[^@:]*\).*/\1/p'); do
  case "$p" in n-*) port "$p" br-nodes ;; t-*) port "$p" vlan0 ;; esac
done
ip -br addr show dev ext | grep -qw "$3" || run ip addr add "$3" dev ext
# The lab hosts' way to the package mirror: out of podman's interface, masqueraded.
iptables -t nat -C POSTROUTING -o eth0 -j MASQUERADE 2>/dev/null || run iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || run sysctl -qw net.ipv4.ip_forward=1
[ -n "$changed" ] && echo changed || echo unchanged
