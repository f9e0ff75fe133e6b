"""Shared fixtures. Test support modules live in tests/support and are importable from any test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from kapi import RunningAPI


@pytest.fixture
def kube_api() -> Iterator[RunningAPI]:
    """A Kubernetes API stand-in (KMock, see tests/support/kapi.py) on a free loopback port."""
    with RunningAPI() as running:
        yield running


@pytest.fixture
def kubeconfig(kube_api: RunningAPI, tmp_path: Path) -> Path:
    """A kubeconfig file pointing at ``kube_api``."""
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")
