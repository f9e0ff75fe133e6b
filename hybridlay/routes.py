"""Throw routes: the parts of a subnet's CIDR that are not pod addresses (reference §5).

The overlay table (40000) sends a subnet's CIDR into the VXLAN device; ``throw`` routes for the
blocks that hold no pods make the kernel fall through to the next table for them, so the
gateway, excluded addresses and the rest of a shared CIDR stay reachable on the underlay.

Rule, as Hybridnet computes it (``FindSubnetExcludeIPBlocks``) and as its example shows:
the blocks cover ``CIDR - [start, end]`` plus the gateway plus every excluded address, merged into
the fewest CIDR blocks. A bound that is not set counts as the CIDR's own first or last address
(so a subnet without start and end throws only its gateway and excluded addresses). A gateway
outside start-end therefore lies inside one of the blocks and gets no block of its own:
192.168.3.0/24, gateway .1, range .100-.200 gives .0/26, .64/27, .96/30, .201/32, .202/31,
.204/30, .208/28, .224/27. Reserved addresses are pod addresses: never thrown.
"""

from __future__ import annotations

from netaddr import IPAddress, IPRange, IPSet

from hybridlay.ipam.spec import parse_range
from hybridlay.model import Subnet


def throw_route_blocks(subnet: Subnet) -> list[str]:
    """The CIDR blocks to throw for ``subnet``, in address order (InvalidValue on a bad range)."""
    spec = parse_range(subnet)
    first = spec.start if spec.start_given else int(spec.cidr.network_address)
    last = spec.end if spec.end_given else int(spec.cidr.broadcast_address)
    blocks = IPSet([str(spec.cidr)])
    blocks.remove(IPRange(spec.text(first), spec.text(last)))
    for value in (*spec.excluded, *(() if spec.gateway is None else (spec.gateway,))):
        blocks.add(IPAddress(value, spec.version))
    return [str(block) for block in blocks.iter_cidrs()]
