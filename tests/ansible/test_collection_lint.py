"""The collection as Galaxy would ship it: built with ansible-galaxy, then checked by
`ansible-test sanity` (empty ignore file) and ansible-lint's production profile.

Both run on the built artifact in a temporary ansible_collections/hybridlay/fabric tree: that is
what users install, and it keeps the repository's other Python code (operator, agent, ...) out
of ansible-test's scope. ansible-test's pip bootstrap script lives on a host these machines cannot
reach; get_pip_offline.py stands in for it (see there).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GET_PIP_VERSION = "24.2"  # ansible-test 2.19's pinned pip (ansible_test/_internal/python_requirements.py)


@pytest.fixture(scope="module")
def built_collection(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("collection")
    result = subprocess.run([str(Path(sys.executable).with_name("ansible-galaxy")), "collection", "build",
                             "--output-path", str(work), str(REPO)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    root = work / "ansible_collections" / "hybridlay" / "fabric"
    root.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(root), "-xzf", str(next(work.glob("hybridlay-fabric-*.tar.gz")))], check=True)
    # ansible-test finds the collection's files through git when it can: a repository of its own.
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_built_collection_leaves_out_the_project(built_collection):
    """Only Ansible content ships; a new top-level folder of the project needs a build_ignore line."""
    shipped = {p.name for p in built_collection.iterdir()} - {".git"}
    assert shipped == {"MANIFEST.json", "FILES.json", "README.md", "meta", "plugins", "roles", "playbooks",
                       "inventories", "docs", "tests"}, "update build_ignore in galaxy.yml"
    assert (built_collection / "plugins/modules/vlan_interface.py").exists()
    assert (built_collection / "roles/install/meta/argument_specs.yml").exists()
    assert sorted(p.name for p in (built_collection / "tests/sanity").iterdir()) == ["ignore-2.19.txt"]
    assert (built_collection / "tests/sanity/ignore-2.19.txt").read_text() == ""


def test_ansible_test_sanity(ansible, built_collection):
    cache = Path.home() / ".ansible/test/cache" / f"get_pip_{GET_PIP_VERSION.replace('.', '_')}.py"
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("get_pip_offline.py"), cache)
    result = ansible(["ansible-test", "sanity", "--python", "3.11", "--local"], cwd=built_collection)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def test_ansible_lint_production_profile(ansible, built_collection):
    result = ansible(["ansible-lint", "--profile", "production", "--offline", "playbooks", "roles"],
                     cwd=built_collection)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "production" in result.stdout + result.stderr
