"""hybridlay_agent.cni_install: the agent DaemonSet's init container lays the CNI plugin and its
conflist out on the node as the install role does, atomically, changing only what differs."""

from __future__ import annotations

import os
from pathlib import Path

from hybridlay_agent import cni_install

REPO = Path(__file__).resolve().parents[2]


def image_source(tmp_path: Path) -> Path:
    """The plugin's files as the Containerfile copies them into the image."""
    source = tmp_path / "image"
    (source / "hybridlay_cni").mkdir(parents=True)
    for module in (REPO / "cni" / "hybridlay_cni").glob("*.py"):
        (source / "hybridlay_cni" / module.name).write_bytes(module.read_bytes())
    (source / "hybridlay").write_bytes((REPO / "cni" / "hybridlay").read_bytes())
    (source / "10-hybridlay.conflist").write_bytes((REPO / "cni" / "10-hybridlay.conflist").read_bytes())
    return source


def test_installs_then_changes_nothing_then_repairs(tmp_path):
    source, host = image_source(tmp_path), tmp_path / "host"
    changed = cni_install.install(source, host)
    assert changed[-1] == "/etc/cni/net.d/10-hybridlay.conflist"  # last: the runtime's signal
    plugin = host / "opt/hybridlay/cni/hybridlay"
    assert plugin.stat().st_mode & 0o777 == 0o755
    link = host / "opt/cni/bin/hybridlay"
    assert os.readlink(link) == "/opt/hybridlay/cni/hybridlay"  # the node's path, not the mount's
    assert (host / "opt/hybridlay/cni/hybridlay_cni/shim.py").stat().st_mode & 0o777 == 0o644
    assert cni_install.install(source, host) == []
    (host / "etc/cni/net.d/10-hybridlay.conflist").write_text("{}")
    assert cni_install.install(source, host) == ["/etc/cni/net.d/10-hybridlay.conflist"]


def test_same_layout_as_the_install_role(tmp_path):
    """roles/install/tasks/node.yml: plugin and package in install_cni_lib_dir, a symlink in the bin dir."""
    node_tasks = (REPO / "roles/install/tasks/node.yml").read_text()
    assert "{{ install_cni_lib_dir }}/hybridlay_cni/" in node_tasks and "state: link" in node_tasks
    defaults = (REPO / "roles/install/defaults/main.yml").read_text()
    assert f"install_cni_lib_dir: {cni_install.LIB_DIR}" in defaults
    assert f"install_cni_bin_dir: {cni_install.BIN_DIR}" in defaults
    assert f"install_cni_conf_dir: {cni_install.CONF_DIR}" in defaults


def test_missing_image_files_are_an_error(tmp_path, capsys):
    assert cni_install.main(["--source", str(tmp_path / "empty"), "--host-root", str(tmp_path)]) == 1
    assert "not in the image" in capsys.readouterr().err
