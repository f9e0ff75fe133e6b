"""``hybridlay-agent`` / ``python -m hybridlay_agent``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from hybridlay_agent.agent import Agent
from hybridlay_agent.settings import parse_args


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("HYBRIDLAY_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Agent(settings).run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
