"""The agent's ``reconciled`` log line, without a kernel or API: INFO only when the node changed."""

from __future__ import annotations

import json
import logging

import pytest

from hybridlay_agent.agent import log_reconciled
from hybridlay_agent.reconciler import Result


def logged(caplog: pytest.LogCaptureFixture, result: Result) -> tuple[int, dict[str, object]]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="hybridlay_agent.agent"):
        log_reconciled(result)
    [record] = caplog.records
    return record.levelno, json.loads(record.getMessage())


def test_reconcile_that_wrote_is_info_with_its_count(caplog: pytest.LogCaptureFixture) -> None:
    level, fields = logged(caplog, Result(writes=3, pending=["route"]))
    assert level == logging.INFO
    assert fields == {"event": "reconciled", "writes": 3, "pending": 1}


def test_reconcile_that_changed_nothing_is_debug(caplog: pytest.LogCaptureFixture) -> None:
    assert logged(caplog, Result()) == (logging.DEBUG, {"event": "reconciled", "writes": 0, "pending": 0})
    # Something still waiting for its device is no change either: every resync would repeat it.
    assert logged(caplog, Result(pending=["route"]))[0] == logging.DEBUG
