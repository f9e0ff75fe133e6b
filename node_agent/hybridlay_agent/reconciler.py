"""Reads what the node has, diffs it against the plan, applies only the difference.

Owned (and therefore changed or removed when not planned): rules with a priority in 1000-1099
pointing at tables 10000-40001; every route in those tables; VXLAN devices named
``<parent>.vxlan<VNI>``/``vxlan<VNI>``, their FDB entries and permanent neighbours; proxy entries on
those devices, for addresses inside a cluster subnet, or for the pods' IPv6 gateway on their host
veths; noprefixroute scope-link addresses inside a cluster subnet on VLAN devices; ``HYBRIDLAY-*``
ipsets and iptables chains. VLAN devices are
created but never deleted (an administrator's ``eth0.100`` looks exactly like ours). Anything else
is never touched.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from hybridlay import devices, names
from hybridlay.dataplane.state import DesiredState, Sysctl, VxlanLink, diff
from hybridlay_agent import netfilter
from hybridlay_agent.netlink import KernelError, Netlink

log = logging.getLogger(__name__)
VXLAN_NAME = re.compile(r"^(.+\.)?vxlan\d+$")


@dataclass
class Result:
    writes: int = 0
    pending: list[str] = field(default_factory=list)  # planned objects whose device does not exist yet


class Reconciler:
    def __init__(self, netlink: Netlink | None = None, proc_sys: Path = Path("/proc/sys")) -> None:
        self.nl = netlink or Netlink()
        self.proc_sys = proc_sys

    def close(self) -> None:
        self.nl.close()

    def reconcile(self, desired: DesiredState) -> Result:
        start = self.nl.writes
        result = Result()
        self._links(desired)
        result.writes += self._sysctls(desired.sysctls, result)
        self._addresses(desired, result)
        self._routes_and_rules(desired, result)
        self._neighbours(desired, result)
        self.nl.flush()
        result.writes += self._netfilter(desired)
        self._remove_stale_links(desired)
        result.writes += self.nl.writes - start
        return result

    def _present(self, dev: str | None, what: object, result: Result) -> bool:
        if self.nl.has(dev):
            return True
        result.pending.append(str(what))
        return False

    def _links(self, desired: DesiredState) -> None:
        names = self.nl.refresh()
        for vlan in sorted(desired.vlan_links, key=lambda v: v.name):
            if vlan.name not in names:
                self.nl.add_vlan(vlan)
        for want in sorted(desired.vxlan_links, key=lambda v: v.name):
            have = self.nl.link(want.name)
            if have is not None and have.vxlan is None:
                raise KernelError(f"{want.name} exists but is not a VXLAN device", 0, "wrong kind of device")
            if have is not None and have.vxlan is not None and not _same_tunnel(have.vxlan, want):
                self.nl.delete_link(want.name)
                have = None
            if have is None:
                self.nl.add_vxlan(want)
                self.nl.refresh()
                have = self.nl.link(want.name)
                if have is None:
                    raise KernelError(f"add vxlan {want.name}", 0, "the device vanished right after creation")
            if have.mtu != want.mtu:
                self.nl.set_link(want.name, mtu=want.mtu)
            if (have.mac or "").lower() != want.mac:
                self.nl.set_link(want.name, address=want.mac)
            if not have.up:
                self.nl.set_link(want.name, state="up")
        for vlan in desired.vlan_links:
            link = self.nl.link(vlan.name)
            if link is not None and not link.up:
                self.nl.set_link(vlan.name, state="up")
        self.nl.refresh()

    def _remove_stale_links(self, desired: DesiredState) -> None:
        wanted = {v.name for v in desired.vxlan_links}
        for name in list(self.nl.names()):
            if VXLAN_NAME.match(name) and name not in wanted:
                link = self.nl.link(name)
                if link is not None and link.kind == "vxlan":
                    self.nl.delete_link(name)

    def _sysctls(self, sysctls: frozenset[Sysctl], result: Result) -> int:
        writes = 0
        for sysctl in sorted(sysctls, key=lambda s: s.path):
            path = self.proc_sys / sysctl.path
            try:
                if path.read_text().strip() == sysctl.value:
                    continue
                log.debug("sysctl: %s = %s", sysctl.path, sysctl.value)
                path.write_text(sysctl.value + "\n")
                writes += 1
            except FileNotFoundError:
                if sysctl.device is None:
                    raise
                result.pending.append(str(sysctl))
        return writes

    def _addresses(self, desired: DesiredState, result: Result) -> None:
        devices = {a.dev for a in desired.addresses} | desired.vlan_devices
        prefixes = [ipaddress.ip_network(p) for p in desired.owned_prefixes]
        current = {
            a
            for a in self.nl.enhanced_addresses(devices)
            if any(ipaddress.ip_interface(a.address).ip in n for n in prefixes)
        }
        change = diff(current, desired.addresses)
        for address in change.remove:
            self.nl.delete_address(address)
        for address in change.add:
            if self._present(address.dev, address, result):
                self.nl.add_address(address)
        kept = [a for a in desired.addresses if a in current]  # new ones had theirs deleted just above
        if kept:
            local = self.nl.local_routes()
            for address in kept:
                if str(ipaddress.ip_interface(address.address).ip) in local:
                    self.nl.delete_local_route(address)

    def _routes_and_rules(self, desired: DesiredState, result: Result) -> None:
        routes = diff(self.nl.routes(), desired.routes)
        # Direct routes first: the kernel checks a gateway against the routes already in the table.
        for route in sorted((*routes.add, *routes.change), key=lambda r: r.gateway is not None):
            if self._present(route.dev, route, result):
                self.nl.replace_route(route)
        rules = diff(self.nl.rules(), desired.rules)
        for rule in rules.add:
            self.nl.add_rule(rule)
        for rule in rules.remove:
            self.nl.delete_rule(rule)
        for route in routes.remove:
            self.nl.delete_route(route)

    def _neighbours(self, desired: DesiredState, result: Result) -> None:
        tunnels = [v.name for v in desired.vxlan_links]
        fdb = diff(self.nl.fdb(tunnels), desired.fdb)
        for entry in fdb.add:
            if self._present(entry.dev, entry, result):
                self.nl.append_fdb(entry)
        for entry in fdb.remove:
            self.nl.delete_fdb(entry)
        neighbours = diff(self.nl.neighbours(tunnels), desired.neighbours)
        for neighbour in (*neighbours.add, *neighbours.change):
            if self._present(neighbour.dev, neighbour, result):
                self.nl.replace_neighbour(neighbour)
        for neighbour in neighbours.remove:
            self.nl.delete_neighbour(neighbour)
        prefixes = [ipaddress.ip_network(p) for p in desired.owned_prefixes]
        tunnel_set = set(tunnels)
        current = {
            p
            for p in self.nl.proxy_neighbours()
            if p.dev in tunnel_set
            or any(ipaddress.ip_address(p.ip) in n for n in prefixes)
            or (p.dev.startswith(devices.HOST_VETH_PREFIX) and p.ip == names.POD_GATEWAY_V6)
        }
        proxies = diff(current, desired.proxy_neighbours)
        for proxy in proxies.add:
            if self._present(proxy.dev, proxy, result):
                self.nl.add_proxy_neighbour(proxy)
        for proxy in proxies.remove:
            self.nl.delete_proxy_neighbour(proxy)

    def _netfilter(self, desired: DesiredState) -> int:
        writes = 0
        ipset_script, destroy = netfilter.ipset_restore_script(netfilter.read_ipsets(), set(desired.ipsets))
        if ipset_script:
            log.debug("ipset restore:\n%s", ipset_script)
            netfilter.restore_ipsets(ipset_script)
            writes += 1
        for family in (4, 6):
            script = netfilter.iptables_restore_script(
                netfilter.read_chains(family), [c for c in desired.chains if c.family == family]
            )
            if script:
                log.debug("iptables-restore (IPv%d):\n%s", family, script)
                netfilter.restore_chains(family, script)
                writes += 1
        for name in destroy:
            netfilter.destroy_ipset(name)
            writes += 1
        return writes


def _same_tunnel(have: VxlanLink, want: VxlanLink) -> bool:
    """Attributes a VXLAN device cannot change in place."""
    return (have.vni, have.parent, have.local, have.port, have.learning) == (
        want.vni,
        want.parent,
        want.local,
        want.port,
        want.learning,
    )
