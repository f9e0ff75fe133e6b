"""IP address management: the pure core of hybridlay's IPAM (reference §3).

- :class:`SubnetPool`: one Subnet's addresses (next-fit order, reserved addresses only on
  request, counts as Hybridnet reports them).
- :class:`IPAM`: every network and subnet of the cluster (subnet rotation, private subnets,
  dual stack all-or-nothing, state rebuilt from IPInstances with conflicts reported).
- :func:`parse_range`: a Subnet's range checked and turned into integers, shared with
  :mod:`hybridlay.routes`.

Owners are ``namespace/pod`` strings (:attr:`hybridlay.model.IPInstance.owner_key`).
"""

from hybridlay.ipam.claims import ClaimProblem
from hybridlay.ipam.cluster import IPAM
from hybridlay.ipam.pool import Allocation, SubnetPool
from hybridlay.ipam.spec import MAX_CAPACITY, SubnetRange, parse_range

__all__ = ["IPAM", "MAX_CAPACITY", "Allocation", "ClaimProblem", "SubnetPool", "SubnetRange", "parse_range"]
