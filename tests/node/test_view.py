"""The agent's cluster view (what the CNI server asks) and its settings, without a kernel or API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hybridlay.model import IPFamily, NetworkMode
from hybridlay_agent.settings import parse_args
from hybridlay_agent.view import ClusterView

SETTINGS = parse_args(["--node-name", "n1", "--vxlan-parent", "eth0", "--vlan-parent", "bond0", "--kubeconfig", "k"])


def resource(name: str, spec: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": spec}


def ipinstance(ip: str, node: str, pod: str = "web") -> dict[str, object]:
    version = "6" if ":" in ip else "4"
    return resource(
        ip.replace(".", "-").replace(":", "-"),
        {
            "network": "overlay",
            "subnet": "ov6" if ":" in ip else "ov4",
            "address": {"version": version, "ip": f"{ip}/64" if ":" in ip else f"{ip}/16"},
            "binding": {"podName": pod, "podNamespace": "default", "nodeName": node},
        },
    )


async def synced_view() -> ClusterView:
    view = ClusterView(SETTINGS)
    await view.replace("networks", [resource("overlay", {"type": "Overlay", "netID": 4})])
    await view.replace(
        "subnets",
        [
            resource("ov4", {"network": "overlay", "range": {"version": "4", "cidr": "10.244.0.0/16"}}),
            resource("ov6", {"network": "overlay", "range": {"version": "6", "cidr": "fd00:10::/64"}}),
        ],
    )
    await view.replace("nodeinfos", [])
    assert not view.synced.is_set()  # a kind not listed yet: the agent must not plan
    await view.replace("ipinstances", [ipinstance("10.244.0.9", "n2")])
    assert view.synced.is_set()
    return view


async def test_pod_addresses_waits_for_the_instances_bound_here() -> None:
    view = await synced_view()
    waiting = asyncio.create_task(view.pod_addresses("default", "web", timeout=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the pod's only IPInstance is bound to another node
    await view.apply("ipinstances", "ADDED", ipinstance("fd00:10::5", "n1"))
    await view.apply("ipinstances", "ADDED", ipinstance("10.244.0.5", "n1"))
    found = await waiting
    assert found
    assert {(s.name, n.name) for _, s, n in found} <= {("ov4", "overlay"), ("ov6", "overlay")}
    assert {i.address.ip for i, _, _ in view._pod_addresses("default", "web")} == {"10.244.0.5/16", "fd00:10::5/64"}


async def test_pod_addresses_times_out() -> None:
    view = await synced_view()
    with pytest.raises(TimeoutError):
        await view.pod_addresses("default", "nobody", timeout=0.1)


FamilyLookup = Callable[[str, str], Awaitable[IPFamily | None]]


def family_of(families: dict[str, IPFamily | None], asked: list[str]) -> FamilyLookup:
    """A stand-in for the API edge's annotation lookup (``Kube.pod_ip_family``), recording who was asked."""

    async def lookup(namespace: str, pod: str) -> IPFamily | None:
        asked.append(pod)
        return families.get(pod)

    return lookup


async def test_dual_stack_pod_waits_for_its_second_address() -> None:
    """The operator creates a dual-stack pod's IPInstances one by one: ADD must not plumb only the first."""
    view = await synced_view()
    asked: list[str] = []
    view.pod_family = family_of({"web": IPFamily.DUAL_STACK}, asked)
    await view.apply("ipinstances", "ADDED", ipinstance("10.244.0.5", "n1"))
    waiting = asyncio.create_task(view.pod_addresses("default", "web", timeout=5))
    await asyncio.sleep(0.1)
    assert not waiting.done(), "returned with the IPv4 address alone"
    assert asked == ["web"]
    await view.apply("ipinstances", "ADDED", ipinstance("fd00:10::5", "n1"))
    assert [i.address.ip for i, _, _ in await waiting] == ["10.244.0.5/16", "fd00:10::5/64"]


async def test_dual_stack_pod_without_its_second_address_times_out() -> None:
    view = await synced_view()
    view.pod_family = family_of({"web": IPFamily.DUAL_STACK}, [])
    await view.apply("ipinstances", "ADDED", ipinstance("fd00:10::5", "n1"))
    with pytest.raises(TimeoutError):
        await view.pod_addresses("default", "web", timeout=0.2)


@pytest.mark.parametrize("family", [IPFamily.IPV4, None])
async def test_single_stack_or_unknown_family_takes_the_addresses_present(family: IPFamily | None) -> None:
    """IPv4 (or no annotation to read: documented fallback) needs no second address."""
    view = await synced_view()
    asked: list[str] = []
    view.pod_family = family_of({"web": family}, asked)
    await view.apply("ipinstances", "ADDED", ipinstance("10.244.0.5", "n1"))
    found = await view.pod_addresses("default", "web", timeout=1)
    assert [i.address.ip for i, _, _ in found] == ["10.244.0.5/16"]
    assert asked == ["web"]


async def test_events_request_a_reconcile_and_deletes_apply() -> None:
    view = await synced_view()
    view.reconcile_requested.clear()
    await view.apply("ipinstances", "DELETED", ipinstance("10.244.0.9", "n2"))
    assert view.reconcile_requested.is_set()
    assert view.snapshot().ipinstances == ()
    await view.apply("subnets", "ADDED", resource("bad", {"network": "overlay", "range": {"cidr": 5}}))
    assert {s.name for s in view.snapshot().subnets} == {"ov4", "ov6"}  # a malformed object is skipped


def test_settings_and_parent_interfaces() -> None:
    view = ClusterView(SETTINGS)
    assert view.node_name() == "n1"
    assert view.parent_interface(NetworkMode.VXLAN) == "eth0"
    assert view.parent_interface(NetworkMode.VLAN) == "bond0"
    assert SETTINGS.kubeconfig == Path("k")
    assert parse_args(["--node-name", "n", "--vxlan-parent", "eth0"]).vlan_parent == "eth0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vxlan-parent", "eth0"], "--node-name"),
        (["--node-name", "n"], "--vxlan-parent"),
        (["--node-name", "n", "--vxlan-parent", "a-very-long-interface-name"], "--vxlan-parent a-very-long-interface"),
        (["--node-name", "n", "--vxlan-parent", "eth0", "--resync-seconds", "0"], "--resync-seconds 0"),
    ],
)
def test_bad_settings_name_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("NODE_NAME", "HYBRIDLAY_VXLAN_PARENT", "HYBRIDLAY_RESYNC_SECONDS"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err
