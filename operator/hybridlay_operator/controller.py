"""The operator's state and its reconciliation of pods, statuses and node labels.

Watch events (delivered by kopf, see :mod:`hybridlay_operator.handlers`) only update the caches
here and queue keys; a fixed set of workers reconciles each queued pod against the latest state
(level-triggered: a burst of events for one pod is one reconciliation).

Claims: an address is held once its IPInstance (cluster-scoped, named by the address) exists. The
API server creates one object per name, so of two operators picking the same address one gets 409
and takes the next. Nothing here depends on being the only instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from hybridlay import model, names
from hybridlay.errors import AddressConflict, HybridlayError, InvalidValue, NoAddressAvailable
from hybridlay.ipam import IPAM, Allocation
from hybridlay.model import IPFamily, IPInstance, Network, ReferredObject, Subnet
from hybridlay.pod_request import PodNetworkRequest, parse_pod_request, resolve_pod_network
from hybridlay_operator import decisions as d
from hybridlay_operator import events as ev
from hybridlay_operator.config import STATEFUL_WORKLOAD_KINDS, OperatorConfig, WorkloadKind
from hybridlay_operator.kube import ApiError, Kube, core_path, custom_path
from hybridlay_operator.lease import LeaseKeeper
from hybridlay_operator.probes import Metrics

logger = logging.getLogger(__name__)

# A pod that cannot get an address yet (no free address, its network not there yet) is retried.
RETRY_SECONDS = 5.0
# Claims lost to another operator in one reconciliation before giving up until the retry.
MAX_LOST_CLAIMS = 32
STATUS_FLUSH_SECONDS = 1.0
# Why a configured stateful workload kind may not be listable.
CANNOT_LIST_HINTS = {
    403: "the operator's ClusterRole must grant get, list and watch of it: see manifests/10-operator-rbac.yaml",
    404: "its CRD is not installed, or the entry names a resource the API does not serve",
}


class WorkQueue:
    """Keys to reconcile: each key queued once, and never handled by two workers at a time."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._again: set[str] = set()

    def add(self, key: str) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_later(self, key: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, key)

    async def get(self) -> str:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: str) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    @property
    def idle(self) -> bool:
        return not self._queued and not self._active


class Controller:
    def __init__(self, kube: Kube, config: OperatorConfig, metrics: Metrics | None = None) -> None:
        self.kube = kube
        self.config = config
        self.metrics = metrics or Metrics()
        self.ipam = IPAM()
        self.queue = WorkQueue()
        self.events = ev.EventPoster(kube, config.identity, busy=lambda: not self.queue.idle)
        self.networks: dict[str, Network] = {}
        self.subnets: dict[str, Subnet] = {}
        self.instances: dict[str, IPInstance] = {}
        self.held: dict[str, set[str]] = defaultdict(set)  # owner key → IPInstance names
        self.owner_groups: dict[str, str] = {}  # IPInstance name → API group of its owner (ownerReference)
        self.pods: dict[str, dict[str, Any]] = {}
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, str]] = {}  # name → labels
        self.ready = False
        self.active = not config.leader_election
        self._creating: set[str] = set()  # IPInstance names we are creating right now
        self._first_seen: dict[str, float] = {}  # pod key → when it first needed addresses
        self._waiting: set[str] = set()  # pods waiting for a network, subnet, node or free address
        self._failures: dict[str, str] = {}  # pod key → last failure reported (not repeated on retries)
        self._dirty_subnets: set[str] = set()
        self._dirty_networks: set[str] = set()
        self._nodes_dirty = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._resync_now = asyncio.Event()
        self._lease = LeaseKeeper(kube, config.namespace, config.lease_name, config.identity, config.lease_seconds)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Kind names of the stateful workloads (what a retained IPInstance's referred object records)."""
        return self.config.pod.stateful_kinds

    @property
    def stateful_workloads(self) -> tuple[WorkloadKind, ...]:
        return self.config.stateful_workloads

    # --- start and stop ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the state from the API, then start working: until then the operator is not ready."""
        networks, subnets = await asyncio.gather(
            self.kube.list(custom_path(names.PLURAL_NETWORK)), self.kube.list(custom_path(names.PLURAL_SUBNET))
        )
        for obj in networks:
            self.observe_network("ADDED", obj)
        for obj in subnets:
            self.observe_subnet("ADDED", obj)
        raw_instances = await self.kube.list(custom_path(names.PLURAL_IPINSTANCE))
        self._load_instances(raw_instances)
        self.ready = True
        logger.info(
            "state rebuilt: %d networks, %d subnets, %d IPInstances", len(networks), len(subnets), len(raw_instances)
        )
        self.events.start()
        self._tasks = [asyncio.create_task(self._work(), name=f"reconcile-{i}") for i in range(self.config.workers)]
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="status"))
        self._tasks.append(asyncio.create_task(self._resync_loop(), name="resync"))
        if self.config.leader_election:
            self._tasks.append(asyncio.create_task(self._lease_loop(), name="lease"))

    def _load_instances(self, raw: list[dict[str, Any]]) -> None:
        for obj in raw:
            instance = self._parse(model.ipinstance_from_resource, obj)
            if instance is not None:
                self._remember(instance, obj)
        for conflict in self.ipam.rebuild(raw):
            logger.warning("IPAM rebuild: %s", conflict)
            for holder in conflict.holders:
                self.events.warning(
                    ev.Involved(names.KIND_IPINSTANCE, holder, api_version=names.API_VERSION),
                    ev.ADDRESS_CONFLICT,
                    str(conflict),
                )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.config.leader_election and self.active:
            with contextlib.suppress(Exception):
                await self._lease.release()
        await self.events.stop()

    # --- observing (watch events) -------------------------------------------------------------------

    @staticmethod
    def _parse(convert: Any, obj: Mapping[str, Any]) -> Any:
        try:
            return convert(obj)
        except InvalidValue as e:
            logger.warning("ignoring %s: %s", (obj.get("metadata") or {}).get("name"), e)
            return None

    def observe_network(self, kind: str, obj: Mapping[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if kind == "DELETED":
            self.networks.pop(name, None)
            self.ipam.remove_network(name)
        else:
            network = self._parse(model.network_from_resource, obj)
            if network is None:
                return
            self.networks[name] = network
            self.ipam.set_network(network)
            self._dirty_networks.add(name)
        self._nodes_dirty = True
        self._wake_waiting()

    def observe_subnet(self, kind: str, obj: Mapping[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if kind == "DELETED":
            old = self.subnets.pop(name, None)
            self.ipam.remove_subnet(name)
            if old is not None:
                self._dirty_networks.add(old.network)
            self._nodes_dirty = True
            return
        subnet = self._parse(model.subnet_from_resource, obj)
        if subnet is None:
            return
        try:
            self.ipam.set_subnet(subnet)
        except InvalidValue as e:
            # Admission refuses such a subnet; one that got in anyway is reported, not used.
            logger.warning("subnet %s not usable: %s", name, e)
            self.events.warning(
                ev.Involved(names.KIND_SUBNET, name, api_version=names.API_VERSION), ev.INVALID_SPEC, str(e)
            )
            return
        self.subnets[name] = subnet
        self._dirty_subnets.add(name)
        self._dirty_networks.add(subnet.network)
        self._nodes_dirty = True
        self._wake_waiting()

    def observe_instance(self, kind: str, obj: Mapping[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        instance = self._parse(model.ipinstance_from_resource, obj)
        if instance is None:
            return
        if kind == "DELETED" or instance.terminating:
            old = self.instances.get(name)
            # Watch events trail our own actions: a late DELETED must not forget a newer claim.
            if old is not None and d.same_claim(old, instance):
                self._forget(old)
            return
        if name in self._creating:
            return  # our create says whose it is: success, or 409 and we read the holder
        old = self.instances.get(name)
        if old is not None and d.same_claim(old, instance):
            self._remember(instance, obj)  # an update of a claim we know
            return
        # A claim we did not make (another operator instance, or before our restart).
        if old is not None:
            self._forget(old)  # its DELETED event never reached us
        try:
            self.ipam.assign(
                instance.network, instance.address.ip.partition("/")[0], instance.owner_key, instance.subnet
            )
        except AddressConflict:
            pass  # we are about to claim it: our create gets 409 and reads the holder
        except InvalidValue as e:
            logger.warning("IPInstance %s claims nothing IPAM knows: %s", name, e)
        self._remember(instance, obj)
        self._mark_dirty(instance)
        if self.active:
            self.queue.add(instance.owner_key)  # its pod may now hold one too many

    def observe_pod(self, kind: str, obj: Mapping[str, Any]) -> None:
        key = d.key_of(obj)
        if kind == "DELETED":
            self.pods.pop(key, None)
            self._failures.pop(key, None)
            self._first_seen.pop(key, None)
        else:
            self.pods[key] = dict(obj)
        if self.active:
            self.queue.add(key)

    def observe_namespace(self, kind: str, obj: Mapping[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if kind == "DELETED":
            self.namespaces.pop(name, None)
        else:
            self.namespaces[name] = dict(obj)

    def observe_node(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        if kind == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = dict(meta.get("labels") or {})
        self._dirty_networks.update(self.networks)
        self._nodes_dirty = True
        self._wake_waiting()

    def observe_workload(self, kind: str, obj: Mapping[str, Any]) -> None:
        """A stateful workload (of any configured kind); its deletion frees the addresses its ordinals
        kept: the pods that held them are reconciled, and find their workload gone."""
        uid = (obj.get("metadata") or {}).get("uid", "")
        if kind == "DELETED" and uid and self.active:
            for owner in self._owners_referring_to(uid):
                self.queue.add(owner)

    def _owners_referring_to(self, uid: str) -> list[str]:
        return sorted(
            {
                i.owner_key
                for i in self.instances.values()
                if i.binding.referred_object is not None and i.binding.referred_object.uid == uid
            }
        )

    def _remember(self, instance: IPInstance, obj: Mapping[str, Any]) -> None:
        """Cache a claim; ``obj`` is its resource (the model leaves out the owner's API group)."""
        self.instances[instance.name] = instance
        self.held[instance.owner_key].add(instance.name)
        group = d.owner_group(obj)
        if group is None:
            self.owner_groups.pop(instance.name, None)
        else:
            self.owner_groups[instance.name] = group

    def _wake_waiting(self) -> None:
        """Something a waiting pod may need has appeared: try those pods again now."""
        if self.active:
            waiting, self._waiting = self._waiting, set()
            for key in waiting:
                self.queue.add(key)

    def _fail(self, key: str, about: ev.Involved, message: str) -> None:
        """A Warning event, once per distinct problem: retries of a waiting pod do not repeat it."""
        if self._failures.get(key) != message:
            self._failures[key] = message
            self.events.warning(about, ev.ALLOCATION_FAILED, message)

    def _retry_later(self, key: str) -> None:
        self._waiting.add(key)
        self.queue.add_later(key, RETRY_SECONDS)

    def _forget(self, instance: IPInstance) -> None:
        self.instances.pop(instance.name, None)
        self.owner_groups.pop(instance.name, None)
        owned = self.held.get(instance.owner_key)
        if owned is not None:
            owned.discard(instance.name)
            if not owned:
                del self.held[instance.owner_key]
        self.ipam.release(instance.address.ip.partition("/")[0], instance.owner_key)
        self._mark_dirty(instance)
        self._wake_waiting()

    def _mark_dirty(self, instance: IPInstance) -> None:
        self._dirty_subnets.add(instance.subnet)
        self._dirty_networks.add(instance.network)
        self._nodes_dirty = True

    # --- reconciling pods ------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                if self.active:
                    await self.reconcile(key)
            except Exception:
                logger.exception("reconciling pod %s failed; retrying", key)
                self.queue.add_later(key, RETRY_SECONDS)
            finally:
                self.queue.done(key)

    def _held(self, key: str) -> list[IPInstance]:
        return [self.instances[n] for n in sorted(self.held.get(key, ())) if n in self.instances]

    async def reconcile(self, key: str) -> None:
        pod = self.pods.get(key)
        held = self._held(key)
        if pod is None:
            if held:
                await self._give_back(key, None, held)
            return
        if d.is_host_network(pod):
            return
        if d.is_deleting(pod) or d.is_terminal(pod):
            retained = [i for i in held if d.is_retained(i, self.kinds)]
            if retained and d.is_deleting(pod) and d.has_running_containers(pod):
                return  # reserve only once no container can use the address any more
            await self._give_back(key, pod, held)
            if d.is_deleting(pod):
                await self._set_finalizer(pod, present=False)
            return
        if d.wants_addresses(pod):
            await self._ensure_addresses(key, pod, held)

    async def _give_back(self, key: str, pod: Mapping[str, Any] | None, held: list[IPInstance]) -> None:
        workload_gone = pod is None and not await self._workloads_exist(key, held)
        plan = d.plan_release(held, self.kinds, pod_gone_for_good=workload_gone)
        about = self._about(key, pod)
        for name in plan.delete:
            await self._delete_instance(self.instances[name])
        for name in plan.reserve:
            await self._patch_instance(name, d.reserve_patch())
        if plan.delete:
            self.events.normal(about, ev.RELEASE_SUCCEEDED, f"released {', '.join(self._addresses(plan.delete))}")
        if plan.reserve:
            self.events.normal(about, ev.RESERVE_SUCCEEDED, f"reserved {', '.join(self._addresses(plan.reserve))}")

    async def _workloads_exist(self, key: str, held: list[IPInstance]) -> bool:
        """Whether the workloads keeping these addresses still exist: asked of the API, not the cache
        (a cache still filling at start must not free an address a StatefulSet keeps).

        The referred object records kind, name and UID, its ownerReference the API group: each
        configured workload it may be is listed by name (a list, unlike a get, tells a missing
        resource from a missing object), and the UID says whether it is the same workload. When one
        of them cannot be listed, the addresses stay: whether their workload lives is unknown.
        """
        namespace = key.partition("/")[0]
        unknown = False
        for instance in held:
            ref = instance.binding.referred_object
            if ref is None or not d.is_retained(instance, self.kinds):
                continue
            group = self.owner_groups.get(instance.name)
            for workload in d.possible_workloads(ref.kind, group, self.stateful_workloads):
                try:
                    found = await self.kube.list(workload.path(namespace), field_selector=f"metadata.name={ref.name}")
                except ApiError as e:
                    self._cannot_list(workload, e)
                    unknown = True
                    continue
                if any((w.get("metadata") or {}).get("uid") == ref.uid for w in found):
                    return True
        return unknown

    @staticmethod
    def _cannot_list(workload: WorkloadKind, error: ApiError) -> None:
        hint = CANNOT_LIST_HINTS.get(error.status, "")
        logger.warning(
            "cannot list %s (an entry of %s): %s%s; the addresses its pods keep stay until it can be listed",
            workload,
            STATEFUL_WORKLOAD_KINDS,
            error,
            f" ({hint})" if hint else "",
        )

    def _addresses(self, instance_names: Iterable[str]) -> list[str]:
        return [self.instances[n].address.ip if n in self.instances else n for n in instance_names]

    @staticmethod
    def _about(key: str, pod: Mapping[str, Any] | None) -> ev.Involved:
        namespace, _, name = key.partition("/")
        uid = ((pod or {}).get("metadata") or {}).get("uid", "")
        return ev.involved_pod(namespace, name, uid)

    async def _patch_instance(self, name: str, patch: dict[str, Any]) -> None:
        updated = await self.kube.patch(custom_path(names.PLURAL_IPINSTANCE, name), patch)
        if updated is not None:
            # Keep the cache current now: the watch event may come after the next reconciliation.
            instance = self._parse(model.ipinstance_from_resource, updated)
            if instance is not None:
                self._remember(instance, updated)

    async def _delete_instance(self, instance: IPInstance) -> None:
        await self.kube.delete(custom_path(names.PLURAL_IPINSTANCE, instance.name))
        self._forget(instance)

    async def _set_finalizer(self, pod: Mapping[str, Any], present: bool) -> None:
        patch = d.finalizer_patch(pod, present)
        if patch is None:
            return
        meta = pod.get("metadata") or {}
        await self.kube.patch(core_path("pods", meta.get("namespace"), meta.get("name")), patch)

    async def _ensure_addresses(self, key: str, pod: dict[str, Any], held: list[IPInstance]) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        namespace = await self._namespace(meta.get("namespace", ""))
        about = self._about(key, pod)
        # The core matches a stateful controller by kind alone: it sees only those of configured groups.
        view = d.stateful_view(pod, self.stateful_workloads)
        request, violations = parse_pod_request(view, namespace, self.config.pod)
        if request is None:
            if violations:
                self._fail(key, about, "; ".join(str(v) for v in violations))
            return
        for name in d.stale_for(uid, held, self.kinds):
            await self._delete_instance(self.instances[name])
        held = self._held(key)
        for name in d.surplus(held):
            logger.info("pod %s: address %s claimed twice (two active operators); dropping it", key, name)
            await self._delete_instance(self.instances[name])
        held = self._held(key)
        retain = request.stateful is not None and request.retain
        if retain:
            await self._set_finalizer(pod, present=True)
        for instance in held:
            if instance.binding.pod_uid != uid or instance.binding.node_name != pod["spec"].get("nodeName"):
                await self._patch_instance(instance.name, d.rebind_patch(pod))
        held = self._held(key)
        if request.ip_pool:
            held = await self._follow_pool(request, held)
        missing = [v for v in request.family.versions if not any(i.address.version == str(v) for i in held)]
        if not missing:
            self._first_seen.pop(key, None)
            return
        self._first_seen.setdefault(key, time.monotonic())
        network, subnets, problem = self._target(request, pod)
        if network is None:
            self._fail(key, about, problem)
            self._retry_later(key)
            return
        referred = self._referred(request, pod)
        mac = request.mac or next((i.address.mac for i in held if i.address.mac), None) or d.random_mac()
        index = request.stateful.ordinal if request.stateful is not None and retain else None
        try:
            created = await self._claim(
                key=key,
                pod=pod,
                network=network,
                versions=missing,
                subnets=subnets,
                pool=request.ip_pool,
                referred=referred,
                mac=mac,
                index=index,
                namespace_uid=((namespace or {}).get("metadata") or {}).get("uid", ""),
            )
        except (NoAddressAvailable, InvalidValue, AddressConflict) as e:
            self._fail(key, about, str(e))
            self._retry_later(key)
            return
        self._failures.pop(key, None)
        started = self._first_seen.pop(key, None)
        if started is not None:
            self.metrics.allocation_seconds.observe(time.monotonic() - started)
        logger.debug("pod %s: allocated %s", key, ", ".join(a.ip_with_prefix for a in created))
        self.events.normal(
            about, ev.ALLOCATION_SUCCEEDED, f"allocated {', '.join(a.ip_with_prefix for a in created)} in {network}"
        )

    async def _namespace(self, name: str) -> dict[str, Any] | None:
        """The pod's namespace (its annotations are defaults): from the cache, else read once
        (a pod may come before its namespace's watch event)."""
        if name not in self.namespaces:
            found = await self.kube.get(core_path("namespaces", name=name))
            if found is not None:
                self.namespaces.setdefault(name, found)
        return self.namespaces.get(name)

    def _target(self, request: PodNetworkRequest, pod: Mapping[str, Any]) -> tuple[str | None, Mapping[int, str], str]:
        """The network and subnets to allocate from, or a problem to report."""
        resolved, violations = resolve_pod_network(request, self.networks, self.subnets, self.config.pod)
        if resolved is None:
            return None, {}, "; ".join(str(v) for v in violations)
        network = resolved.network
        if network is None:
            node = (pod.get("spec") or {}).get("nodeName", "")
            network = d.underlay_network_of(self.nodes.get(node, {}), self.networks.values())
            if network is None:
                return None, {}, f"node {node} is in no underlay network"
        return network, resolved.subnets, ""

    def _referred(self, request: PodNetworkRequest, pod: Mapping[str, Any]) -> ReferredObject:
        if request.stateful is not None and request.retain:
            s = request.stateful
            return ReferredObject(kind=s.kind, name=s.name, uid=s.uid)
        meta = pod.get("metadata") or {}
        return ReferredObject(kind="Pod", name=meta.get("name", ""), uid=meta.get("uid", ""))

    async def _follow_pool(self, request: PodNetworkRequest, held: list[IPInstance]) -> list[IPInstance]:
        """Free held addresses this ordinal's ip-pool entry no longer lists (reference §3)."""
        wanted = set(request.ip_pool)
        kept = []
        for instance in held:
            if instance.address.ip.partition("/")[0] in wanted:
                kept.append(instance)
            else:
                await self._delete_instance(instance)
        return kept

    async def _claim(
        self,
        *,
        key: str,
        pod: Mapping[str, Any],
        network: str,
        versions: list[int],
        subnets: Mapping[int, str],
        pool: tuple[str, ...],
        referred: ReferredObject,
        mac: str,
        index: int | None,
        namespace_uid: str,
    ) -> list[Allocation]:
        """Claim one address per missing version; all or none (a half dual stack is undone)."""
        created: list[Allocation] = []
        left = list(versions)
        lost = 0
        try:
            while left:
                allocations = self._pick(key, network, left, subnets, pool)
                for allocation in allocations:
                    body = d.build_ipinstance(allocation, pod, referred, mac, index, namespace_uid=namespace_uid)
                    if await self._create(allocation, body):
                        created.append(allocation)
                        left.remove(allocation.version)
                        continue
                    if await self._take_holders_word(allocation, body):
                        left.remove(allocation.version)
                        continue
                    lost += 1
                    if pool or lost >= MAX_LOST_CLAIMS:
                        raise AddressConflict(allocation.address, (allocation.instance_name,))
        except Exception:
            for allocation in created:
                await self._delete_instance(self.instances[allocation.instance_name])
            raise
        return created

    def _pick(
        self, key: str, network: str, versions: list[int], subnets: Mapping[int, str], pool: tuple[str, ...]
    ) -> list[Allocation]:
        if pool:
            wanted = [a for a in pool if (6 if ":" in a else 4) in versions]
            return [self.ipam.assign(network, address, key) for address in wanted]
        family = IPFamily.DUAL_STACK if len(versions) == 2 else (IPFamily.IPV4 if versions[0] == 4 else IPFamily.IPV6)
        return self.ipam.allocate(network, key, family, {v: s for v, s in subnets.items() if v in versions})

    async def _create(self, allocation: Allocation, body: dict[str, Any]) -> bool:
        name = allocation.instance_name
        self._creating.add(name)
        try:
            created = await self.kube.create(custom_path(names.PLURAL_IPINSTANCE), body)
        except BaseException:
            self.ipam.release(allocation.address, self._owner_of(body))
            raise
        finally:
            self._creating.discard(name)
        if created:
            self._remember(model.ipinstance_from_resource(body), body)
            self._mark_dirty(self.instances[name])
        return created

    @staticmethod
    def _owner_of(body: Mapping[str, Any]) -> str:
        binding = body["spec"]["binding"]
        return d.pod_key(binding.get("podNamespace", ""), binding.get("podName", ""))

    async def _take_holders_word(self, allocation: Allocation, body: Mapping[str, Any]) -> bool:
        """Our claim got 409: read who holds the address, and record that.

        True when the holder is this very pod (another operator instance claimed it for the same pod
        first): the address is the pod's, nothing more to claim for that version.
        """
        key = self._owner_of(body)
        raw = await self.kube.get(custom_path(names.PLURAL_IPINSTANCE, allocation.instance_name))
        holder = self._parse(model.ipinstance_from_resource, raw) if raw is not None else None
        if holder is not None and holder.terminating:
            holder = None
        ours = (
            holder is not None
            and holder.owner_key == key
            and holder.binding.pod_uid == body["spec"]["binding"].get("podUID")
        )
        if holder is None or holder.owner_key != key:
            self.ipam.release(allocation.address, key)
        if holder is not None:
            with contextlib.suppress(AddressConflict, InvalidValue):
                self.ipam.assign(holder.network, allocation.address, holder.owner_key, holder.subnet)
            self._remember(holder, raw or {})
            self._mark_dirty(holder)
            if not ours and self.active:
                self.queue.add(holder.owner_key)  # its pod may now hold one too many
        if not ours:
            logger.info("address %s was claimed by someone else first; taking the next", allocation.address)
        return ours

    # --- orphans, resync, lease --------------------------------------------------------------------------

    async def collect_orphans(self) -> list[str]:
        """Delete IPInstances nobody holds; read fresh from the API, never from possibly stale caches.

        IPInstances are listed first, then pods and workloads: a pod that holds an address existed
        before its IPInstance did, so it is in the later listing unless it is really gone.
        """
        raw = await self.kube.list(custom_path(names.PLURAL_IPINSTANCE))
        self._repair_from(raw)
        pods = await self.kube.list(core_path("pods"))
        live, unlisted = await self._live_workloads()
        pod_uids = {d.key_of(p): (p.get("metadata") or {}).get("uid", "") for p in pods}
        removed = []
        for obj in raw:
            instance = self._parse(model.ipinstance_from_resource, obj)
            if instance is None or instance.terminating or instance.name in self._creating:
                continue
            unknown = d.owner_unlisted(instance, d.owner_group(obj), self.stateful_workloads, unlisted)
            if d.is_orphan(instance, pod_uids, live, self.kinds, owner_unknown=unknown):
                uid = (obj.get("metadata") or {}).get("uid")
                # The precondition keeps us from deleting a newer claim of the same address.
                body = {"preconditions": {"uid": uid}} if uid else None
                with contextlib.suppress(Exception):
                    await self.kube.request("DELETE", custom_path(names.PLURAL_IPINSTANCE, instance.name), body)
                    removed.append(instance.name)
                    self._forget(self.instances.get(instance.name, instance))
        if removed:
            logger.info("collected %d orphaned IPInstances: %s", len(removed), ", ".join(removed[:20]))
        return removed

    async def _live_workloads(self) -> tuple[set[str], set[WorkloadKind]]:
        """UIDs of the stateful workloads of every configured kind, and the kinds that could not be
        listed (a missing CRD or permission): the addresses they may keep are not collected."""
        live: set[str] = set()
        unlisted: set[WorkloadKind] = set()
        for workload in self.stateful_workloads:
            try:
                found = await self.kube.list(workload.path())
            except ApiError as e:
                self._cannot_list(workload, e)
                unlisted.add(workload)
                continue
            live.update((w.get("metadata") or {}).get("uid", "") for w in found)
        return live, unlisted

    def _repair_from(self, raw: list[dict[str, Any]]) -> None:
        """Make the cache and IPAM agree with a full listing: a watch can miss events (a dropped
        stream, a stand-in's gaps); a periodic relist makes such a miss cost time, never an address."""
        listed = set()
        for obj in raw:
            listed.add((obj.get("metadata") or {}).get("name", ""))
            self.observe_instance("ADDED", obj)
        for name, instance in list(self.instances.items()):
            if name not in listed and name not in self._creating:
                self._forget(instance)

    async def _resync_loop(self) -> None:
        first = True
        while True:
            if self.active:
                try:
                    await self.collect_orphans()
                except Exception:
                    logger.exception("orphan collection failed")
                if not first:
                    for key in set(self.pods) | set(self.held):
                        self.queue.add(key)
                first = False
            self._resync_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resync_now.wait(), self.config.resync_seconds)

    async def _lease_loop(self) -> None:
        while True:
            try:
                holding = await self._lease.try_hold()
            except Exception:
                logger.exception("lease renewal failed")
                holding = False
            if holding and not self.active:
                logger.info("%s is now the active instance", self.config.identity)
                self.active = True
                for key in set(self.pods) | set(self.held):
                    self.queue.add(key)
                self._resync_now.set()
            elif not holding and self.active:
                logger.info("%s is now a standby", self.config.identity)
                self.active = False
            await asyncio.sleep(max(1.0, self.config.lease_seconds / 3))

    # --- status, node labels, metrics ----------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_FLUSH_SECONDS)
            if not self.active:
                continue
            try:
                await self.flush_status()
            except Exception:
                logger.exception("writing status failed")

    async def flush_status(self) -> None:
        """Write the status of changed subnets and networks and the node labels: coalesced, not per pod."""
        subnets, self._dirty_subnets = self._dirty_subnets, set()
        networks, self._dirty_networks = self._dirty_networks, set()
        nodes_dirty, self._nodes_dirty = self._nodes_dirty, False
        for name in sorted(subnets):
            if name not in self.subnets:
                continue
            status = self.ipam.subnet_status(name)
            for usage in ("total", "used", "available"):
                self.metrics.subnet_ip_usage.labels(name, usage).set(getattr(status, usage))
            await self.kube.patch(
                custom_path(names.PLURAL_SUBNET, name, "status"), {"status": model.subnet_status_to_dict(status)}
            )
        for name in sorted(networks):
            if name not in self.networks:
                continue
            network_status = dataclasses.replace(
                self.ipam.network_status(name), node_list=d.node_list(self.networks, name, self.nodes)
            )
            usage_by_family = (("IPv4", network_status.statistics), ("IPv6", network_status.ipv6_statistics))
            for family, stats in usage_by_family:
                for usage in ("total", "used", "available"):
                    self.metrics.ip_usage.labels(name, family, usage).set(getattr(stats, usage) if stats else 0)
            await self.kube.patch(
                custom_path(names.PLURAL_NETWORK, name, "status"),
                {"status": model.network_status_to_dict(network_status)},
            )
        if nodes_dirty:
            await self._label_nodes()

    async def _label_nodes(self) -> None:
        has_free = {
            (n, version): self.ipam.has_free(n, family)
            for n in self.networks
            for version, family in ((4, IPFamily.IPV4), (6, IPFamily.IPV6))
        }
        for node, labels in sorted(self.nodes.items()):
            patch = d.labels_patch(labels, d.node_labels(labels, self.networks.values(), has_free))
            if patch:
                await self.kube.patch(core_path("nodes", name=node), {"metadata": {"labels": patch}})
                self.nodes[node] = {k: v for k, v in {**labels, **patch}.items() if v is not None}

    # --- helpers for admission ----------------------------------------------------------------------------------

    def node_labels_by_name(self) -> Mapping[str, Mapping[str, str]]:
        return self.nodes

    def has_free(self, network: str, family: IPFamily) -> bool:
        try:
            return self.ipam.has_free(network, family)
        except HybridlayError:
            return False
