"""The agent's CNI socket against abusive clients (issue 16: 2, 7, 9): whole framed messages of any
size up to the limit, larger ones refused with an answer, idle connections closed, deep nesting
answered as a decode error. A real agent server on a real unix socket, spoken to as the shim does."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from hybridlay_agent import cni_server
from hybridlay_agent.cni_server import CNIServer
from hybridlay_cni import shim

STATUS_ENV = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/opt/cni/bin"}


class NoPods:
    async def addresses(self, namespace: str, pod: str, timeout: float) -> None:
        raise AssertionError("STATUS asks for no address")


@pytest.fixture
async def server(tmp_path: Path):
    running = CNIServer(str(tmp_path / "run" / "cni.sock"), NoPods())
    await running.start()
    yield running
    await running.stop()


async def call(path: str, stdin: bytes) -> tuple[int, dict]:
    reply = await asyncio.to_thread(shim.exchange, path, shim.encode_request(STATUS_ENV, stdin), 10)
    return reply[0], json.loads(reply[1:]) if reply[1:] else {}


def status_config(padding: int) -> bytes:
    return json.dumps({"cniVersion": "1.1.0", "name": "n", "type": "hybridlay", "padding": "x" * padding}).encode()


async def test_a_large_configuration_arrives_whole(server: CNIServer) -> None:
    stdin = status_config(600_000)  # several reads' worth; a single read got ~210 KiB of it
    assert await call(server.socket_path, stdin) == (0, {})


async def test_a_configuration_over_the_limit_is_refused_with_an_answer(server: CNIServer) -> None:
    code, error = await call(server.socket_path, status_config(shim.MAX_MESSAGE + 10))
    assert code == 1 and error["code"] == 7
    assert "too large" in error["msg"]
    assert await call(server.socket_path, status_config(10)) == (0, {})  # and it still serves


async def test_deep_nesting_is_a_decode_error_and_the_server_goes_on(server: CNIServer) -> None:
    code, error = await call(server.socket_path, b"[" * 200_000 + b"]" * 200_000)
    assert code == 1 and error["code"] == 6
    assert await call(server.socket_path, status_config(10)) == (0, {})


async def test_idle_connections_are_closed(server: CNIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cni_server, "REQUEST_READ_SECONDS", 0.3)
    clients = []
    for _ in range(50):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(server.socket_path)
        client.setblocking(False)
        clients.append(client)
    await asyncio.sleep(1.5)
    try:
        for client in clients:
            assert client.recv(1) == b"", "an idle connection was still held"
    finally:
        for client in clients:
            client.close()
