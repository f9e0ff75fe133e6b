"""install.yml's node part and uninstall.yml's, on this machine through a local connection, with
the CNI folders moved under a temporary directory (the molecule scenario cni_install covers the
install in a container; this covers the removal too)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    node_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        "hybridlay_node": {"vxlan_parent": "eth0"},
        "install_cluster": False,
        "install_cni_lib_dir": str(tmp_path / "opt/hybridlay/cni"),
        "install_cni_bin_dir": str(tmp_path / "opt/cni/bin"),
        "install_cni_conf_dir": str(tmp_path / "etc/cni/net.d"),
    }
    inventory = {"all": {
        "vars": {"hybridlay_networks": [{"name": "init", "type": "Overlay", "netID": 4}],
                 "hybridlay_subnets": [{"name": "init", "network": "init", "cidr": "172.24.0.0/16"}],
                 "hybridlay_check_interfaces": False},
        "children": {"hybridlay_nodes": {"hosts": {"local-node": node_vars}}},
    }}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def test_cni_plugin_installed_idempotently_answers_and_is_removed(ansible, inventory, tmp_path):
    def playbook(name: str) -> dict:
        result = ansible(["ansible-playbook", "-i", str(inventory), f"playbooks/{name}", "--tags", "install"],
                         ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        return json.loads(result.stdout)["stats"]["local-node"]

    assert playbook("install.yml")["changed"] > 0
    plugin = tmp_path / "opt/cni/bin/hybridlay"
    assert plugin.is_symlink() and plugin.resolve() == tmp_path / "opt/hybridlay/cni/hybridlay"
    answer = subprocess.run([str(plugin)], env={"CNI_COMMAND": "VERSION"}, input="", capture_output=True, text=True,
                            check=True)
    assert "1.0.0" in json.loads(answer.stdout)["supportedVersions"]
    conflist = json.loads((tmp_path / "etc/cni/net.d/10-hybridlay.conflist").read_text())
    assert conflist["plugins"][0]["type"] == "hybridlay"
    assert playbook("install.yml")["changed"] == 0

    assert playbook("uninstall.yml")["changed"] > 0
    assert not plugin.exists() and not plugin.is_symlink()
    assert not (tmp_path / "opt/hybridlay/cni").exists()
    assert not (tmp_path / "etc/cni/net.d/10-hybridlay.conflist").exists()
