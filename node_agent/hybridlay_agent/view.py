"""The agent's in-memory view of the cluster, fed by the watches; the CNI server queries it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hybridlay.addresses import instance_name
from hybridlay.dataplane.planner import ClusterState, instance_node, instance_pod
from hybridlay.errors import InvalidValue
from hybridlay.model import (
    IPFamily,
    IPInstance,
    Network,
    NetworkMode,
    NodeInfo,
    Subnet,
    ipinstance_from_resource,
    network_from_resource,
    nodeinfo_from_resource,
    subnet_from_resource,
)
from hybridlay_agent.settings import Settings

KINDS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "networks": network_from_resource,
    "subnets": subnet_from_resource,
    "nodeinfos": nodeinfo_from_resource,
    "ipinstances": ipinstance_from_resource,
}
Instances = list[tuple[IPInstance, Subnet, Network]]
# (namespace, pod) → the pod's resolved ``ip-family`` annotation, or None when it cannot be known.
PodFamilyLookup = Callable[[str, str], Awaitable[IPFamily | None]]


class ClusterView:
    """Networks, Subnets, NodeInfos and IPInstances as last seen; lives on the agent's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.objects: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.node_labels: dict[str, str] = {}
        self.synced = asyncio.Event()
        self.reconcile_requested = asyncio.Event()
        self._listed: set[str] = set()
        self._changed = asyncio.Condition()
        self.pod_family: PodFamilyLookup | None = None  # set by the API edge (hybridlay_agent.kube.Kube)

    # --- the CNI server's interface --------------------------------------------------------------

    def node_name(self) -> str:
        return self.settings.node_name

    def parent_interface(self, mode: NetworkMode) -> str:
        if mode is NetworkMode.VXLAN:
            return self.settings.vxlan_parent
        if mode in (NetworkMode.BGP, NetworkMode.GLOBAL_BGP):
            return self.settings.bgp_parent or self.settings.vlan_parent
        return self.settings.vlan_parent

    def vtep_version(self) -> int:
        """IP version of this node's VTEP (its NodeInfo, else the setting; IPv4 until known)."""
        info = self.objects["nodeinfos"].get(self.node_name())
        vtep = info.vtep.ip if info is not None and info.vtep is not None else self.settings.vtep_ip
        return 6 if vtep and ":" in vtep else 4

    def request_reconcile(self) -> None:
        self.reconcile_requested.set()

    async def pod_addresses(self, namespace: str, pod: str, timeout: float) -> Instances:
        """The pod's addresses bound to this node, waiting (bounded) until all exist; TimeoutError else.

        The operator creates a dual-stack pod's IPInstances one after the other, so the first can
        arrive alone. How many to wait for comes from the pod's ``ip-family`` annotation (the
        mutating webhook writes the resolved family there), asked only when a family is missing.
        Without an answer (no lookup, no such pod, no annotation) the addresses present once the
        first exists are the pod's: an unknown count is not guessed by waiting an arbitrary time.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        found = await self._wait_until(namespace, pod, bool, deadline)
        if len(_versions(found)) == 1 and self.pod_family is not None:
            family = await asyncio.wait_for(self.pod_family(namespace, pod), self._left(deadline))
            if family is not None:
                wanted = set(family.versions)
                found = await self._wait_until(namespace, pod, lambda present: wanted <= _versions(present), deadline)
        return found

    async def _wait_until(
        self, namespace: str, pod: str, ready: Callable[[Instances], bool], deadline: float
    ) -> Instances:
        def is_ready() -> bool:
            return ready(self._pod_addresses(namespace, pod))

        async with self._changed:
            if not is_ready():  # wait_for with no time left times out even on a true predicate
                await asyncio.wait_for(self._changed.wait_for(is_ready), self._left(deadline))
            return self._pod_addresses(namespace, pod)

    @staticmethod
    def _left(deadline: float) -> float:
        return max(0.0, deadline - asyncio.get_running_loop().time())

    def remote_vtep_mac(self, ip: str) -> str | None:
        """The VTEP MAC of the other node holding ``ip`` (IPInstances are named after their address)."""
        try:
            instance = self.objects["ipinstances"].get(instance_name(ip))
        except ValueError:
            return None
        node = instance_node(instance) if instance is not None else None
        if node is None or node == self.node_name():
            return None
        info = self.objects["nodeinfos"].get(node)
        return info.vtep.mac.lower() if info is not None and info.vtep is not None and info.vtep.mac else None

    def _pod_addresses(self, namespace: str, pod: str) -> Instances:
        found = []
        for instance in self.objects["ipinstances"].values():
            if instance_pod(instance) != (namespace, pod) or instance_node(instance) != self.node_name():
                continue
            if instance.terminating:
                continue
            subnet = self.objects["subnets"].get(instance.subnet)
            network = self.objects["networks"].get(instance.network)
            if subnet is not None and network is not None:
                found.append((instance, subnet, network))
        return sorted(found, key=lambda t: int(t[0].address.version or 0))

    # --- fed by the watches ----------------------------------------------------------------------

    async def replace(self, kind: str, resources: list[Mapping[str, Any]]) -> None:
        """A full list of ``kind``: the view becomes exactly that."""
        self.objects[kind] = dict(filter(None, (_parsed(kind, r) for r in resources)))
        self._listed.add(kind)
        if self._listed == set(KINDS):
            self.synced.set()
        await self._notify()

    async def apply(self, kind: str, event_type: str, resource: Mapping[str, Any]) -> None:
        parsed = _parsed(kind, resource)
        if parsed is None:
            return
        name, obj = parsed
        if event_type == "DELETED":
            self.objects[kind].pop(name, None)
        else:
            self.objects[kind][name] = obj
        await self._notify()

    async def _notify(self) -> None:
        self.request_reconcile()
        async with self._changed:
            self._changed.notify_all()

    def snapshot(self) -> ClusterState:
        return ClusterState(
            networks=tuple(self.objects["networks"].values()),
            subnets=tuple(self.objects["subnets"].values()),
            nodeinfos=tuple(self.objects["nodeinfos"].values()),
            ipinstances=tuple(self.objects["ipinstances"].values()),
        )


def _versions(instances: Instances) -> set[int]:
    return {6 if ":" in instance.address.ip else 4 for instance, _, _ in instances}


def _parsed(kind: str, resource: Mapping[str, Any]) -> tuple[str, Network | Subnet | NodeInfo | IPInstance] | None:
    try:
        obj = KINDS[kind](resource)
    except InvalidValue:
        return None  # the operator's admission rejects such objects; one must not stop the agent
    return obj.name, obj
