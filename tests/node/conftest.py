"""Fixtures of the node data-plane tests; the test bed itself lives in nodebed.py (importable by tests)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
sys.path.insert(0, str(Path(__file__).parent))

import nodebed


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nodebed.NodeCluster]:
    """Three nodes with running agents, a gateway, an external host and the API (see nodebed.py)."""
    with nodebed.node_cluster(tmp_path_factory.mktemp("nodes")) as cluster:
        yield cluster
