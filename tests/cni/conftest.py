"""Fixtures for the CNI plugin's tests (helpers and the stand-in view live in ``cnitest.py``)."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cnitest import Agent, Node, StaticView, netns_add, netns_del


@pytest.fixture
def prefix() -> str:
    """A per-test prefix for namespace and link names (other engineers run namespace tests too)."""
    return "hlc" + secrets.token_hex(3)


@pytest.fixture
def node(prefix: str) -> Iterator[Node]:
    n = Node(prefix)
    try:
        yield n
    finally:
        n.delete()


@pytest.fixture
def view() -> StaticView:
    return StaticView()


@pytest.fixture
def agent(node: Node, view: StaticView) -> Iterator[Agent]:
    a = Agent(node.path, view, address_timeout=2.0, vlan_check_timeout=0.5)
    try:
        yield a
    finally:
        a.stop()


@pytest.fixture
def pods(prefix: str) -> Iterator[Callable[[str], str]]:
    """Factory of pod namespaces (``pods("a")`` → path), all deleted at teardown."""
    created: list[str] = []

    def make(suffix: str) -> str:
        name = f"{prefix}p{suffix}"
        created.append(name)
        return netns_add(name)

    yield make
    for name in created:
        netns_del(name)
