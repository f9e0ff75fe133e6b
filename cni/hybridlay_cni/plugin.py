"""The plugin's logic for one call, run by the agent on what the shim forwarded.

:func:`respond` takes the ``CNI_*`` environment, the stdin bytes and the command dispatcher as
parameters (kuryr's shape) and returns the exit status and stdout text, so every path is
testable without a runtime or a socket. Nothing is dispatched unless all input is valid.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hybridlay_cni import spec
from hybridlay_cni.shim import LATEST_VERSION, SUPPORTED_VERSIONS
from hybridlay_cni.spec import CNIError, Invocation

Dispatch = Callable[[Invocation, dict[str, Any]], Awaitable[dict[str, Any]]]


async def respond(env: Mapping[str, str], stdin: bytes, dispatch: Dispatch) -> tuple[int, str]:
    """Validate, dispatch, format: (exit status, stdout). Errors are the spec's error object."""
    cni_version = LATEST_VERSION
    try:
        invocation = spec.parse_env(env)
        if invocation.command == "VERSION":
            return 0, _dumps(spec.version_result())
        config = _decode(stdin)
        if isinstance(config, dict) and config.get("cniVersion") in SUPPORTED_VERSIONS:
            cni_version = config["cniVersion"]
        config = spec.parse_config(config, invocation.command)
        result = await dispatch(invocation, config)
    except CNIError as error:
        return 1, _dumps(error.to_dict(cni_version))
    if invocation.command == "ADD":
        return 0, _dumps(spec.format_result(result, config))
    return 0, ""


def _decode(stdin: bytes) -> Any:
    try:
        return json.loads(stdin)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise CNIError(spec.E_DECODE, "network configuration on stdin is not valid JSON", str(exc)[:200]) from None


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj) + "\n"
