"""Hybridnet objects as its controllers write them (reference §1), for the migration tests."""

from __future__ import annotations

from typing import Any

API_VERSION = "networking.alibaba.com/v1"


def network(name: str, type_: str, net_id: int, selector: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_, "netID": net_id, **spec}
    if selector:
        body["nodeSelector"] = selector
    return {"apiVersion": API_VERSION, "kind": "Network", "metadata": {"name": name}, "spec": body}


def subnet(name: str, network_name: str, cidr: str, **range_: Any) -> dict[str, Any]:
    version = "6" if ":" in cidr else "4"
    return {
        "apiVersion": API_VERSION,
        "kind": "Subnet",
        "metadata": {"name": name},
        "spec": {"network": network_name, "range": {"version": version, "cidr": cidr, **range_}},
    }


def ipinstance(
    namespace: str,
    address: str,
    placed: tuple[str, str],
    pod: tuple[str, str],
    *,
    node: str | None = "node1",
    referred: dict[str, str] | None = None,
    index: int | None = None,
) -> dict[str, Any]:
    """``address`` with its prefix (``10.0.0.5/24``) in (network, subnet) ``placed``, for the pod (name,
    UID); named as Hybridnet names it (the address, dashed), in the pod's namespace."""
    pod_name, pod_uid = pod
    binding: dict[str, Any] = {
        "podName": pod_name,
        "podUID": pod_uid,
        "referredObject": referred or {"kind": "Pod", "name": pod_name, "uid": pod_uid},
    }
    if node:
        binding["nodeName"] = node
    if index is not None:
        binding["stateful"] = {"index": index}
    ip = address.partition("/")[0]
    return {
        "apiVersion": API_VERSION,
        "kind": "IPInstance",
        "metadata": {"name": ip.replace(".", "-").replace(":", "-"), "namespace": namespace},
        "spec": {
            "network": placed[0],
            "subnet": placed[1],
            "address": {"version": "6" if ":" in ip else "4", "ip": address, "mac": "02:12:34:00:00:01"},
            "binding": binding,
        },
    }


def nodeinfo(node: str, vtep_ip: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "NodeInfo",
        "metadata": {"name": node},
        "spec": {"vtepInfo": {"ip": vtep_ip, "mac": "02:00:00:00:00:01", "localIPs": [vtep_ip]}},
    }
