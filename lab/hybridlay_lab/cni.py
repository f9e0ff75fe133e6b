"""Calling a CNI network configuration list as a container runtime does (libcni, CNI spec 1.x).

Pure: what each plugin gets (environment, stdin) and what its answer means. The process that runs
a plugin binary is passed in (:data:`Runner`), so the chaining is tested without executing anything:

- ADD runs the plugins in order; each one after the first gets the previous plugin's result as
  ``prevResult``; the last result is the network's result.
- DEL runs them in reverse order, each with the result cached from ADD as ``prevResult`` (libcni
  does the same for every spec version ≥ 0.4.0), and stops at the first failure.
- Every plugin config gets the list's ``name`` and ``cniVersion``; with ``cniVersions`` (spec 1.1)
  the highest version this caller supports (:data:`SUPPORTED_VERSIONS`) is used.
- A plugin failing exits non-zero with ``{"code", "msg", "details"}`` on stdout: :class:`CNIError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Versions whose commands this caller implements (ADD and DEL with prevResult; not 1.1's GC and
# STATUS). From a ``cniVersions`` list it picks the highest of these, as libcni 1.2 picks the
# highest it supports: the Debian plugins (1.1.1) refuse 1.1.0.
SUPPORTED_VERSIONS = ("0.4.0", "1.0.0")

# (plugin type, environment, stdin) → (exit code, stdout, stderr)
Runner = Callable[[str, Mapping[str, str], bytes], tuple[int, bytes, bytes]]


class CNIError(Exception):
    """A plugin (or the configuration naming it) failed; ``code`` is the spec's error code if given."""

    def __init__(self, plugin: str, command: str, msg: str, code: int | None = None, details: str = "") -> None:
        self.plugin = plugin
        self.command = command
        self.msg = msg
        self.code = code
        self.details = details
        suffix = f": {details}" if details else ""
        super().__init__(f"plugin type={plugin!r} failed ({command.lower()}): {msg}{suffix}")


@dataclass(frozen=True)
class NetworkList:
    """A parsed ``.conflist`` (a single-plugin ``.conf`` becomes a list of one)."""

    name: str
    cni_version: str
    plugins: tuple[Mapping[str, Any], ...]
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Attachment:
    """Who the network is added for: the runtime's side of every call."""

    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...] = ()


def _version(conf: Mapping[str, Any], source: str) -> str:
    versions = conf.get("cniVersions")
    if isinstance(versions, list) and versions:
        usable = [v for v in versions if v in SUPPORTED_VERSIONS]
        if not usable:
            raise ValueError(f"{source}: cniVersions {versions}: none of them is supported ({SUPPORTED_VERSIONS})")
        return str(max(usable, key=lambda v: tuple(int(p) for p in v.split("."))))
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise ValueError(f"{source}: cniVersion {version!r}: must be a version string")
    return version


def parse_network_list(text: str, source: str) -> NetworkList:
    """A ``.conflist`` or ``.conf`` file's content; ``ValueError`` names the file and the field."""
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not JSON: {e}") from None
    if not isinstance(conf, dict):
        raise ValueError(f"{source}: must be a JSON object")
    name = conf.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{source}: name {name!r}: must be a non-empty string")
    plugins = conf.get("plugins", [conf] if "type" in conf else None)
    if not isinstance(plugins, list) or not plugins:
        raise ValueError(f"{source}: plugins: must be a non-empty list")
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise ValueError(f"{source}: plugins[{index}].type: must be a non-empty string")
    return NetworkList(name=name, cni_version=_version(conf, source), plugins=tuple(plugins), raw=conf)


def plugin_stdin(network: NetworkList, plugin: Mapping[str, Any], prev_result: Mapping[str, Any] | None) -> bytes:
    """One plugin's network configuration, as libcni builds it."""
    config = {**plugin, "name": network.name, "cniVersion": network.cni_version}
    if prev_result is not None:
        config["prevResult"] = prev_result
    return json.dumps(config).encode()


def cni_args(pairs: tuple[tuple[str, str], ...]) -> str:
    """``CNI_ARGS``: ``IgnoreUnknown=1`` first, as CRI runtimes send it (reference plugins refuse unknown keys)."""
    return ";".join(f"{k}={v}" for k, v in (("IgnoreUnknown", "1"), *pairs))


def plugin_env(command: str, attachment: Attachment, cni_path: str) -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": attachment.container_id,
        "CNI_NETNS": attachment.netns,
        "CNI_IFNAME": attachment.ifname,
        "CNI_ARGS": cni_args(attachment.args),
        "CNI_PATH": cni_path,
    }


def parse_output(plugin: str, command: str, code: int, stdout: bytes, stderr: bytes) -> dict[str, Any] | None:
    """The plugin's result (ADD) or ``None`` (DEL, CHECK); :class:`CNIError` when it failed."""
    text = stdout.decode(errors="replace").strip()
    if code != 0:
        try:
            error = json.loads(text)
        except json.JSONDecodeError:
            error = None
        if isinstance(error, dict) and "msg" in error:
            raise CNIError(plugin, command, str(error["msg"]), error.get("code"), str(error.get("details") or ""))
        output = text or stderr.decode(errors="replace").strip() or "no output"
        raise CNIError(plugin, command, f"exit code {code}: {output}")
    if command != "ADD":
        return None
    try:
        result = json.loads(text)
    except json.JSONDecodeError:
        raise CNIError(plugin, command, f"result is not JSON: {text[:200]!r}") from None
    if not isinstance(result, dict):
        raise CNIError(plugin, command, f"result is not a JSON object: {text[:200]!r}")
    return result


def _call(
    run: Runner,
    network: NetworkList,
    plugin: Mapping[str, Any],
    env: Mapping[str, str],
    prev_result: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    command = env["CNI_COMMAND"]
    kind = str(plugin["type"])
    code, stdout, stderr = run(kind, env, plugin_stdin(network, plugin, prev_result))
    return parse_output(kind, command, code, stdout, stderr)


def add(run: Runner, network: NetworkList, attachment: Attachment, cni_path: str) -> dict[str, Any]:
    """ADD through the whole list; the final result. Stops at the first failure (the caller then DELs)."""
    env = plugin_env("ADD", attachment, cni_path)
    result: dict[str, Any] | None = None
    for plugin in network.plugins:
        result = _call(run, network, plugin, env, result)
    if result is None:
        raise CNIError("-", "ADD", f"network {network.name} has no plugins")
    return result


def delete(
    run: Runner, network: NetworkList, attachment: Attachment, cni_path: str, cached: Mapping[str, Any] | None
) -> None:
    """DEL through the list in reverse; the first failure stops it, as in libcni (the runtime retries DEL)."""
    env = plugin_env("DEL", attachment, cni_path)
    for plugin in reversed(network.plugins):
        _call(run, network, plugin, env, cached)


def result_ips(result: Mapping[str, Any]) -> list[str]:
    """The addresses of a result (spec 1.x ``ips[].address``), without prefix length, in result order."""
    ips = result.get("ips")
    if not isinstance(ips, list):
        return []
    return [str(entry["address"]).split("/")[0] for entry in ips if isinstance(entry, dict) and "address" in entry]
