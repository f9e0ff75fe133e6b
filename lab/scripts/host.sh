#!/bin/sh
# A lab host's link: host.sh IFNAME ADDRESS GATEWAY PREFIX... (the address on IFNAME, each PREFIX
# routed via GATEWAY; IPv4 or IPv6, as ADDRESS). Prints "changed" if it did anything.
set -eu
dev=$1 address=$2 gateway=$3
shift 3
changed=
case "$address" in *:*) nodad=nodad ;; *) nodad= ;; esac  # an IPv6 address usable at once
ip -br addr show dev "$dev" | grep -qw "$address" || { ip addr add "$address" dev "$dev" $nodad; changed=1; }
case "$address" in *:*) family=-6 ;; *) family=-4 ;; esac
for prefix in "$@"; do
  ip "$family" route show "$prefix" | grep -q "via $gateway " || { ip "$family" route replace "$prefix" via "$gateway" dev "$dev"; changed=1; }
done
[ -n "$changed" ] && echo changed || echo unchanged
