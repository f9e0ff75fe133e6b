#!/bin/sh
# A lab host's link: host.sh IFNAME ADDRESS GATEWAY PREFIX... (the address on IFNAME, each PREFIX
# routed via GATEWAY). Prints "changed" if it did anything.
set -eu
dev=$1 address=$2 gateway=$3
shift 3
changed=
ip -br addr show dev "$dev" | grep -qw "$address" || { ip addr add "$address" dev "$dev"; changed=1; }
for prefix in "$@"; do
  ip route show "$prefix" | grep -q "via $gateway " || { ip route replace "$prefix" via "$gateway" dev "$dev"; changed=1; }
done
[ -n "$changed" ] && echo changed || echo unchanged
