"""Liveness, readiness, Prometheus metrics and a read-only view of the operator's memory, on one small
HTTP server (cluster-internal, no secrets: addresses and pod names, as ``kubectl get ipinstances``
shows them to anyone who may list them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp.web
import prometheus_client
from prometheus_client import CollectorRegistry, Gauge, Histogram


class Metrics:
    """The operator's metrics (reference §3), in a registry of their own so instances do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ip_usage = Gauge(
            "ip_usage",
            "Addresses of a network by family and usage (total, used, available)",
            ["networkName", "ipFamily", "usageType"],
            registry=self.registry,
        )
        self.subnet_ip_usage = Gauge(
            "subnet_ip_usage",
            "Addresses of a subnet by usage (total, used, available)",
            ["subnetName", "usageType"],
            registry=self.registry,
        )
        self.allocation_seconds = Histogram(
            "ip_allocation_period_seconds",
            "Seconds from seeing a pod that needs addresses to holding them",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )


def build_app(
    metrics: Metrics, is_ready: Callable[[], bool], view: Callable[[bool], dict[str, Any]] | None = None
) -> aiohttp.web.Application:
    """``/healthz``, ``/readyz``, ``/metrics``, and with ``view`` ``/state``: what the operator holds in
    memory (its IPInstances, claims in flight, IPAM's counts), to compare with the API's objects."""

    async def healthz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        # Answering at all proves the event loop runs; that is what liveness asks.
        return aiohttp.web.Response(text="ok")

    async def readyz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        if is_ready():
            return aiohttp.web.Response(text="ready")
        return aiohttp.web.Response(status=503, text="starting: state not rebuilt yet")

    async def serve_metrics(_: aiohttp.web.Request) -> aiohttp.web.Response:
        body = prometheus_client.generate_latest(metrics.registry)
        return aiohttp.web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    app = aiohttp.web.Application()
    routes = [
        aiohttp.web.get("/healthz", healthz),
        aiohttp.web.get("/readyz", readyz),
        aiohttp.web.get("/metrics", serve_metrics),
    ]
    if view is not None:
        state = view

        async def serve_state(request: aiohttp.web.Request) -> aiohttp.web.Response:
            # ?instances=0: the counts alone (100,000 IPInstances are 10 MB of JSON).
            body = state(request.query.get("instances", "1") != "0")
            return aiohttp.web.Response(text=json.dumps(body), content_type="application/json")

        routes.append(aiohttp.web.get("/state", serve_state))
    app.add_routes(routes)
    return app


async def serve(app: aiohttp.web.Application, host: str, port: int) -> tuple[aiohttp.web.AppRunner, int]:
    """Start serving; returns the runner (to clean up) and the bound port (``port=0`` picks one)."""
    # No access log: the kubelet's probes would write a line every few seconds.
    runner = aiohttp.web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
