"""The roles in real containers: molecule's podman driver runs each scenario of molecule/
(create, converge, idempotence, verify, destroy) in Debian 12 containers built with debootstrap.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.netns]

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "molecule" / "_shared"
CONTAINERS_CONF = str(SHARED / "containers.conf")


@pytest.fixture(scope="module")
def debian_image() -> None:
    """The scenarios' image, built once per machine (about a minute) and cached by podman."""
    subprocess.run(["bash", str(SHARED / "build-image.sh")], check=True, timeout=900,
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF": CONTAINERS_CONF})


@pytest.mark.parametrize("scenario", ["node_prep", "vlan_interfaces", "cni_install"])
def test_scenario(ansible, debian_image, scenario):
    result = ansible(["molecule", "test", "-s", scenario], CONTAINERS_CONF=CONTAINERS_CONF)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert f"[{scenario} > idempotence] Executed: Successful" in result.stdout + result.stderr
