"""The CLI's edges against the real API (issue 16): a reader that stops early, a name that does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from apitopo import Api
from realcluster import OperatorProcess


def hybridlay(kubeconfig: Path, *args: str, **popen: object) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "import sys; from hybridlay_cli.main import main; sys.exit(main())"]
    return subprocess.Popen([*command, "--kubeconfig", str(kubeconfig), *args], stderr=subprocess.PIPE, **popen)  # type: ignore[call-overload]


def test_a_reader_that_stops_early_gets_no_traceback(
    real_api: Api, real_operator: OperatorProcess, tmp_path: Path
) -> None:
    kubeconfig = real_operator.cluster.write_kubeconfig(tmp_path / "admin")
    read, write = os.pipe()
    os.close(read)  # `| head` that has already exited
    process = hybridlay(kubeconfig, "status", "-o", "json", stdout=write)
    os.close(write)
    _, stderr = process.communicate(timeout=60)
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr, stderr.decode()
    assert process.returncode == 0


def test_filtering_by_a_network_or_subnet_that_does_not_exist_is_an_error(
    real_api: Api, real_operator: OperatorProcess, tmp_path: Path
) -> None:
    kubeconfig = real_operator.cluster.write_kubeconfig(tmp_path / "admin")
    for option in ("--network", "--subnet"):
        process = hybridlay(kubeconfig, "ipinstances", option, "nope", stdout=subprocess.PIPE)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 1
        assert stdout == b""
        assert stderr.decode().strip() == f"hybridlay: error: {option} nope: no such {option.removeprefix('--')}"
    process = hybridlay(kubeconfig, "ipinstances", "--network", "overlay-network", stdout=subprocess.PIPE)
    assert process.wait(timeout=60) == 0
