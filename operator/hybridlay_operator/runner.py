"""One operator instance: controller, kopf (watches and webhook server) and the probe server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import kopf

from hybridlay_operator import admission, probes
from hybridlay_operator.config import OperatorConfig
from hybridlay_operator.controller import Controller
from hybridlay_operator.handlers import build_registry
from hybridlay_operator.kube import Kube, load_client

logger = logging.getLogger(__name__)


class NamespacedWebhookServer(kopf.WebhookServer):
    """kopf's TLS webhook server, with the review's namespace given to objects that lack one."""

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async def serve(review: Any, **kwargs: Any) -> Any:
            return await fn(admission.with_request_namespace(review), **kwargs)

        async for client_config in super().__call__(cast(kopf.WebhookFn, serve)):
            yield client_config


def build_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # Our own Events say what happened to a pod; kopf's per-handler chatter would double the writes.
    settings.posting.enabled = False
    # No kopf peering: a Lease (or nothing) decides who acts, and correctness needs neither.
    settings.peering.standalone = True
    settings.peering.mandatory = False
    if config.webhook_certfile:
        settings.admission.server = NamespacedWebhookServer(
            addr=config.webhook_addr,
            port=config.webhook_port,
            certfile=config.webhook_certfile,
            pkeyfile=config.webhook_keyfile,
        )
    # One worker per object and event stream: let idle ones go soon (20,000 IPInstances, 1,000s of pods).
    settings.queueing.idle_timeout = 1.0
    settings.queueing.exit_timeout = 0.5
    # The webhook configurations are installed with the manifests, not patched at runtime.
    settings.admission.managed = None
    return settings


class Operator:
    """Embeddable: tests run several in one process, each with its own registry and state."""

    def __init__(self, config: OperatorConfig, kube: Kube | None = None, probe_host: str = "0.0.0.0") -> None:  # noqa: S104
        self.config = config
        self.kube = kube or Kube(load_client())
        self.controller = Controller(self.kube, config)
        self.registry = build_registry(self.controller, webhooks=bool(config.webhook_certfile))
        self.probe_host = probe_host
        self.probe_port = 0

    async def run(self, stop_flag: asyncio.Event | None = None) -> None:
        # The state's first reads overlap kopf's own start (login, API discovery): ready sooner.
        self.controller.prefetch()
        app = probes.build_app(self.controller.metrics, lambda: self.controller.ready, self.controller.view)
        runner, self.probe_port = await probes.serve(app, self.probe_host, self.config.probe_port)
        try:
            await kopf.operator(
                registry=self.registry,
                settings=build_settings(self.config),
                clusterwide=True,
                standalone=True,
                stop_flag=stop_flag,
            )
        finally:
            await runner.cleanup()
            await self.kube.aclose()
