#!/bin/sh
# switch-bgp.sh ASN ROUTER_ID NEIGHBOR_ADDRESS:ASN...: the lab switch's BGP (FRR's bgpd): its AS,
# eBGP sessions with each neighbor (its rack's BGP nodes, the other switches), what it learns passed
# on (no policy needed). The lab's wiring, as a network team would configure a ToR: the collection
# only manages VLAN subnets' static routes. Prints "changed" if it did anything, else "unchanged".
set -eu
asn=$1 router_id=$2
shift 2
changed=
if ! grep -q '^bgpd=yes' /etc/frr/daemons; then
  sed -i 's/^bgpd=no/bgpd=yes/' /etc/frr/daemons
  systemctl restart frr.service
  changed=1
fi
config=$(vtysh -c 'show running-config')
want="router bgp $asn"
missing=
printf '%s\n' "$config" | grep -qx "$want" || missing=1
printf '%s\n' "$config" | grep -q "bgp router-id $router_id" || missing=1
for neighbor in "$@"; do
  printf '%s\n' "$config" | grep -q "neighbor ${neighbor%:*} remote-as ${neighbor#*:}$" || missing=1
done
if [ -n "$missing" ]; then
  args="-c 'configure terminal' -c '$want' -c 'bgp router-id $router_id' -c 'no bgp ebgp-requires-policy'"
  args="$args -c 'no bgp network import-check'"
  for neighbor in "$@"; do
    args="$args -c 'neighbor ${neighbor%:*} remote-as ${neighbor#*:}'"
  done
  eval vtysh $args -c "'end'" -c "'write memory'" >/dev/null
  changed=1
fi
[ -n "$changed" ] && echo changed || echo unchanged
