"""``hybridlay-operator`` (or ``python -m hybridlay_operator``): settings come from the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from hybridlay.errors import InvalidValue
from hybridlay_operator.config import OperatorConfig
from hybridlay_operator.runner import Operator


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kopf logs every handled event at INFO ("Handler ... succeeded"): thousands a second in a burst.
    logging.getLogger("kopf").setLevel(os.environ.get("KOPF_LOG_LEVEL", "WARNING").upper())
    try:
        config = OperatorConfig.from_env(os.environ)
    except InvalidValue as e:
        sys.exit(f"hybridlay-operator: bad setting: {e}")
    asyncio.run(Operator(config).run())


if __name__ == "__main__":
    main()
