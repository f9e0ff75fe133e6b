"""The plugin's logic: every command, every cniVersion, every error code, hostile input.

``respond`` takes the environment, stdin and the command dispatcher as parameters; the
dispatcher is a recording stand-in here (the real agent and plumbing are exercised in
test_plumbing_netns.py), so these tests also prove that invalid input is never dispatched.
The shim (what the executable runs) is tested against a real unix socket.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hybridlay_cni import shim, spec
from hybridlay_cni.plugin import respond
from hybridlay_cni.spec import CNIError, Invocation

RESULT = {
    "interfaces": [
        {"name": "hybr0123456789a", "mac": "ee:ee:ee:ee:ee:ee"},
        {"name": "eth0", "mac": "02:12:34:00:00:01", "sandbox": "/var/run/netns/p", "mtu": 1450},
    ],
    "ips": [
        {"address": "10.0.0.5/24", "gateway": "169.254.1.1", "interface": 1},
        {"address": "fd00::5/64", "gateway": "fe80::1", "interface": 1},
    ],
    "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0", "gw": "fe80::1"}],
}


class RecordingAgent:
    """Stand-in for CNIServer.dispatch: records what it is asked, answers a fixed result or error."""

    def __init__(self, reply: dict[str, Any] | None = None, error: CNIError | None = None) -> None:
        self.calls: list[tuple[Invocation, dict[str, Any]]] = []
        self.reply = RESULT if reply is None else reply
        self.error = error

    async def __call__(self, invocation: Invocation, config: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((invocation, config))
        if self.error:
            raise self.error
        return self.reply


def env(command: str = "ADD", **overrides: str) -> dict[str, str]:
    base = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "abc123",
        "CNI_NETNS": "/var/run/netns/p",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def config(version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "net", "type": "hybridlay", "socket": "/run/h/cni.sock", **extra}


def invoke(environment: dict[str, str], stdin: Any, agent: RecordingAgent | None = None) -> tuple[int, Any]:
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    code, text = asyncio.run(respond(environment, data, agent or RecordingAgent()))
    return code, json.loads(text) if text else None


@pytest.mark.parametrize("version", spec.SUPPORTED_VERSIONS)
def test_add_in_every_version(version):
    agent = RecordingAgent()
    code, result = invoke(env(), config(version), agent)
    assert code == 0
    assert result["cniVersion"] == version
    assert [{**i, "mtu": i.get("mtu")} for i in result["interfaces"]] == [
        {**i, "mtu": i.get("mtu") if version == "1.1.0" else None} for i in RESULT["interfaces"]
    ]
    legacy = version in ("0.3.1", "0.4.0")
    assert [ip.get("version") for ip in result["ips"]] == (["4", "6"] if legacy else [None, None])
    assert all(ip["gateway"] in ("169.254.1.1", "fe80::1") for ip in result["ips"])
    invocation, forwarded = agent.calls[0]
    assert invocation == Invocation(
        command="ADD",
        container_id="abc123",
        netns="/var/run/netns/p",
        ifname="eth0",
        pod_namespace="default",
        pod_name="web-0",
    )
    assert forwarded == config(version)


def test_add_chained_after_a_previous_result_shifts_interface_indices():
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "lo", "sandbox": "/var/run/netns/p"}],
        "ips": [{"address": "192.168.9.9/32", "interface": 0}],
        "dns": {"nameservers": ["10.96.0.10"]},
    }
    code, result = invoke(env(), config("1.0.0", prevResult=prev))
    assert code == 0
    assert [i["name"] for i in result["interfaces"]] == ["lo", "hybr0123456789a", "eth0"]
    assert [ip["interface"] for ip in result["ips"]] == [0, 2, 2]
    assert result["dns"] == {"nameservers": ["10.96.0.10"]}


@pytest.mark.parametrize("command", ["DEL", "CHECK", "STATUS", "GC"])
def test_other_commands_print_nothing_on_success(command):
    agent = RecordingAgent(reply={})
    code, out = invoke(env(command), config(), agent)
    assert (code, out) == (0, None)
    assert agent.calls[0][0].command == command


def test_del_without_netns_is_forwarded():
    agent = RecordingAgent(reply={})
    code, _ = invoke(env("DEL", CNI_NETNS=None), config(), agent)
    assert code == 0 and agent.calls[0][0].netns == ""


def test_version_needs_no_agent_and_no_config():
    agent = RecordingAgent()
    code, out = invoke({"CNI_COMMAND": "VERSION"}, b"", agent)
    assert code == 0 and out == {"cniVersion": "1.1.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]}
    assert agent.calls == []


def test_without_kubernetes_args_the_container_is_the_pod():
    agent = RecordingAgent()
    assert invoke(env(CNI_ARGS=None, CNI_CONTAINERID="Ctr-1"), config(), agent)[0] == 0
    assert (agent.calls[0][0].pod_namespace, agent.calls[0][0].pod_name) == ("default", "ctr-1")


@pytest.mark.parametrize(
    ("environment", "stdin", "code", "needle"),
    [
        (env(CNI_COMMAND="BOGUS"), config(), 4, "CNI_COMMAND"),
        (env(CNI_COMMAND=None), config(), 4, "CNI_COMMAND"),
        (env(CNI_CONTAINERID=None), config(), 4, "CNI_CONTAINERID"),
        (env(CNI_IFNAME=None), config(), 4, "CNI_IFNAME"),
        (env(CNI_PATH=None), config(), 4, "CNI_PATH"),
        (env("CHECK", CNI_NETNS=None), config(), 4, "CNI_NETNS"),
        (env(CNI_NETNS="/var/run/netns/../../etc/passwd"), config(), 4, "CNI_NETNS"),
        (env(CNI_NETNS="/etc/passwd"), config(), 4, "CNI_NETNS"),
        (env(CNI_NETNS="relative/netns"), config(), 4, "CNI_NETNS"),
        (env(CNI_NETNS="/var/run/netns//x"), config(), 4, "CNI_NETNS"),
        (env(CNI_NETNS="/proc/1/ns/net/."), config(), 4, "CNI_NETNS"),
        (env(CNI_NETNS="/proc/self/ns/net"), config(), 4, "CNI_NETNS"),
        (env(CNI_NETNS="/proc/1/ns/mnt"), config(), 4, "CNI_NETNS"),
        (env(CNI_NETNS="/proc/1/root/etc/passwd"), config(), 4, "CNI_NETNS"),
        (env(CNI_IFNAME="a" * 16), config(), 4, "CNI_IFNAME"),
        (env(CNI_IFNAME="../eth0"), config(), 4, "CNI_IFNAME"),
        (env(CNI_IFNAME="eth 0"), config(), 4, "CNI_IFNAME"),
        (env(CNI_IFNAME=".."), config(), 4, "CNI_IFNAME"),
        (env(CNI_IFNAME="eth:0"), config(), 4, "CNI_IFNAME"),
        (env(CNI_CONTAINERID="-rf"), config(), 4, "CNI_CONTAINERID"),
        (env(CNI_CONTAINERID="a/b"), config(), 4, "CNI_CONTAINERID"),
        (env(CNI_CONTAINERID="a;b"), config(), 4, "CNI_CONTAINERID"),
        (env(CNI_CONTAINERID="x" * 300), config(), 4, "CNI_CONTAINERID"),
        (env(CNI_ARGS="K8S_POD_NAME"), config(), 4, "CNI_ARGS"),
        (env(CNI_ARGS="K8S_POD_NAME=../../x"), config(), 4, "K8S_POD_NAME"),
        (env(CNI_ARGS="K8S_POD_NAMESPACE=Kube_System"), config(), 4, "K8S_POD_NAMESPACE"),
        (env(), b"{not json", 6, "not valid JSON"),
        (env(), b"\xff\xfe", 6, "not valid JSON"),
        (env(), b"[1, 2]", 6, "must be a JSON object"),
        (env(), config("0.2.0"), 1, "cniVersion"),
        (env(), config("2.0.0"), 1, "cniVersion"),
        (env(), {"name": "net", "type": "hybridlay"}, 1, "cniVersion"),
        (env("CHECK"), config("0.3.1"), 1, "does not allow CHECK"),
        (env("STATUS"), config("1.0.0"), 1, "does not allow STATUS"),
        (env("GC"), config("0.4.0"), 1, "does not allow GC"),
        (env(), config(type="bridge"), 7, "type"),
        (env(), config(name=""), 7, "name"),
        (env(), config(socket="relative.sock"), 7, "socket"),
        (env(), config(socket="/" + "s" * 120), 7, "socket"),
        (env(), config(timeoutSeconds=0), 7, "timeoutSeconds"),
        (env(), config(timeoutSeconds="5"), 7, "timeoutSeconds"),
        (env(), config(mtu=40), 7, "mtu"),
        (env(), config(mtu=True), 7, "mtu"),
        (env(), config(prevResult=[1]), 7, "prevResult"),
        # A malformed previous result is refused before the agent plumbs anything (issue 16, 1).
        (env(), config(prevResult={"ips": [5]}), 7, "prevResult.ips[0]"),
        (env(), config(prevResult={"ips": [{"address": 5}]}), 7, "prevResult.ips[0].address"),
        (env(), config(prevResult={"ips": [{"address": "10.0.0.2/24", "interface": 1}]}), 7, "interface"),
        (env(), config(prevResult={"interfaces": [{"mac": "x"}]}), 7, "prevResult.interfaces[0].name"),
        (env(), config(prevResult={"interfaces": {}}), 7, "prevResult.interfaces"),
        (env(), config(prevResult={"routes": [{"gw": "10.0.0.1"}]}), 7, "prevResult.routes[0].dst"),
        (env(), config(prevResult={"dns": []}), 7, "prevResult.dns"),
        (env(), b"[" * 100_000 + b"]" * 100_000, 6, "not valid JSON"),
        (env("GC"), config(**{"cni.dev/valid-attachments": "all"}), 7, "valid-attachments"),
        (env("GC"), config(**{"cni.dev/valid-attachments": [{"ifname": "eth0"}]}), 7, "valid-attachments[0]"),
        (env(), config(ipam={"type": "host-local"}), 2, "ipam"),
    ],
)
def test_bad_input_is_refused_before_the_agent_is_called(environment, stdin, code, needle):
    agent = RecordingAgent()
    exit_code, out = invoke(environment, stdin, agent)
    assert exit_code == 1
    assert out["code"] == code, out
    assert needle in out["msg"], out
    assert set(out) == {"cniVersion", "code", "msg", "details"}
    assert agent.calls == []


@pytest.mark.parametrize("netns", ["/proc/4242/ns/net", "/proc/1/task/7/ns/net", "/run/netns/cni-1234-abcd"])
def test_runtime_netns_paths_are_accepted(netns):
    assert invoke(env(CNI_NETNS=netns), config())[0] == 0


def test_error_reports_the_configs_version():
    _, out = invoke(env(CNI_IFNAME="x" * 20), config("0.4.0"))
    assert out["cniVersion"] == "1.1.0"  # env is checked before the config is read
    _, out = invoke(env(), config("0.4.0", type="x"))
    assert out["cniVersion"] == "0.4.0"


@pytest.mark.parametrize(
    ("command", "agent_error", "code"),
    [
        ("ADD", CNIError(11, "no IPInstance yet"), 11),
        ("ADD", CNIError(101, "plumbing failed"), 101),
        ("CHECK", CNIError(100, "differs"), 100),
        ("DEL", CNIError(5, "I/O"), 5),
    ],
)
def test_agent_errors_pass_through_with_their_codes(command, agent_error, code):
    exit_code, out = invoke(env(command), config(), RecordingAgent(error=agent_error))
    assert exit_code == 1 and out["code"] == code and out["msg"] == agent_error.msg


# --- the shim: what the executable runs --------------------------------------------------------


def test_shim_version_is_the_specs():
    code, out = shim.respond({"CNI_COMMAND": "VERSION"}, b"")
    assert code == 0 and json.loads(out) == spec.version_result()


@pytest.mark.parametrize(
    "document",
    [
        '{"a": [1, -2.5e3, "x\\u00e9\\n", null, true, false], "b": {"c": {}}}',
        '  {"cniVersion": "1.0.0"}\n',
        "[]",
        '"s"',
    ],
)
def test_shim_decodes_json_like_the_json_module(document):
    assert shim.decode_config(document.encode()) == json.loads(document)


@pytest.mark.parametrize("document", [b"", b"{bad", b'{"a": 1} trailing', b"\xff\xfe", b"{'a': 1}"])
def test_shim_refuses_what_is_not_json(document):
    code, out = shim.respond({"CNI_COMMAND": "ADD"}, document, exchange=pytest.fail)
    assert code == 1 and json.loads(out)["code"] == 6


class FakeExchange:
    def __init__(self, reply: bytes = b"", error: Exception | None = None) -> None:
        self.reply, self.error, self.calls = reply, error, []

    def __call__(self, path: str, request: bytes, timeout: float) -> bytes:
        self.calls.append((path, request, timeout))
        if self.error:
            raise self.error
        return self.reply


def test_shim_forwards_the_cni_environment_and_stdin_unchanged():
    hostile = env(CNI_NETNS="/var/run/netns/../../etc", CNI_IFNAME="a=b;c", OTHER="x")
    stdin = json.dumps(config(timeoutSeconds=3)).encode()
    fake = FakeExchange(reply=b"\x07output")
    assert shim.respond(hostile, stdin, exchange=fake) == (7, b"output")
    path, request, timeout = fake.calls[0]
    assert (path, timeout) == ("/run/h/cni.sock", 3.0)
    size = int.from_bytes(request[:4], "big")
    assert shim.decode_env(request[4 : 4 + size]) == {k: v for k, v in hostile.items() if k.startswith("CNI_")}
    assert request[4 + size :] == stdin


@pytest.mark.parametrize(
    ("command", "stdin", "fake", "code"),
    [
        ("ADD", config(), FakeExchange(error=FileNotFoundError(2, "absent")), 11),
        ("ADD", config(), FakeExchange(error=ConnectionRefusedError(111, "refused")), 11),
        ("STATUS", config(), FakeExchange(error=FileNotFoundError(2, "absent")), 50),
        ("STATUS", config(), FakeExchange(error=TimeoutError()), 50),
        ("ADD", config(), FakeExchange(error=TimeoutError()), 11),
        ("ADD", config(), FakeExchange(error=PermissionError(13, "denied")), 5),
        ("ADD", config(), FakeExchange(reply=b""), 5),
        ("ADD", config(socket="relative.sock"), FakeExchange(), 7),
        ("ADD", config(timeoutSeconds=-1), FakeExchange(), 7),
        # Not an object: a decode error, whether or not an agent listens (issue 16, 8).
        ("ADD", [1, 2], FakeExchange(error=FileNotFoundError(2, "absent")), 6),
        ("ADD", "text", FakeExchange(), 6),
    ],
)
def test_shim_answers_when_the_agent_cannot(command, stdin, fake, code):
    exit_code, out = shim.respond(env(command), json.dumps(stdin).encode(), exchange=fake)
    error = json.loads(out)
    assert exit_code == 1 and error["code"] == code and set(error) == {"cniVersion", "code", "msg", "details"}
    assert error["cniVersion"] == "1.1.0"


def serve_once(directory: Path, reply: bytes | None) -> tuple[str, threading.Thread, list[bytes]]:
    path = str(directory / "s")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received: list[bytes] = []
    silence = threading.Event()

    def answer() -> None:
        conn, _ = server.accept()
        with conn, server:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            received.append(data)
            if reply is None:
                silence.wait(1)  # never answers in time; the client times out after 0.3 s
            else:
                conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return path, thread, received


def test_shim_exchange_over_a_real_socket(tmp_path):
    path, thread, received = serve_once(tmp_path, b"\x00{}")
    assert shim.exchange(path, b"request", 5) == b"\x00{}"
    thread.join(5)
    assert received == [b"request"]


def test_shim_exchange_times_out(tmp_path):
    path, thread, _ = serve_once(tmp_path, None)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        shim.exchange(path, b"request", 0.3)
    assert time.monotonic() - began < 3
    thread.join(10)
