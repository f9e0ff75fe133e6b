# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""frr_static_routes, the pure part: parse FRR's static routes, and wanted vs existing -> vtysh commands.

FRR has no vendor resource module, so this follows their shape: a route is
``{dest, interface}`` or ``{dest, next_hop}`` (or both), and the states mean what they mean for
cisco.ios.ios_static_routes (merged adds, overridden also removes the others, deleted removes
the listed routes or, with no config, every static route).
"""

from __future__ import annotations

import ipaddress
import re

_ROUTE = re.compile(r"^(ip|ipv6) route (\S+)((?: \S+)*)$")
_OPTION_WORDS = ("tag", "label", "table", "nexthop-vrf", "vrf", "onlink", "color")


def _is_address(token):
    try:
        ipaddress.ip_address(token)
        return True
    except ValueError:
        return False


def normalize(route):
    """A route in canonical form; raises ValueError naming what is wrong."""
    try:
        dest = str(ipaddress.ip_network(route["dest"]))
    except (KeyError, ValueError):
        raise ValueError(f"dest: {route.get('dest')} is not a network in CIDR form") from None
    next_hop, interface = route.get("next_hop"), route.get("interface")
    if not next_hop and not interface:
        raise ValueError(f"route {dest}: needs a next_hop or an interface")
    if next_hop and not _is_address(next_hop):
        raise ValueError(f"route {dest}: next_hop {next_hop} is not an IP address")
    return {"dest": dest, "next_hop": next_hop or None, "interface": interface or None}


def parse(text):
    """Static routes of ``show running-config`` output (other lines ignored)."""
    routes = []
    for line in text.splitlines():
        match = _ROUTE.match(line.strip())
        if not match:
            continue
        tokens = match.group(3).split()
        next_hop = tokens.pop(0) if tokens and _is_address(tokens[0]) else None
        # Words after the next hop (distance, tag, label, ...) are not ours to manage.
        interface = tokens[0] if tokens and not tokens[0].isdigit() and tokens[0] not in _OPTION_WORDS else None
        routes.append({"dest": str(ipaddress.ip_network(match.group(2))), "next_hop": next_hop, "interface": interface})
    return routes


def route_line(route):
    family = "ipv6" if ":" in route["dest"] else "ip"
    hops = " ".join(x for x in (route["next_hop"], route["interface"]) if x)
    return "{} route {} {}".format(family, route["dest"], hops)


def commands(want, have, state):
    """vtysh configuration commands (without ``configure terminal``) taking ``have`` to ``want``."""
    have_lines = [route_line(r) for r in have]
    want_lines = [route_line(r) for r in want]
    if state == "deleted":
        doomed = have_lines if not want else [line for line in want_lines if line in have_lines]
        return ["no " + line for line in doomed]
    added = [line for line in want_lines if line not in have_lines]
    if state == "merged":
        return added
    if state == "overridden":
        return ["no " + line for line in have_lines if line not in want_lines] + added
    raise ValueError(f"unknown state {state}")


def after(want, have, state):
    """The routes once ``commands`` ran."""
    wanted = [route_line(r) for r in want]
    if state == "deleted":
        return [r for r in have if want and route_line(r) not in wanted]
    if state == "overridden":
        return list(want)
    return list(have) + [r for r in want if route_line(r) not in [route_line(h) for h in have]]
