#!/bin/sh
# Joins two running lab containers with a veth pair: link.sh CONTAINER_A IFNAME_A CONTAINER_B IFNAME_B.
# Prints "changed" when it made the pair, "unchanged" when CONTAINER_A already has IFNAME_A (the pair
# lives and dies with the containers' network namespaces: nothing is left in the root namespace).
# The containers' namespaces are entered with nsenter (a podman exec per step costs a second).
set -eu
podman="$(dirname "$(readlink -f "$0")")/podman"
a=$1 a_if=$2 b=$3 b_if=$4
a_pid=$("$podman" inspect -f '{{.State.Pid}}' "$a")
b_pid=$("$podman" inspect -f '{{.State.Pid}}' "$b")
in_a() { nsenter --net="/proc/$a_pid/ns/net" "$@"; }
in_b() { nsenter --net="/proc/$b_pid/ns/net" "$@"; }
if in_a ip link show "$a_if" >/dev/null 2>&1; then
  echo unchanged
  exit 0
fi
# Temporary names in the root namespace, unique per pair, moved out at once.
tmp_a="hl$(printf '%s' "$a$a_if$b$b_if" | cksum | cut -c1-8)a"
tmp_b="${tmp_a%a}b"
ip link add "$tmp_a" type veth peer name "$tmp_b"
if ! { ip link set "$tmp_a" netns "$a_pid" && ip link set "$tmp_b" netns "$b_pid"; }; then
  ip link del "$tmp_a" 2>/dev/null || true
  exit 1
fi
in_a ip link set "$tmp_a" name "$a_if"
in_a ip link set "$a_if" up
in_b ip link set "$tmp_b" name "$b_if"
in_b ip link set "$b_if" up
echo changed
