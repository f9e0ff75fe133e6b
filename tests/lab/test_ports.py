"""hybridlay_lab.ports: a published port someone else holds stops the lab before anything is made."""

from __future__ import annotations

import socket

from hybridlay_lab import ports


def test_a_held_port_is_refused_naming_the_setting():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        problem = ports.check("true", "no-such-container", port, "lab_api_published_port")
    assert problem is not None and "-e lab_api_published_port=PORT" in problem and str(port) in problem


def test_a_free_port_or_the_labs_own_passes(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert ports.check("true", "c", port, "s") is None
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        monkeypatch.setattr(ports, "published_by", lambda podman, container: {f"127.0.0.1:{port}"})
        assert ports.check("podman", "lab-control-plane", port, "s") is None


def test_not_a_port():
    assert "not a TCP port" in (ports.check("true", "c", 70000, "lab_api_published_port") or "")
