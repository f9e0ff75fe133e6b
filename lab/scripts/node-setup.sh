#!/bin/sh
# node-setup.sh SERVICE_IP API_ADDRESS:PORT: a lab node's groundwork for containerd and kubelet.
# - the CNI folders, with Debian's reference plugins linked into containerd's (hybridlay's conflist
#   chains bandwidth and portmap; containerd calls loopback itself);
# - / shared with the pods' mounts (systemd shares it on a server, not in a container): the pods'
#   network namespaces in /var/run/netns reach the agent's container only so;
# - the `kubernetes` Service's address sent to the API server, as kube-proxy would (there is none in
#   the lab): in-cluster clients (the operator, the agents) find the API there.
# Both as systemd units. Prints "changed" if it did anything, else "unchanged".
set -eu
service_ip=$1 api=$2
changed=
mkdir -p /etc/containerd /opt/cni/bin /etc/cni/net.d /var/lib/kubelet
for plugin in /usr/lib/cni/*; do
  [ "$(readlink "/opt/cni/bin/${plugin##*/}" || true)" = "$plugin" ] || { ln -sfn "$plugin" /opt/cni/bin/; changed=1; }
done

unit() {  # name, then the unit's text on stdin
  new=$(cat)
  if [ "$(cat "/etc/systemd/system/$1.service" 2>/dev/null)" != "$new" ]; then
    printf '%s\n' "$new" >"/etc/systemd/system/$1.service"
    systemctl daemon-reload
    systemctl enable -q "$1.service"
    systemctl restart "$1.service"
    changed=1
  elif ! systemctl is-active -q "$1.service"; then
    systemctl start "$1.service"
    changed=1
  fi
}

unit hybridlay-lab-shared-mounts <<UNIT
# Managed by the lab (lab/scripts/node-setup.sh).
[Unit]
Description=Mounts under / shared with the pods (as systemd shares them on a server)
DefaultDependencies=no
Before=containerd.service kubelet.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --make-rshared /
[Install]
WantedBy=multi-user.target
UNIT

dnat="-d $service_ip/32 -p tcp --dport 443 -j DNAT --to-destination $api"
unit hybridlay-lab-kubernetes-service <<UNIT
# Managed by the lab (lab/scripts/node-setup.sh).
[Unit]
Description=The kubernetes Service's address to the API server (kube-proxy's part for it)
After=network.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'iptables -t nat -C OUTPUT $dnat 2>/dev/null || iptables -t nat -A OUTPUT $dnat'
ExecStop=/bin/sh -c 'iptables -t nat -D OUTPUT $dnat || true'
[Install]
WantedBy=multi-user.target
UNIT

[ -n "$changed" ] && echo changed || echo unchanged
