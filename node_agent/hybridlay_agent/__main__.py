"""``hybridlay-agent`` / ``python -m hybridlay_agent``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from hybridlay_agent.agent import Agent
from hybridlay_agent.kube import read_node_annotations
from hybridlay_agent.settings import parse_args, with_node_annotations

log = logging.getLogger("hybridlay_agent")


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("HYBRIDLAY_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # A Node's own interface names (networking.hybridlay.io/*-parent) over the (DaemonSet's) settings.
    try:
        settings, changes = with_node_annotations(settings, read_node_annotations(settings))
    except ValueError as e:
        raise SystemExit(f"hybridlay-agent: {e}") from None
    for name, value in sorted(changes.items()):
        log.info("%s %s from the Node's annotation", name, value)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Agent(settings).run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
