"""Moving a cluster from Hybridnet: its objects (``networking.alibaba.com/v1``) planned as ours.

Pure: :func:`plan_migration` reads what the edge listed (Hybridnet's objects, ours, the nodes'
labels, the namespaces' UIDs) and returns what to create, what is there already, and what it
refuses, each refusal naming the object and why. A plan with a refusal is applied not at all, so
nothing is half-migrated; a plan made after a complete migration creates nothing.

What changes on the way:
- a BGP peer's plain ``password`` moves into a Secret (``passwordSecretRef``), where the node agent
  reads it;
- a namespaced IPInstance becomes our cluster-scoped one, named by its address (the API server then
  enforces one holder per address, which Hybridnet's could not), bound to the same pod, workload and
  ordinal, owned by its pod's Namespace;
- statuses are left to the operator, which computes them.

Every object is checked by the rules the admission webhooks apply, in the order it is created: a
cluster migrates before the hybridlay operator (and its webhooks) start, so that the operator finds
the running pods' addresses claimed instead of giving them new ones.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridlay import model, names, validation
from hybridlay.addresses import instance_name, parse_ip
from hybridlay.errors import InvalidValue

HYBRIDNET_GROUP = "networking.alibaba.com"
HYBRIDNET_VERSION = "v1"
# Hybridnet's plurals (NodeInfo's is "nodeinfoes"), by kind, in the order the plan creates ours.
HYBRIDNET_PLURALS = {"Network": "networks", "Subnet": "subnets", "NodeInfo": "nodeinfoes", "IPInstance": "ipinstances"}
KINDS = tuple(HYBRIDNET_PLURALS)
KIND_SECRET = "Secret"  # noqa: S105 (a kind, not a secret)


@dataclass(frozen=True)
class Refusal:
    kind: str
    source: str  # the Hybridnet object: its name, ``namespace/name`` for an IPInstance
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.source}: {self.reason}"


@dataclass(frozen=True)
class Cluster:
    """What the plan reads. Objects are lists of resource dicts by kind; ``ours`` also holds the
    Secrets of ``secret_namespace`` (kind ``Secret``)."""

    hybridnet: Mapping[str, Sequence[Mapping[str, Any]]]
    ours: Mapping[str, Sequence[Mapping[str, Any]]]
    node_labels: Mapping[str, Mapping[str, str]]
    namespace_uids: Mapping[str, str]
    secret_namespace: str


@dataclass
class Plan:
    create: list[dict[str, Any]] = field(default_factory=list)  # in the order to create them
    unchanged: list[str] = field(default_factory=list)  # "Kind name" of what is there already
    refused: list[Refusal] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The plan as a person reads it, one object a line."""
        created = [f"create {r['kind']} {_display(r)}" for r in self.create]
        return [*created, *(f"unchanged {u}" for u in self.unchanged), *(f"refuse {r}" for r in self.refused)]


def _display(resource: Mapping[str, Any]) -> str:
    meta = resource.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta.get("name"))


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def plan_migration(cluster: Cluster) -> Plan:
    plan = Plan()
    networks = _plan_networks(cluster, plan)
    subnets = _plan_subnets(cluster, networks, plan)
    _plan_nodeinfos(cluster, plan)
    _plan_ipinstances(cluster, subnets, plan)
    return plan


# --- Networks and their passwords ---------------------------------------------------------------------


def bgp_secret_name(network: str) -> str:
    return f"hybridlay-bgp-{network}"


def _network_resources(obj: Mapping[str, Any], secret_namespace: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Our Network for Hybridnet's, and the Secret its plain peer passwords move into (or None)."""
    name = _name(obj)
    spec = copy.deepcopy(dict(obj.get("spec") or {}))
    passwords: dict[str, str] = {}
    for index, peer in enumerate(((spec.get("config") or {}).get("bgpPeers")) or []):
        if isinstance(peer, dict) and "password" in peer:
            key = f"peer-{index}"
            passwords[key] = str(peer.pop("password"))
            peer["passwordSecretRef"] = {"name": bgp_secret_name(name), "key": key, "namespace": secret_namespace}
    resource = {"apiVersion": names.API_VERSION, "kind": names.KIND_NETWORK, "metadata": {"name": name}, "spec": spec}
    secret = None
    if passwords:
        secret = {
            "apiVersion": "v1",
            "kind": KIND_SECRET,
            "metadata": {"name": bgp_secret_name(name), "namespace": secret_namespace},
            "type": "Opaque",
            "stringData": passwords,
        }
    return resource, secret


def _plan_networks(cluster: Cluster, plan: Plan) -> dict[str, model.Network]:
    """Hybridnet's networks; returns every network the cluster will have (ours and planned)."""
    ours = {n.name: n for n in _ours(cluster, names.KIND_NETWORK, model.network_from_resource)}
    known = dict(ours)
    secrets = {_name(s): s for s in cluster.ours.get(KIND_SECRET, [])}
    for obj in cluster.hybridnet.get("Network", []):
        name = _name(obj)
        resource, secret = _network_resources(obj, cluster.secret_namespace)
        try:
            network = model.network_from_resource(resource)
        except InvalidValue as e:
            plan.refused.append(Refusal("Network", name, str(e)))
            continue
        if name in ours:
            if _without_status(ours[name]) == network:
                plan.unchanged.append(f"Network {name}")
                _plan_secret(secret, secrets, plan)
            else:
                plan.refused.append(Refusal("Network", name, "a hybridlay Network of that name differs from it"))
            continue
        violations = validation.validate_network_create(network, known.values(), cluster.node_labels)
        if violations:
            plan.refused.append(Refusal("Network", name, "; ".join(map(str, violations))))
            continue
        _plan_secret(secret, secrets, plan)
        plan.create.append(model.network_to_resource(network))
        known[name] = network
    return known


def _plan_secret(secret: dict[str, Any] | None, existing: Mapping[str, Mapping[str, Any]], plan: Plan) -> None:
    if secret is None:
        return
    name = _name(secret)
    found = existing.get(name)
    if found is None:
        plan.create.append(secret)
    elif _secret_data(found) == secret["stringData"]:
        plan.unchanged.append(f"Secret {secret['metadata']['namespace']}/{name}")
    else:
        plan.refused.append(Refusal(KIND_SECRET, name, "exists with other passwords: remove it or make it match"))


def _secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
    return {**data, **(secret.get("stringData") or {})}


# --- Subnets and NodeInfos ---------------------------------------------------------------------------------


def _plan_subnets(cluster: Cluster, networks: Mapping[str, model.Network], plan: Plan) -> dict[str, model.Subnet]:
    existing = {s.name: s for s in _ours(cluster, names.KIND_SUBNET, model.subnet_from_resource)}
    accepted = dict(existing)
    for obj in cluster.hybridnet.get("Subnet", []):
        name = _name(obj)
        resource = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND_SUBNET,
            "metadata": {"name": name},
            "spec": copy.deepcopy(dict(obj.get("spec") or {})),
        }
        try:
            subnet = model.subnet_from_resource(resource)
        except InvalidValue as e:
            plan.refused.append(Refusal("Subnet", name, str(e)))
            continue
        if name in existing:
            if _without_status(existing[name]) == subnet:
                plan.unchanged.append(f"Subnet {name}")
            else:
                plan.refused.append(Refusal("Subnet", name, "a hybridlay Subnet of that name differs from it"))
            continue
        violations = validation.validate_subnet_create(subnet, networks, accepted.values())
        if violations:
            plan.refused.append(Refusal("Subnet", name, "; ".join(map(str, violations))))
            continue
        plan.create.append(model.subnet_to_resource(subnet))
        accepted[name] = subnet
    return accepted


def _plan_nodeinfos(cluster: Cluster, plan: Plan) -> None:
    existing = {i.name: i for i in _ours(cluster, names.KIND_NODEINFO, model.nodeinfo_from_resource)}
    for obj in cluster.hybridnet.get("NodeInfo", []):
        name = _name(obj)
        try:
            info = model.nodeinfo_from_resource({"metadata": {"name": name}, "spec": obj.get("spec") or {}})
        except InvalidValue as e:
            plan.refused.append(Refusal("NodeInfo", name, str(e)))
            continue
        if name in existing:
            # The node's agent keeps its NodeInfo current: whatever it wrote stands.
            plan.unchanged.append(f"NodeInfo {name}")
            continue
        plan.create.append(model.nodeinfo_to_resource(info))


# --- IPInstances -----------------------------------------------------------------------------------------------


def _plan_ipinstances(cluster: Cluster, subnets: Mapping[str, model.Subnet], plan: Plan) -> None:
    ours = {i.name: i for i in _ours(cluster, names.KIND_IPINSTANCE, model.ipinstance_from_resource)}
    translated: dict[str, list[tuple[str, model.IPInstance]]] = {}
    for obj in cluster.hybridnet.get("IPInstance", []):
        meta = obj.get("metadata") or {}
        source = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        try:
            instance = _ipinstance(obj, subnets)
        except InvalidValue as e:
            plan.refused.append(Refusal("IPInstance", source, str(e)))
            continue
        translated.setdefault(instance.name, []).append((source, instance))
    for name, holders in sorted(translated.items()):
        if len(holders) > 1:
            sources = ", ".join(source for source, _ in holders)
            for source, _ in holders:
                plan.refused.append(Refusal("IPInstance", source, f"address {name} is held by each of {sources}"))
            continue
        [(source, instance)] = holders
        held = ours.get(name)
        if held is not None:
            if (held.owner_key, held.binding.pod_uid) == (instance.owner_key, instance.binding.pod_uid):
                plan.unchanged.append(f"IPInstance {name}")
            else:
                plan.refused.append(
                    Refusal("IPInstance", source, f"hybridlay IPInstance {name} holds it for {held.owner_key}")
                )
            continue
        namespace = instance.binding.pod_namespace or ""
        uid = cluster.namespace_uids.get(namespace)
        if uid is None:
            plan.refused.append(Refusal("IPInstance", source, f"namespace {namespace} does not exist"))
            continue
        resource = model.ipinstance_to_resource(instance)
        resource["metadata"]["ownerReferences"] = [model.namespace_owner(namespace, uid)]
        plan.create.append(resource)


def _ipinstance(obj: Mapping[str, Any], subnets: Mapping[str, model.Subnet]) -> model.IPInstance:
    """Ours for Hybridnet's namespaced IPInstance: named by its address, the namespace in the binding."""
    meta = obj.get("metadata") or {}
    spec = copy.deepcopy(dict(obj.get("spec") or {}))
    binding = dict(spec.get("binding") or {})
    binding["podNamespace"] = meta.get("namespace", "")
    spec["binding"] = binding
    parsed = model.ipinstance_from_resource({"metadata": {"name": meta.get("name", "")}, "spec": spec})
    address = parse_ip(parsed.address.ip.partition("/")[0], "spec.address.ip")
    subnet = subnets.get(parsed.subnet)
    if subnet is None:
        raise InvalidValue("spec.subnet", parsed.subnet, "is no subnet of the migrated cluster")
    if subnet.network != parsed.network:
        raise InvalidValue("spec.network", parsed.network, f"is not subnet {subnet.name}'s network ({subnet.network})")
    if not _inside(str(address), subnet.range.cidr):
        raise InvalidValue(
            "spec.address.ip", parsed.address.ip, f"is outside subnet {subnet.name} ({subnet.range.cidr})"
        )
    instance = dataclasses.replace(parsed, name=instance_name(address))
    return dataclasses.replace(instance, labels=model.ipinstance_labels(instance))


def _inside(address: str, cidr: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False)


# --- helpers ------------------------------------------------------------------------------------------------------


def _ours(cluster: Cluster, kind: str, convert: Any) -> list[Any]:
    """Our objects of ``kind`` as the model has them; one the model refuses is left out (the
    operator reports it)."""
    converted = []
    for obj in cluster.ours.get(kind, []):
        try:
            converted.append(convert(obj))
        except InvalidValue:
            continue
    return converted


def _without_status(obj: Any) -> Any:
    return dataclasses.replace(obj, status=type(obj.status)())
