"""Shared set-up of the collection's tests: make ``ansible_collections.hybridlay.fabric`` importable.

The repository root is the collection root, so a temporary ``ansible_collections/hybridlay/fabric``
symlink to it is the collection as Ansible sees it once installed. Ansible's own collection finder
(as ansible-test's unit tests use it) then serves both our collection and the bundled ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
_tag = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
COLLECTIONS_ROOT = Path(tempfile.gettempdir()) / f"hybridlay-collections-{_tag}"
_link = COLLECTIONS_ROOT / "ansible_collections" / "hybridlay" / "fabric"
if not _link.exists():
    _link.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another pytest process made it meanwhile
        _link.symlink_to(REPO)
_AnsibleCollectionFinder(paths=[str(COLLECTIONS_ROOT)])._install()


def ansible_env(**extra: str) -> dict[str, str]:
    """Environment for ansible-* commands: our collection first, the venv's tools on PATH."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT),
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCAL_TEMP=str(COLLECTIONS_ROOT / "tmp"),
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


def run_ansible(args: list[str], cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run an ansible command of the venv; output captured for the assertions."""
    return subprocess.run(
        [str(VENV_BIN / args[0]), *args[1:]],
        cwd=cwd or REPO,
        env=ansible_env(**extra),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture
def ansible() -> object:
    return run_ansible
