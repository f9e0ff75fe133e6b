"""The operator's state and its reconciliation of pods, statuses and node labels.

Watch events (pods and IPInstances through :mod:`.informer`, the rest through kopf, see
:mod:`.handlers`) only update the caches here and queue keys; a fixed set of workers reconciles
each queued pod against the latest state (level-triggered: a burst of events for one pod is one
reconciliation).

Claims: an address is held once its IPInstance (cluster-scoped, named by the address) exists. The
API server creates one object per name, so of two operators picking the same address one gets 409
and takes the next. Nothing here depends on being the only instance.

Start-up is in two steps. The IPInstances' Table (their printer columns: name, address, subnet,
pod) rebuilds the address accounting in a fraction of the time the full objects take; the operator
is then ready and serves pods that hold nothing yet. The full objects follow in the background
(the informer's first list); pods that already hold addresses wait for them, as does orphan
collection, because those decisions read the pod UID and the referred object.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hybridlay import model, names
from hybridlay.errors import AddressConflict, HybridlayError, InvalidValue, NoAddressAvailable
from hybridlay.ipam import IPAM, Allocation, SubnetPool
from hybridlay.model import IPFamily, IPInstance, Network, ReferredObject, Subnet
from hybridlay.pod_request import PodNetworkRequest, parse_pod_request, resolve_pod_network
from hybridlay_operator import cache
from hybridlay_operator import decisions as d
from hybridlay_operator import events as ev
from hybridlay_operator.config import STATEFUL_WORKLOAD_KINDS, OperatorConfig, WorkloadKind, api_group
from hybridlay_operator.informer import Informer
from hybridlay_operator.informer import stop as stop_task
from hybridlay_operator.kube import ApiError, Kube, core_path, custom_path
from hybridlay_operator.lease import LeaseKeeper
from hybridlay_operator.probes import Metrics

logger = logging.getLogger(__name__)

# A pod that cannot get an address yet (no free address, its network not there yet) is retried.
RETRY_SECONDS = 5.0
# A pod that changed under a write of ours (409 on its resourceVersion): again soon, with the newer pod.
CONFLICT_RETRY_SECONDS = 0.1
# Claims lost to another operator in one reconciliation before pausing; the pause is short, because
# losing means the other operator is fast, not that addresses are short.
MAX_LOST_CLAIMS = 32
CONTENTION_RETRY_SECONDS = 0.2
# Every operator creates its claims as field manager ``hybridlay-operator/<identity>``: the managers
# of claims another made tell which other operators are active (the Lease aside).
FIELD_MANAGER = "hybridlay-operator"
# A pod another active operator is preferred for waits this long for its claim before claiming itself.
YIELD_SECONDS = 1.0
# How long another operator counts as active after the last claim of its we saw.
CONTENTION_SECONDS = 30.0
STATUS_FLUSH_SECONDS = 1.0
BUSY_FLUSH_SECONDS = 5.0
RELIST_TIMEOUT_SECONDS = 300.0
# The longest the full IPInstances wait at start for the pods waiting for an address to have theirs.
DETAILS_DELAY_SECONDS = 10.0
RELIST_SHARE = 10  # resync lists the IPInstances again only after ten times as long as a list took
# UIDs of deleted IPInstances remembered between relists, so a late answer cannot bring one back.
GONE_LIMIT = 10_000
# Why a configured stateful workload kind may not be listable.
CANNOT_LIST_HINTS = {
    403: "the operator's ClusterRole must grant get, list and watch of it: see manifests/10-operator-rbac.yaml",
    404: "its CRD is not installed, or the entry names a resource the API does not serve",
}


class PodChanged(Exception):
    """A write conditioned on the pod's resourceVersion got 409: the pod changed meanwhile. Normal;
    the pod's watch event brings the newer version and it is reconciled again."""


class WorkQueue:
    """Keys to reconcile: each key queued once, and never handled by two workers at a time. Urgent
    keys (pods waiting for an address) go before the others (checks of pods that have theirs), so a
    restart's re-checks of every pod do not hold up a burst of new ones."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[None] = asyncio.Queue()  # one token per queued key
        self._urgent: deque[str] = deque()
        self._later: deque[str] = deque()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._again: set[str] = set()

    def add(self, key: str, urgent: bool = False) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            (self._urgent if urgent else self._later).append(key)
            self._queue.put_nowait(None)

    def add_later(self, key: str, delay: float, urgent: bool = False) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, key, urgent)

    async def get(self) -> str:
        await self._queue.get()
        key = self._urgent.popleft() if self._urgent else self._later.popleft()
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

    @property
    def pressing(self) -> bool:
        """Urgent keys are waiting."""
        return bool(self._urgent)


# What start() reads first: the networks, the subnets and the IPInstances' Table.
_Fetched = tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]
# Outcomes of one create-as-claim.
_CREATED, _OURS, _LOST = "created", "ours", "lost"
_NO_META = ("", "")


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
        self.pods: dict[str, dict[str, Any]] = {}  # key → the pod, slimmed (cache.slim_pod)
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, str]] = {}  # name → labels
        self.ready = False
        self.active = not config.leader_election
        # The full IPInstances are loaded (not only the start-up Table's columns).
        self.details = False
        self._details_loaded = asyncio.Event()
        self._deferred: set[str] = set()  # pods holding addresses, waiting for the full IPInstances
        self._meta: dict[str, tuple[str, str]] = {}  # IPInstance name → (uid, resourceVersion) last seen
        # Addresses picked in IPAM whose claim (the create) is not settled yet: name → network,
        # address, owner, subnet. A rebuild of IPAM from a listing keeps them.
        self._inflight: dict[str, tuple[str, str, str, str]] = {}
        self._touched: set[str] | None = None  # IPInstances written by us while a list is read
        self._gone: dict[str, None] = {}  # UIDs of IPInstances seen deleted since the last list
        self._reported: set[str] = set()  # address conflicts already reported
        self._invalid: set[str] = set()  # malformed IPInstances already warned about
        self.manager = f"{FIELD_MANAGER}/{config.identity}"[:128]  # the API's limit for a field manager
        self._peers: dict[str, float] = {}  # field manager of another active operator → when last seen
        self._yielded: dict[str, float] = {}  # pod key → when we first left it to a peer
        self._first_seen: dict[str, float] = {}  # pod key → when it first needed addresses
        self._waiting: set[str] = set()  # pods waiting for a network, subnet, node or free address
        self._failures: dict[str, str] = {}  # pod key → last failure reported (not repeated on retries)
        self._dirty_subnets: set[str] = set()
        self._dirty_networks: set[str] = set()
        self._nodes_dirty = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._resync_now = asyncio.Event()
        self._resynced = False  # the first resync (orphan collection once the IPInstances are in) is done
        self._prefetched: asyncio.Future[_Fetched] | None = None
        self._read_seconds = 0.0
        self._lease = LeaseKeeper(kube, config.namespace, config.lease_name, config.identity, config.lease_seconds)
        self.instance_informer = Informer(
            kube, custom_path(names.PLURAL_IPINSTANCE), _InstanceListing(self), names.PLURAL_IPINSTANCE
        )
        self.pod_informer = Informer(kube, core_path("pods"), _PodListing(self), "pods")

    @property
    def kinds(self) -> tuple[str, ...]:
        """Kind names of the stateful workloads (what a retained IPInstance's referred object records)."""
        return self.config.pod.stateful_kinds

    @property
    def stateful_workloads(self) -> tuple[WorkloadKind, ...]:
        return self.config.stateful_workloads

    # --- start and stop ----------------------------------------------------------------------------

    def prefetch(self) -> asyncio.Future[_Fetched]:
        """Begin reading what :meth:`start` needs now, while kopf is still starting."""
        if self._prefetched is None:
            self._prefetched = asyncio.ensure_future(self._fetch())
        return self._prefetched

    async def _fetch(self) -> _Fetched:
        started = time.monotonic()
        with cache.gc_paused():  # the Table of 100,000 IPInstances is parsed in here
            networks, subnets, table = await asyncio.gather(
                self.kube.list(custom_path(names.PLURAL_NETWORK)),
                self.kube.list(custom_path(names.PLURAL_SUBNET)),
                self.kube.table(custom_path(names.PLURAL_IPINSTANCE)),
            )
        self._read_seconds = time.monotonic() - started
        return networks, subnets, table

    async def start(self) -> None:
        """Rebuild the address accounting from the API, then start working: until then the operator
        is not ready."""
        networks, subnets, table = await self.prefetch()
        started = time.monotonic()
        for obj in networks:
            self.observe_network("ADDED", obj)
        for obj in subnets:
            self.observe_subnet("ADDED", obj)
        with cache.gc_paused():
            count = self._load_answer(table)
        self.ready = True
        logger.info(
            "state rebuilt: %d networks, %d subnets, %d IPInstances (read in %.2f s, built in %.2f s)",
            len(networks),
            len(subnets),
            count,
            self._read_seconds,
            time.monotonic() - started,
        )
        self.events.start()
        self._tasks = [asyncio.create_task(self._work(), name=f"reconcile-{i}") for i in range(self.config.workers)]
        self._tasks.append(asyncio.create_task(self._follow_instances(), name="ipinstances"))
        self._tasks.append(asyncio.create_task(self.pod_informer.run(), name="pods"))
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="status"))
        self._tasks.append(asyncio.create_task(self._resync_loop(), name="resync"))
        if self.config.leader_election:
            self._tasks.append(asyncio.create_task(self._lease_loop(), name="lease"))

    async def _follow_instances(self) -> None:
        """The IPInstances' informer, once the pods waiting for an address at start have theirs (or
        after ``DETAILS_DELAY_SECONDS``): its first list, the full objects, is only for the pods that
        already hold addresses and for orphan collection, and costs the API server what the claims
        of a burst need."""
        await self.pod_informer.wait_listed()
        deadline = time.monotonic() + DETAILS_DELAY_SECONDS
        while self.queue.pressing and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.instance_informer.run()

    def _load_answer(self, answer: dict[str, Any]) -> int:
        """Every IPInstance's address, subnet and pod, from the API server's Table of them (or the
        plain list a server without Tables sends instead)."""
        columns = cache.table_columns(answer) if answer.get("kind") == "Table" else None
        if columns is None:
            # A server without Tables (or without our printer columns) sent the objects themselves.
            listing = _InstanceListing(self)
            on_item = listing.listing()
            for obj in answer.get("items") or []:
                on_item(obj)
            listing.listed()
            return len(self.instances)
        found: dict[str, IPInstance] = {}
        for row in answer.get("rows") or []:
            try:
                instance = cache.instance_from_row(row.get("cells") or [], columns)
            except InvalidValue as e:
                logger.warning("ignoring an IPInstance row: %s", e)
                continue
            found[instance.name] = instance
        # The full list that follows must not be older than this Table.
        self.instance_informer.resource_version = str((answer.get("metadata") or {}).get("resourceVersion") or "0")
        self._install(found, {})
        return len(found)

    async def stop(self) -> None:
        for task in self._tasks:
            await stop_task(task)
        if self.config.leader_election and self.active:
            with contextlib.suppress(Exception):
                await self._lease.release()
        await self.events.stop()

    # --- the IPInstances -----------------------------------------------------------------------------

    def _parse(self, convert: Callable[[Mapping[str, Any]], Any], obj: Mapping[str, Any]) -> Any:
        try:
            return convert(obj)
        except InvalidValue as e:
            name = (obj.get("metadata") or {}).get("name")
            if name not in self._invalid:
                self._invalid.add(str(name))
                logger.warning("ignoring %s: %s", name, e)
            return None

    def _install(self, found: dict[str, IPInstance], metas: dict[str, tuple[str, str]]) -> None:
        """Make a complete listing the state: the cache, who holds what, and IPAM rebuilt from it
        (with the addresses being claimed right now kept). Whatever memory had drifted from the API
        (a missed event, a claim given up half-way) is gone after this."""
        owners: set[str] = set()
        if self.active and self.details:  # at start, the pods' own listing queues them
            changed = found.keys() ^ self.instances.keys()
            owners = {self.instances[n].owner_key for n in changed if n in self.instances}
            owners |= {found[n].owner_key for n in changed if n in found}
        self.instances, self._meta = found, metas
        held: dict[str, set[str]] = defaultdict(set)
        for name, instance in found.items():
            held[instance.owner_key].add(name)
        self.held = held
        conflicts = self.ipam.rebuild(found.values())
        for network, address, owner, subnet in self._inflight.values():
            with contextlib.suppress(AddressConflict, InvalidValue):
                self.ipam.assign(network, address, owner, subnet)
        for conflict in conflicts:
            text = str(conflict)
            if text in self._reported:
                continue
            self._reported.add(text)
            logger.warning("IPAM rebuild: %s", conflict)
            for holder in conflict.holders:
                self.events.warning(
                    ev.Involved(names.KIND_IPINSTANCE, holder, api_version=names.API_VERSION), ev.ADDRESS_CONFLICT, text
                )
        self._dirty_subnets.update(self.subnets)
        self._dirty_networks.update(self.networks)
        self._nodes_dirty = True
        for owner in owners:
            self.queue.add(owner)

    def _replace(self, found: dict[str, IPInstance], metas: dict[str, tuple[str, str]]) -> None:
        """A complete list has been read: it becomes the state, except for the IPInstances we wrote
        while it was read (the list may predate those writes; the watch that follows brings any
        later change to them)."""
        touched, self._touched = self._touched or set(), None
        for name in touched:
            instance = self.instances.get(name)
            if instance is None:
                found.pop(name, None)
                metas.pop(name, None)
            else:
                found[name] = instance
                metas[name] = self._meta.get(name, _NO_META)
        self._gone.clear()
        self._install(found, metas)
        if not self.details:
            self.details = True
            self._details_loaded.set()
            logger.info("IPInstances loaded in full: %d", len(found))
            self._undefer()

    def _undefer(self) -> None:
        """Reconcile the pods that waited for the full IPInstances and the pod list, once both are in."""
        if self.details and self.pod_informer.listed and self.active:
            deferred, self._deferred = self._deferred, set()
            for key in deferred:
                self.queue.add(key)

    def _touch(self, name: str) -> None:
        if self._touched is not None:
            self._touched.add(name)

    def _gone_uid(self, uid: str) -> None:
        if uid:
            self._gone[uid] = None
            if len(self._gone) > GONE_LIMIT:
                del self._gone[next(iter(self._gone))]

    # --- observing (watch events) -------------------------------------------------------------------

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
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        uid, version = str(meta.get("uid") or ""), str(meta.get("resourceVersion") or "")
        known = self._meta.get(name)
        deleted = kind == "DELETED" or bool(meta.get("deletionTimestamp"))
        if not deleted and known is not None and known == (uid, version):
            return  # the echo of our own write: nothing new
        instance = self._parse(cache.parse_instance, obj)
        if instance is None:
            return
        old = self.instances.get(name)
        same = old is not None and (known[0] == uid if known and known[0] and uid else d.same_claim(old, instance))
        if deleted:
            self._gone_uid(uid)
            # Watch events trail our own actions: a late DELETED must not forget a newer claim.
            if old is not None and same:
                self._forget(old)
            return
        if old is not None and same:
            self._remember(instance, uid, version)  # an update of a claim we know
            return
        # A claim we did not make (another operator instance, or before our restart).
        if old is not None:
            self._forget(old)  # its DELETED event never reached us
        if name not in self._inflight:
            try:
                self.ipam.assign(
                    instance.network, instance.address.ip.partition("/")[0], instance.owner_key, instance.subnet
                )
            except AddressConflict:
                pass  # IPAM has it for another pod until that pod's claim goes: a relist settles it
            except InvalidValue as e:
                logger.warning("IPInstance %s claims nothing IPAM knows: %s", name, e)
        # else: we are claiming that address right now; our create gets 409 and takes this holder,
        # or this is our own create, its event ahead of its answer.
        self._note_peers(meta)
        self._remember(instance, uid, version)
        self._mark_dirty(instance)
        if self.active:
            self.queue.add(instance.owner_key)  # its pod may now hold one too many

    def observe_pod(self, kind: str, obj: Mapping[str, Any]) -> None:
        key = d.key_of(obj)
        if kind == "DELETED":
            self._drop_pod(key)
        else:
            self.pods[key] = cache.slim_pod(obj)
        if self.active:
            self._queue_pod(key)

    def _queue_pod(self, key: str) -> None:
        """Queue a pod; one that holds no address yet before the others."""
        self.queue.add(key, urgent=key in self.pods and not self.held.get(key))

    def _drop_pod(self, key: str) -> None:
        self.pods.pop(key, None)
        self._yielded.pop(key, None)
        self._failures.pop(key, None)
        self._first_seen.pop(key, None)

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

    def _remember(self, instance: IPInstance, uid: str, version: str) -> None:
        """Cache a claim, with the UID and resourceVersion it was seen at."""
        name = instance.name
        old = self.instances.get(name)
        if old is not None and old.owner_key != instance.owner_key:
            self._unhold(old)
        self.instances[name] = instance
        self._meta[name] = (uid, version)
        self.held[instance.owner_key].add(name)

    def _remember_stored(self, obj: Mapping[str, Any]) -> IPInstance | None:
        """Cache an IPInstance as an answer of the API showed it (after our write, or a read), unless
        the watch has already told of its deletion."""
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if uid and uid in self._gone:
            return None
        instance: IPInstance | None = self._parse(cache.parse_instance, obj)
        if instance is None or instance.terminating:
            return None
        self._remember(instance, uid, str(meta.get("resourceVersion") or ""))
        self._touch(instance.name)
        return instance

    def _unhold(self, instance: IPInstance) -> None:
        owned = self.held.get(instance.owner_key)
        if owned is not None:
            owned.discard(instance.name)
            if not owned:
                del self.held[instance.owner_key]

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

    def _retry_later(self, key: str, delay: float = RETRY_SECONDS) -> None:
        self._waiting.add(key)
        self.queue.add_later(key, delay, urgent=True)  # it still waits for an address

    def _forget(self, instance: IPInstance) -> None:
        name = instance.name
        if self.instances.get(name) is instance:
            self.instances.pop(name, None)
            self._meta.pop(name, None)
            self._unhold(instance)
        self.ipam.release(instance.address.ip.partition("/")[0], instance.owner_key)
        self._mark_dirty(instance)
        self._wake_waiting()

    def _mark_dirty(self, instance: IPInstance) -> None:
        self._dirty_subnets.add(instance.subnet)
        self._dirty_networks.add(instance.network)
        self._nodes_dirty = True

    # --- contention between active operators ------------------------------------------------------------

    def _note_peers(self, meta: Mapping[str, Any]) -> None:
        """Record the other operators that made (or changed) a claim, by its field managers."""
        for entry in meta.get("managedFields") or ():
            manager = entry.get("manager") if isinstance(entry, Mapping) else None
            if isinstance(manager, str) and manager.startswith(f"{FIELD_MANAGER}/") and manager != self.manager:
                if manager not in self._peers and self.active:
                    logger.info("%s claims addresses too: pods are shared out, searches start apart", manager)
                self._peers[manager] = time.monotonic()

    def _active_peers(self) -> list[str]:
        """The other operators that made a claim lately."""
        now = time.monotonic()
        for manager, seen in list(self._peers.items()):
            if now - seen > CONTENTION_SECONDS:
                del self._peers[manager]
        return sorted(self._peers)

    def _contended(self) -> bool:
        return bool(self._active_peers())

    def _leave_to_peer(self, key: str, uid: str) -> bool:
        """Whether another active operator is the one for this pod, and has not had a second yet.

        Each pod goes to one of the active operators (the highest hash of operator and pod: every
        operator that knows the same peers computes the same one), so two operators do not both
        claim for every pod. If the chosen one has not claimed within ``YIELD_SECONDS`` (it is slow,
        or gone), this one claims."""
        peers = self._active_peers()
        if not peers:
            return False
        chosen = max([self.manager, *peers], key=lambda m: hashlib.blake2b(f"{m}/{uid or key}".encode()).digest())
        if chosen == self.manager:
            return False
        first = self._yielded.setdefault(key, time.monotonic())
        left = YIELD_SECONDS - (time.monotonic() - first)
        if left <= 0:
            return False
        self.queue.add_later(key, left, urgent=True)
        return True

    def _spread(self, seed: str, network: str, versions: list[int], subnets: Mapping[int, str]) -> dict[int, str]:
        """The subnets to allocate from, and the start of each one's search, chosen by the pod (a hash
        of its UID) rather than by where this instance allocated last. Operators racing for the same
        pods then pick the same address for one pod (the loser finds that pod already holding it: no
        second claim to undo) and different addresses for different pods (no chain of lost claims),
        without talking to each other."""
        chosen = dict(subnets)
        for version in versions:
            candidates = sorted(
                name
                for name, subnet in self.subnets.items()
                if subnet.network == network
                and name == subnets.get(version, name)
                and (pool := self._pool(name)) is not None
                and pool.version == version
                and (version in subnets or (not pool.private and pool.available > 0))
            )
            if not candidates:
                continue
            digest = int.from_bytes(hashlib.blake2b(f"{seed}/{version}".encode(), digest_size=8).digest(), "little")
            name = candidates[digest % len(candidates)]
            chosen[version] = name
            pool = self.ipam.pool(name)
            pool.rewind(((digest >> 16) % pool.spec.capacity, pool.cursor[1]))
        return chosen

    def _pool(self, name: str) -> SubnetPool | None:
        try:
            return self.ipam.pool(name)
        except InvalidValue:
            return None

    # --- reconciling pods ------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                if self.active:
                    await self.reconcile(key)
            except PodChanged:
                logger.debug("pod %s changed under our write; again with the newer version", key)
                self.queue.add_later(key, CONFLICT_RETRY_SECONDS)
            except ApiError as e:
                if e.status != 409:
                    logger.exception("reconciling pod %s failed; retrying", key)
                    self.queue.add_later(key, RETRY_SECONDS)
                else:
                    logger.debug("reconciling pod %s: %s; again soon", key, e)
                    self.queue.add_later(key, CONFLICT_RETRY_SECONDS)
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
        if held and not (self.details and self.pod_informer.listed):
            # Its decisions read what only the full IPInstances tell, and whether its pod exists.
            self._deferred.add(key)
            return
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
        addresses = {n: self._addresses([n])[0] for n in (*plan.delete, *plan.reserve)}
        for name in plan.delete:
            await self._delete_named(name)
        for name in plan.reserve:
            await self._patch_instance(name, d.reserve_patch())
        if plan.delete:
            released = ", ".join(addresses[n] for n in plan.delete)
            self.events.normal(about, ev.RELEASE_SUCCEEDED, f"released {released}")
        if plan.reserve:
            reserved = ", ".join(addresses[n] for n in plan.reserve)
            self.events.normal(about, ev.RESERVE_SUCCEEDED, f"reserved {reserved}")

    async def _workloads_exist(self, key: str, held: list[IPInstance]) -> bool:
        """Whether the workloads keeping these addresses still exist: asked of the API, not the cache
        (a cache still filling at start must not free an address a StatefulSet keeps).

        The referred object records kind, name and UID, and the API group as known: each configured
        workload it may be is listed by name (a list, unlike a get, tells a missing resource from a
        missing object), and the UID says whether it is the same workload. When one of them cannot
        be listed, the addresses stay: whether their workload lives is unknown.
        """
        namespace = key.partition("/")[0]
        unknown = False
        for instance in held:
            ref = instance.binding.referred_object
            if ref is None or not d.is_retained(instance, self.kinds):
                continue
            group = _group(instance)
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
            self._remember_stored(updated)

    async def _delete_named(self, name: str) -> None:
        """Delete our claim of that name, unless the watch has told of its end meanwhile."""
        instance = self.instances.get(name)
        if instance is not None:
            await self._delete_instance(instance)

    async def _delete_instance(self, instance: IPInstance) -> None:
        """Delete our claim; the UID precondition spares a newer claim of the same address."""
        uid = self._meta.get(instance.name, _NO_META)[0]
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            await self.kube.delete(custom_path(names.PLURAL_IPINSTANCE, instance.name), body)
        except ApiError as e:
            if e.status != 409:
                raise
        self._touch(instance.name)
        self._forget(instance)

    async def _set_finalizer(self, pod: Mapping[str, Any], present: bool) -> None:
        patch = d.finalizer_patch(pod, present)
        if patch is None:
            return
        meta = pod.get("metadata") or {}
        try:
            updated = await self.kube.patch(core_path("pods", meta.get("namespace"), meta.get("name")), patch)
        except ApiError as e:
            if e.status == 409:
                raise PodChanged(str(e)) from None
            raise
        if updated is not None and (key := d.key_of(updated)) in self.pods:
            self.pods[key] = cache.slim_pod(updated)

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
            await self._delete_named(name)
        held = self._held(key)
        for name in d.surplus(held):
            logger.info("pod %s: address %s claimed twice (two active operators); dropping it", key, name)
            await self._delete_named(name)
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
            self._yielded.pop(key, None)
            return
        self._first_seen.setdefault(key, time.monotonic())
        if not request.ip_pool and self._leave_to_peer(key, uid):
            return
        namespace_uid = str(((namespace or {}).get("metadata") or {}).get("uid") or "")
        await self._allocate(key, pod, request, held, missing, namespace_uid)

    async def _allocate(  # noqa: PLR0917  # the pod's request as _ensure_addresses resolved it
        self,
        key: str,
        pod: dict[str, Any],
        request: PodNetworkRequest,
        held: list[IPInstance],
        missing: list[int],
        namespace_uid: str,
    ) -> None:
        """Claim the missing versions' addresses for the pod, and report how that went."""
        about = self._about(key, pod)
        retain = request.stateful is not None and request.retain
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
                namespace_uid=namespace_uid,
            )
        except _Outpaced as e:
            self._retry_later(key, CONTENTION_RETRY_SECONDS)
            logger.info("pod %s: %s; trying again", key, e)
            return
        except (NoAddressAvailable, InvalidValue, AddressConflict) as e:
            self._fail(key, about, str(e))
            self._retry_later(key)
            return
        self._failures.pop(key, None)
        started = self._first_seen.pop(key, None)
        if started is not None:
            self.metrics.allocation_seconds.observe(time.monotonic() - started)
        if not created:
            return
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
        """Claim one address per missing version; all or none (a half dual stack is undone).

        Returns the claims this call created (a version another operator claimed for this very pod
        first counts as done, not as created)."""
        created: list[Allocation] = []
        left = list(versions)
        lost = 0
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        pending: list[Allocation] = []
        try:
            while left:
                pending = self._pick(key, uid=uid, network=network, versions=left, subnets=subnets, pool=pool)
                while pending:
                    allocation = pending.pop(0)
                    body = d.build_ipinstance(allocation, pod, referred, mac, index, namespace_uid=namespace_uid)
                    outcome = await self._create(allocation, body, key)
                    if outcome != _LOST:
                        left.remove(allocation.version)
                        if outcome == _CREATED:
                            created.append(allocation)
                        continue
                    lost += 1
                    if pool:
                        raise AddressConflict(allocation.address, (allocation.instance_name,))
                    if lost >= MAX_LOST_CLAIMS:
                        raise _Outpaced(f"lost {lost} claims to another operator")
        except BaseException:
            for allocation in pending:
                self._settle(allocation, key)
            for allocation in created:
                await self._delete_named(allocation.instance_name)
            raise
        return created

    def _pick(
        self,
        key: str,
        *,
        uid: str,
        network: str,
        versions: list[int],
        subnets: Mapping[int, str],
        pool: tuple[str, ...],
    ) -> list[Allocation]:
        """Addresses for the missing versions, held in IPAM (in flight) until their claim settles."""
        picked: list[Allocation] = []
        if pool:
            try:
                for address in (a for a in pool if (6 if ":" in a else 4) in versions):
                    picked.append(self.ipam.assign(network, address, key))
            except HybridlayError:
                for allocation in picked:
                    self.ipam.release(allocation.address, key)
                raise
        else:
            if self._contended():
                subnets = self._spread(uid or key, network, versions, subnets)
            family = (
                IPFamily.DUAL_STACK if len(versions) == 2 else (IPFamily.IPV4 if versions[0] == 4 else IPFamily.IPV6)
            )
            picked = self.ipam.allocate(network, key, family, {v: s for v, s in subnets.items() if v in versions})
        for allocation in picked:
            self._inflight[allocation.instance_name] = (network, allocation.address, key, allocation.subnet)
        return picked

    def _settle(self, allocation: Allocation, key: str) -> None:
        """Give up a pick: IPAM forgets it, and shows the address's holder as the cache knows it."""
        name = allocation.instance_name
        self._inflight.pop(name, None)
        self.ipam.release(allocation.address, key)
        holder = self.instances.get(name)
        if holder is not None and not holder.terminating:
            with contextlib.suppress(AddressConflict, InvalidValue):
                self.ipam.assign(holder.network, allocation.address, holder.owner_key, holder.subnet)

    async def _create(self, allocation: Allocation, body: dict[str, Any], key: str) -> str:
        name = allocation.instance_name
        try:
            stored = await self.kube.create_object(custom_path(names.PLURAL_IPINSTANCE), body, self.manager)
        except BaseException:
            self._settle(allocation, key)
            raise
        if stored is None:
            return await self._take_holders_word(allocation, body, key)
        self._inflight.pop(name, None)
        instance = self._remember_stored(stored)
        if instance is None:
            # Deleted already (another operator dropped it as one too many): look at the pod again.
            self._settle(allocation, key)
            self.queue.add(key)
            return _OURS
        self._mark_dirty(instance)
        return _CREATED

    async def _take_holders_word(self, allocation: Allocation, body: Mapping[str, Any], key: str) -> str:
        """Our claim got 409: find who holds the address, and record that.

        ``_OURS`` when the holder is this very pod (another operator instance claimed it for the same
        pod first): the address is the pod's, nothing more to claim for that version. The watch has
        usually told of another pod's claim already; only otherwise is the holder read.
        """
        name = allocation.instance_name
        pod_uid = body["spec"]["binding"].get("podUID")
        holder = self.instances.get(name)
        if holder is None or holder.terminating or holder.owner_key == key:
            raw = await self.kube.get(custom_path(names.PLURAL_IPINSTANCE, name))
            holder = self._remember_stored(raw) if raw is not None else None
            if raw is not None:
                self._note_peers(raw.get("metadata") or {})
        ours = holder is not None and holder.owner_key == key and holder.binding.pod_uid == pod_uid
        self._inflight.pop(name, None)
        if holder is None or holder.owner_key != key:
            self.ipam.release(allocation.address, key)
        if holder is not None:
            with contextlib.suppress(AddressConflict, InvalidValue):
                self.ipam.assign(holder.network, allocation.address, holder.owner_key, holder.subnet)
            self._mark_dirty(holder)
            if not ours and self.active:
                self.queue.add(holder.owner_key)  # its pod may now hold one too many
        if ours:
            return _OURS
        logger.debug("address %s was claimed by someone else first; taking the next", allocation.address)
        return _LOST

    # --- orphans, resync, lease --------------------------------------------------------------------------

    async def collect_orphans(self) -> list[str]:
        """Delete IPInstances nobody holds.

        The claims come from the cache (the watch's view: never newer than now), the pods from a
        fresh list read afterwards: a pod that holds an address existed before its IPInstance did,
        so it is in that list unless it is really gone. The UID precondition of the delete spares
        a claim made anew since the cache saw the old one.
        """
        await self._details_loaded.wait()
        claims = [
            (instance, self._meta.get(name, _NO_META)[0], _group(instance))
            for name, instance in list(self.instances.items())
            if name not in self._inflight and not instance.terminating
        ]
        pods = await self.kube.list(core_path("pods"))
        live, unlisted = await self._live_workloads()
        pod_uids = {d.key_of(p): (p.get("metadata") or {}).get("uid", "") for p in pods}
        removed = []
        for instance, uid, group in claims:
            unknown = d.owner_unlisted(instance, group, self.stateful_workloads, unlisted)
            if not d.is_orphan(instance, pod_uids, live, self.kinds, owner_unknown=unknown):
                continue
            if self.instances.get(instance.name) is not instance:
                continue  # changed since: the next collection looks again
            body = {"preconditions": {"uid": uid}} if uid else None
            try:
                await self.kube.request("DELETE", custom_path(names.PLURAL_IPINSTANCE, instance.name), body)
            except ApiError as e:
                if e.status not in (404, 409):
                    logger.warning("could not delete orphaned IPInstance %s: %s", instance.name, e)
                    continue
            removed.append(instance.name)
            self._touch(instance.name)
            self._forget(instance)
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

    def _recheck_keys(self) -> set[str]:
        """The pods, and the owners of claims whose pod is gone and which are not simply kept for a
        workload: a retained, unbound address waits for its workload's end, which the workload's
        watch and orphan collection see (asking the API per address would be one request for each
        of 100,000 kept addresses)."""
        keys = set(self.pods)
        for owner, held in self.held.items():
            if owner in keys:
                continue
            for name in held:
                instance = self.instances.get(name)
                if instance is not None and (
                    not d.is_retained(instance, self.kinds) or instance.binding.pod_uid or instance.binding.node_name
                ):
                    keys.add(owner)
                    break
        return keys

    async def _resync_loop(self) -> None:
        """Every ``resync_seconds``: list the IPInstances again (memory converges to the API's),
        collect orphans, and look at every pod again (retries of failed ones)."""
        await self._details_loaded.wait()
        first = True
        listed, took = time.monotonic(), 0.0
        while True:
            # A list of 100,000 IPInstances costs the API server seconds: at most a tenth of the time.
            if not first and time.monotonic() - listed >= RELIST_SHARE * took:
                listed = time.monotonic()
                try:
                    await asyncio.wait_for(self.instance_informer.relist(), RELIST_TIMEOUT_SECONDS)
                except Exception:
                    logger.exception("listing the IPInstances again failed")
                took = time.monotonic() - listed
            if self.active:
                try:
                    await self.collect_orphans()
                except Exception:
                    logger.exception("orphan collection failed")
                if not first:
                    for key in self._recheck_keys():
                        self.queue.add(key)
            first = False
            self._resynced = True
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
                self._peers.clear()  # the operators whose claims we saw were active before: no more
                for key in self._recheck_keys():
                    self.queue.add(key)
                if self._resynced:  # else the first resync, still to come, collects the orphans
                    self._resync_now.set()
            elif not holding and self.active:
                logger.info("%s is now a standby", self.config.identity)
                self.active = False
            await asyncio.sleep(max(1.0, self.config.lease_seconds / 3))

    # --- status, node labels, metrics ----------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        last = 0.0
        while True:
            await asyncio.sleep(STATUS_FLUSH_SECONDS)
            # In a burst of claims the counts change with every pod: written less often then, so
            # the API's writes go to the claims; the last counts are written once the burst is over.
            if not self.active or (not self.queue.idle and time.monotonic() - last < BUSY_FLUSH_SECONDS):
                continue
            last = time.monotonic()
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

    # --- read-only views: admission, the probe server ------------------------------------------------------

    def node_labels_by_name(self) -> Mapping[str, Mapping[str, str]]:
        return self.nodes

    def has_free(self, network: str, family: IPFamily) -> bool:
        try:
            return self.ipam.has_free(network, family)
        except HybridlayError:
            return False

    def view(self, instances: bool = True) -> dict[str, Any]:
        """What this instance holds in memory, for comparison with the API (the probe server's
        ``/state``): every IPInstance it knows (unless not ``instances``), the claims in flight, and
        IPAM's counts per subnet."""
        subnets = {}
        for name in sorted(self.subnets):
            with contextlib.suppress(HybridlayError):
                status = self.ipam.subnet_status(name)
                subnets[name] = {"total": status.total, "used": status.used, "available": status.available}
        return {
            "identity": self.config.identity,
            "ready": self.ready,
            "active": self.active,
            "details": self.details,
            "idle": self.queue.idle and not self._inflight,
            "count": len(self.instances),
            "pods": len(self.pods),
            "instances": {
                name: {
                    "address": i.address.ip,
                    "subnet": i.subnet,
                    "pod": i.owner_key,
                    "podUID": i.binding.pod_uid,
                    "uid": self._meta.get(name, _NO_META)[0],
                }
                for name, i in sorted(self.instances.items())
            }
            if instances
            else {},
            "inflight": sorted(self._inflight),
            "subnets": subnets,
        }


def _group(instance: IPInstance) -> str | None:
    """The API group of a retained address's workload, as the referred object records it (if it does)."""
    ref = instance.binding.referred_object
    return api_group(ref.api_version) if ref is not None and ref.api_version else None


class _Outpaced(Exception):
    """Lost many claims in a row to another active operator: a short pause, then again."""


class _InstanceListing:
    """Feeds complete IPInstance lists and their watch events to the controller."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._found: dict[str, IPInstance] = {}
        self._metas: dict[str, tuple[str, str]] = {}

    def listing(self) -> Callable[[dict[str, Any]], None]:
        controller = self.controller
        controller._touched = set()
        found: dict[str, IPInstance] = {}
        metas: dict[str, tuple[str, str]] = {}
        self._found, self._metas = found, metas

        def on_item(obj: dict[str, Any]) -> None:
            instance = controller._parse(cache.parse_instance, obj)
            if instance is None or instance.terminating:
                return
            meta = obj.get("metadata") or {}
            found[instance.name] = instance
            metas[instance.name] = (str(meta.get("uid") or ""), str(meta.get("resourceVersion") or ""))

        return on_item

    def listed(self) -> None:
        found, metas = self._found, self._metas
        self._found, self._metas = {}, {}
        self.controller._replace(found, metas)

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        self.controller.observe_instance(kind, obj)


class _PodListing:
    """Feeds complete pod lists and their watch events to the controller."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._found: dict[str, dict[str, Any]] = {}

    def listing(self) -> Callable[[dict[str, Any]], None]:
        controller = self.controller
        found: dict[str, dict[str, Any]] = {}
        self._found = found

        def on_item(obj: dict[str, Any]) -> None:
            # Each pod is taken at once, not at the end of the list: a burst's first claims go out
            # while the rest of the list is still read.
            key = d.key_of(obj)
            found[key] = controller.pods[key] = cache.slim_pod(obj)
            if controller.active:
                controller._queue_pod(key)

        return on_item

    def listed(self) -> None:
        controller = self.controller
        found, self._found = self._found, {}
        gone = controller.pods.keys() - found.keys()
        for key in gone:
            controller._drop_pod(key)
            if controller.active:
                controller.queue.add(key)
        controller._undefer()

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        self.controller.observe_pod(kind, obj)
