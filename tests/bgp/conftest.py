"""Fixtures of the BGP tests: a rack of namespaces with a BIRD ToR (see bgp_rack.py)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# The agent tests reuse the node test bed (tests/node/nodebed.py) and the API stand-in (tests/support).
sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
sys.path.insert(0, str(Path(__file__).parents[1] / "node"))
sys.path.insert(0, str(Path(__file__).parents[1] / "cni"))  # cnitest: runs the real plugin

from bgp_rack import PASSWORD, Rack, build_rack, destroy_rack


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hybridlay-bgp-"))
    path.chmod(0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def rack(workdir: Path) -> Iterator[Rack]:
    built = build_rack(workdir, PASSWORD)
    try:
        yield built
    finally:
        destroy_rack(built)


@pytest.fixture
def frr_rack(workdir: Path) -> Iterator[Rack]:
    """The same rack with FRR instead of BIRD as the ToR."""
    built = build_rack(workdir, PASSWORD, peer_daemon="frr")
    try:
        yield built
    finally:
        destroy_rack(built)
