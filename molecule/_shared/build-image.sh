#!/usr/bin/env bash
# Builds the Debian 12 image the molecule scenarios run in, once: debootstrap (no registry here),
# plus python3 (with apt bindings and pyroute2) for Ansible and its modules, iproute2, kmod and
# systemd (the lab's nodes run it as PID 1, as servers do; molecule's containers just sleep).
# Cached as a podman image.
set -euo pipefail
image="${1:-localhost/hybridlay-debian:12-systemd}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(dirname "$0")/containers.conf}"
if podman image exists "$image"; then
  exit 0
fi
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
  | grep -oE "https?://[^ ]*debian/?( |$)" | grep -v security | head -n1 | tr -d " " || true)
mirror="${mirror:-http://deb.debian.org/debian}"
root=$(mktemp -d /var/tmp/hybridlay-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-apt,python3-pyroute2,iproute2,kmod,procps,systemd,systemd-sysv \
  bookworm "$root" "$mirror" >/dev/null
# Runtime state the installation left (e.g. systemd-networkd's /run/systemd/netif) would tell the
# modules a network stack runs where none does.
rm -rf "${root:?}"/run/* "${root:?}"/tmp/*
tar -C "$root" -c . | podman import --change 'CMD ["sleep", "infinity"]' - "$image" >/dev/null
