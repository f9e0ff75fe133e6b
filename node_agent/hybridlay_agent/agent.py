"""The agent: watch → plan → reconcile, on every relevant event and on a periodic resync.

Stopping the agent leaves the data plane as it is: pods keep their connectivity while it restarts,
and the restarted agent finds nothing to change. With a BGP interface, the node's BGP speaker
(:mod:`hybridlay_agent.bgp_driver`) follows each reconcile and is stopped gracefully with the agent,
so the switches keep the node's routes across the restart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from hybridlay.bgp import BGPNode
from hybridlay.dataplane.planner import NodeFacts, plan, vtep_mac
from hybridlay.model import NodeInfo, SecretKeyRef, VTEPInfo
from hybridlay_agent.bgp_driver import BGPDriver, plan_speaker, secret_value
from hybridlay_agent.kube import Kube
from hybridlay_agent.link_events import LinkUpWatcher
from hybridlay_agent.neighbours import NeighbourMissResponder
from hybridlay_agent.reconciler import Reconciler, Result
from hybridlay_agent.settings import Settings
from hybridlay_agent.view import ClusterView

log = logging.getLogger(__name__)
DEBOUNCE_SECONDS = 0.05
T = TypeVar("T")


def log_reconciled(result: Result) -> None:
    """INFO only if the node changed: a reconcile runs on every event and resync, mostly writing nothing."""
    level = logging.INFO if result.writes else logging.DEBUG
    log.log(level, json.dumps({"event": "reconciled", "writes": result.writes, "pending": len(result.pending)}))


class Agent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.view = ClusterView(settings)
        # pyroute2 sockets are used from one thread only.
        self._netlink_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._tunnels: set[str] = set()  # the VXLAN devices of the last plan, for the responder

    async def _in_netlink_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._netlink_thread, fn, *args)

    async def run(self, stop: asyncio.Event) -> None:
        reconciler = await self._in_netlink_thread(Reconciler)
        try:
            facts, local_ips = await self._in_netlink_thread(self._node_facts, reconciler)
            loop = asyncio.get_running_loop()
            kube = Kube(self.settings, self.view, loop)
            info = NodeInfo(self.settings.node_name, VTEPInfo(facts.vtep_ip, vtep_mac(facts.name), local_ips))
            await asyncio.to_thread(kube.publish_nodeinfo, info)
            kube.start()
            responder = self._start_responder(loop)
            links = LinkUpWatcher(lambda _: loop.call_soon_threadsafe(self.view.reconcile_requested.set))
            await asyncio.to_thread(links.start)
            bgp = self._bgp_driver(kube)
            cni = await self._start_cni_server(bgp)
            reconciling = asyncio.create_task(self._reconcile_loop(kube, reconciler, facts, bgp))
            try:
                await stop.wait()
            finally:
                reconciling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reconciling
                if bgp is not None:
                    await bgp.stop()
                if cni is not None:
                    await cni.stop()
                if responder is not None:
                    await asyncio.to_thread(responder.stop)
                await asyncio.to_thread(links.stop)
                kube.stop()
        finally:
            await self._in_netlink_thread(reconciler.close)
            self._netlink_thread.shutdown(wait=True)

    def _start_responder(self, loop: asyncio.AbstractEventLoop) -> NeighbourMissResponder | None:
        if not self.settings.answer_neighbour_misses:
            return None

        async def lookup(ip: str) -> str | None:
            return self.view.remote_vtep_mac(ip)

        def resolve(ip: str) -> str | None:
            # The view belongs to the event loop: ask it there.
            return asyncio.run_coroutine_threadsafe(lookup(ip), loop).result(timeout=2)

        responder = NeighbourMissResponder(resolve, lambda: self._tunnels)
        responder.start()
        return responder

    def _bgp_driver(self, kube: Kube) -> BGPDriver | None:
        if not self.settings.bgp_parent:
            return None

        async def read_secret(ref: SecretKeyRef) -> str:
            namespace = ref.namespace or self.settings.secret_namespace
            secret = await asyncio.to_thread(kube.core.read_namespaced_secret, ref.name, namespace)
            # The client leaves a Secret's data base64-encoded (str values).
            return secret_value(cast(dict[str, str] | None, secret.data), ref, namespace)

        return BGPDriver(self.settings.bgp_state_dir, read_secret)

    async def _start_cni_server(self, bgp: BGPDriver | None) -> Any:
        if not self.settings.cni_server:
            return None
        from hybridlay_agent.cni_server import CNIServer  # noqa: PLC0415 - pulls in the pod plumbing

        server = CNIServer(
            socket_path=str(self.settings.cni_socket),
            view=self.view,
            announcements=bgp,
            announce_timeout=self.settings.bgp_announce_timeout,
        )
        await server.start()
        return server

    def _node_facts(self, reconciler: Reconciler) -> tuple[NodeFacts, tuple[str, ...]]:
        nl = reconciler.nl
        nl.refresh()
        parent = nl.link(self.settings.vxlan_parent)
        if parent is None:
            raise SystemExit(f"--vxlan-parent {self.settings.vxlan_parent}: no such interface on this node")
        addresses = [ipaddress.ip_address(a) for a in nl.global_addresses(parent.name)]
        vtep = self.settings.vtep_ip or next((str(a) for a in sorted(addresses, key=lambda a: a.version)), None)
        if vtep is None:
            raise SystemExit(f"--vxlan-parent {parent.name}: has no global address to use as VTEP; set --vtep-ip")
        facts = NodeFacts(
            name=self.settings.node_name,
            vxlan_parent=self.settings.vxlan_parent,
            vlan_parent=self.settings.vlan_parent,
            bgp_parent=self.settings.bgp_parent,
            vtep_ip=vtep,
            parent_mtu=parent.mtu,
            answer_neighbour_misses=self.settings.answer_neighbour_misses,
        )
        return facts, tuple(str(a) for a in addresses)

    def _bgp_addresses(self, reconciler: Reconciler, interface: str) -> tuple[str, ...]:
        """The BGP interface's global addresses with their prefix length (the speaker's session addresses)."""
        nl = reconciler.nl
        nl.refresh()
        return tuple(
            f"{a.get('address')}/{a['prefixlen']}"
            for a in nl.ipr.get_addr(index=nl.index(interface))
            if a["scope"] == 0  # RT_SCOPE_UNIVERSE
        )

    async def _sync_bgp(self, bgp: BGPDriver, reconciler: Reconciler, interface: str, labels: dict[str, str]) -> None:
        addresses = await self._in_netlink_thread(self._bgp_addresses, reconciler, interface)
        node = BGPNode(self.settings.node_name, interface, addresses=addresses)
        action = await bgp.sync(plan_speaker(self.view.snapshot(), labels, node))
        if action not in ("apply", "none"):
            log.info(json.dumps({"event": "bgp", "action": action}))

    async def _reconcile_loop(
        self, kube: Kube, reconciler: Reconciler, facts: NodeFacts, bgp: BGPDriver | None
    ) -> None:
        # Never plan from a partial view: an empty list would mean "remove everything".
        await self.view.synced.wait()
        labels: dict[str, str] | None = None
        while True:
            self.view.reconcile_requested.clear()
            try:
                try:
                    labels = await asyncio.to_thread(kube.node_labels)
                except Exception as e:
                    # Without labels the node would seem to leave its underlay networks: never plan from
                    # none; afterwards, the last known ones keep the data plane while the API is away.
                    if labels is None:
                        raise
                    log.warning("cannot read this node's labels (%s); using the last known ones", e)
                desired = plan(dataclasses.replace(facts, labels=labels), self.view.snapshot())
                self._tunnels = {link.name for link in desired.vxlan_links}
                result: Result = await self._in_netlink_thread(reconciler.reconcile, desired)
                log_reconciled(result)
            except Exception:
                log.exception("reconcile failed; retrying at the next event or resync")
            if bgp is not None and self.settings.bgp_parent and labels is not None:
                try:
                    await self._sync_bgp(bgp, reconciler, self.settings.bgp_parent, labels)
                except Exception:
                    log.exception("BGP speaker update failed; retrying at the next event or resync")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.view.reconcile_requested.wait(), self.settings.resync_seconds)
            await asyncio.sleep(DEBOUNCE_SECONDS)
