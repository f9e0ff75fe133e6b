"""Node data-plane planning: desired state as plain frozen data, and diffing (no I/O)."""

from hybridlay.dataplane.planner import ClusterState, NodeFacts, plan
from hybridlay.dataplane.state import DesiredState, diff

__all__ = ["ClusterState", "DesiredState", "NodeFacts", "diff", "plan"]
