"""What the plugin executable runs: hand the call to the node agent, print what it answers.

The runtime starts the plugin for every pod, so this module imports nothing but ``os``, ``sys``
and two C modules (``_socket``, ``_json``: ``json`` and ``socket`` would pull in ``re``, ``enum``
and friends, ~10 ms of a ~25 ms start). All validation and result formatting
(:mod:`hybridlay_cni.plugin`, :mod:`hybridlay_cni.spec`) runs in the agent, on the bytes
forwarded here, before anything is touched. The shim answers by itself only VERSION and the
failures that keep it from reaching the agent.

Wire format on the agent's unix socket (root only, 0600), one call per connection:
request = 4-byte big-endian length N, N bytes of ``CNI_*`` environment (``KEY=VALUE`` joined by
NUL), then the network configuration exactly as read from stdin, then end of stream;
reply = one byte exit status, then the bytes to print on stdout, then end of stream.
"""

from __future__ import annotations

import _json
import _socket
import os
import sys

SUPPORTED_VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST_VERSION = "1.1.0"
DEFAULT_SOCKET = "/run/hybridlay/cni.sock"
DEFAULT_TIMEOUT_SECONDS = 30.0
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL
MAX_MESSAGE = 1 << 20
# Error codes the shim itself reports (CNI spec 1.1); the rest come from the agent.
E_IO, E_DECODE, E_INVALID_CONFIG, E_TRY_AGAIN_LATER, E_PLUGIN_NOT_AVAILABLE = 5, 6, 7, 11, 50

TYPE_CHECKING = False  # typing would cost the start-up ~10 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


class _DecoderSettings:
    """What the C JSON scanner reads from ``json.JSONDecoder``; the defaults of ``json.loads``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_DecoderSettings())  # type: ignore[arg-type]  # reads only these attributes
_quote = _json.encode_basestring_ascii


def decode_config(stdin: bytes) -> Any:
    """The network configuration; raises ValueError when stdin is not one JSON document."""
    try:
        text = stdin.decode().strip(" \t\n\r")
        value, end = _scan(text, 0)
    except Exception as exc:  # the C scanner raises StopIteration, SystemError or JSONDecodeError
        raise ValueError("not a JSON document") from exc
    if end != len(text):
        raise ValueError("trailing data after the JSON document")
    return value


def socket_path_problem(value: object) -> str | None:
    """Why ``value`` cannot be the agent's socket path, or None."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > SOCKET_PATH_MAX or "\0" in value:
        return "must be an absolute path of at most 107 bytes"
    return None


def timeout_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 600:
        return "must be a number of seconds in (0, 600]"
    return None


def error_output(cni_version: str, code: int, msg: str, details: str = "") -> bytes:
    return (
        f'{{"cniVersion": {_quote(cni_version)}, "code": {code}, "msg": {_quote(msg)}, "details": {_quote(details)}}}\n'
    ).encode()


def version_output() -> bytes:
    versions = ", ".join(_quote(v) for v in SUPPORTED_VERSIONS)
    return f'{{"cniVersion": {_quote(LATEST_VERSION)}, "supportedVersions": [{versions}]}}\n'.encode()


def encode_request(env: Mapping[str, str], stdin: bytes) -> bytes:
    block = "\0".join(f"{k}={v}" for k, v in env.items() if k.startswith("CNI_")).encode("utf-8", "surrogateescape")
    return len(block).to_bytes(4, "big") + block + stdin


def decode_env(block: bytes) -> dict[str, str]:
    env = {}
    for item in block.decode("utf-8", "surrogateescape").split("\0"):
        key, sep, value = item.partition("=")
        if sep and key.startswith("CNI_"):
            env[key] = value
    return env


def exchange(path: str, request: bytes, timeout: float) -> bytes:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        sock.shutdown(_socket.SHUT_WR)
        chunks = []
        size = 0
        while size <= MAX_MESSAGE:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


class Refusal(Exception):
    """A call the shim answers itself: the agent cannot be asked."""

    def __init__(self, version: str, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.output = error_output(version, code, msg, details)


def agent_address(stdin: bytes) -> tuple[str, str, float]:
    """(cniVersion for errors, socket path, timeout) from the network configuration."""
    try:
        config = decode_config(stdin)
    except ValueError as exc:
        raise Refusal(LATEST_VERSION, E_DECODE, "network configuration on stdin is not valid JSON", str(exc)) from None
    if not isinstance(config, dict):
        kind = type(config).__name__
        raise Refusal(LATEST_VERSION, E_DECODE, f"network configuration {kind}: must be a JSON object")
    version = config.get("cniVersion")
    version = version if version in SUPPORTED_VERSIONS else LATEST_VERSION
    path = config.get("socket", DEFAULT_SOCKET)
    timeout = config.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
    for key, value, problem in (("socket", path, socket_path_problem), ("timeoutSeconds", timeout, timeout_problem)):
        if reason := problem(value):
            raise Refusal(version, E_INVALID_CONFIG, f"{key} {value!r}: {reason}")
    return version, path, float(timeout)


def respond(env: Mapping[str, str], stdin: bytes, exchange: Any = exchange) -> tuple[int, bytes]:
    """Exit status and stdout for one call; ``exchange`` is the socket round trip (replaceable in tests)."""
    command = env.get("CNI_COMMAND", "")
    if command == "VERSION":
        return 0, version_output()
    try:
        version, path, timeout = agent_address(stdin)
        unavailable = E_PLUGIN_NOT_AVAILABLE if command == "STATUS" else E_TRY_AGAIN_LATER
        try:
            reply = exchange(path, encode_request(env, stdin), timeout)
        except TimeoutError:
            message = f"hybridlay agent at {path} did not answer within {timeout:g}s"
            raise Refusal(version, unavailable, message) from None
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise Refusal(version, unavailable, f"hybridlay agent is not listening on {path}", str(exc)) from None
        except OSError as exc:
            raise Refusal(version, E_IO, f"talking to the hybridlay agent at {path} failed", str(exc)) from None
        if not reply:
            raise Refusal(version, E_IO, f"hybridlay agent at {path} closed the connection without an answer")
    except Refusal as refusal:
        return 1, refusal.output
    return reply[0], reply[1:]


def main() -> int:
    try:
        stdin = sys.stdin.buffer.read()
    except OSError as exc:
        sys.stdout.buffer.write(error_output(LATEST_VERSION, E_IO, "reading stdin failed", str(exc)))
        return 1
    code, output = respond(os.environ, stdin)
    sys.stdout.buffer.write(output)
    sys.stdout.flush()
    return code
