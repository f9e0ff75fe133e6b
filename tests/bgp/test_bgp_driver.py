"""The agent's BGP decisions (hybridlay_agent.bgp_driver): which network, what to do with the speaker.

:class:`BGPDriver` is tested here with a recording stand-in for the speaker, so that each decision
(start, apply, restart, stop, restart after a failure) is checked on its own; the real speaker
against BIRD is tested in test_bgp_speaker.py, and the two together in the real agent in
test_bgp_agent.py.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pytest
from bgp_rack import SUBNET, TOR_ADDRESS, bgp_network, node_facts, pod_instance

from hybridlay.bgp import Announcement, SpeakerConfig, speaker_config
from hybridlay.dataplane.planner import ClusterState
from hybridlay.errors import InvalidValue
from hybridlay.model import Network, NetworkMode, NetworkStatus, NetworkType, SecretKeyRef
from hybridlay_agent.bgp_driver import (
    BGPDriver,
    RunningSpeaker,
    SpeakerPlan,
    member_bgp_network,
    password_refs,
    plan_speaker,
    secret_value,
    speaker_action,
)
from hybridlay_agent.bgp_speaker import SpeakerError
from hybridlay_agent.settings import parse_args

LABELS = {"rack": "r1"}
CONFIG = speaker_config(bgp_network(password=True), node_facts("node1"))
REF = SecretKeyRef(name="tor-password", key="password", namespace="kube-system")
ROUTE = Announcement(peer=TOR_ADDRESS, prefix="10.200.0.0/24", next_hop="192.168.100.11")
POD_ROUTE = Announcement(peer=TOR_ADDRESS, prefix="10.200.0.5/32", next_hop="192.168.100.11", no_export=True)
PLAN = SpeakerPlan("bgp", CONFIG, frozenset({ROUTE}))


def test_member_network_by_labels_or_status_and_only_bgp():
    bgp = bgp_network()
    listed = dataclasses.replace(
        bgp, name="listed", node_selector={"rack": "r9"}, status=NetworkStatus(node_list=("node1",))
    )
    vlan = Network(name="a-vlan", type=NetworkType.UNDERLAY, mode=NetworkMode.VLAN, net_id=0)
    assert member_bgp_network([vlan, bgp], "node1", LABELS) == bgp
    assert member_bgp_network([vlan, listed], "node1", {}) == listed
    assert member_bgp_network([vlan, bgp], "node1", {"rack": "r2"}) is None
    assert member_bgp_network([listed, bgp], "node1", LABELS) == bgp  # several: the first by name


def test_plan_speaker_announces_the_subnet_and_local_pods():
    state = ClusterState(
        networks=(bgp_network(password=True),),
        subnets=(SUBNET,),
        ipinstances=(pod_instance("10.200.0.5", "node1", "a"), pod_instance("10.200.0.6", "node2", "b")),
    )
    plan = plan_speaker(state, LABELS, node_facts("node1"))
    assert plan == SpeakerPlan("bgp", CONFIG, frozenset({ROUTE, POD_ROUTE}))
    assert plan_speaker(state, {}, node_facts("node1")) is None
    with pytest.raises(InvalidValue, match="no IPv4 address"):
        plan_speaker(state, LABELS, dataclasses.replace(node_facts("node1"), addresses=("fd00:100::11/64",)))


@pytest.mark.parametrize(
    ("running", "plan", "passwords", "action"),
    [
        (None, None, {}, "none"),
        (RunningSpeaker("bgp", CONFIG, {}), None, {}, "stop"),
        (None, PLAN, {}, "start"),
        (RunningSpeaker("bgp", CONFIG, {TOR_ADDRESS: "a"}), PLAN, {TOR_ADDRESS: "a"}, "apply"),
        (RunningSpeaker("bgp", CONFIG, {TOR_ADDRESS: "a"}), PLAN, {TOR_ADDRESS: "b"}, "restart"),
        (RunningSpeaker("old", CONFIG, {}), PLAN, {}, "restart"),
        (RunningSpeaker("bgp", dataclasses.replace(CONFIG, local_asn=65102), {}), PLAN, {}, "restart"),
    ],
)
def test_speaker_action(running, plan, passwords, action):
    assert speaker_action(running, plan, passwords) == action


def test_secret_value_decodes_and_errors_name_the_key_never_the_value():
    data = {"password": base64.b64encode(b"t0p-secret").decode(), "bad": "t0p-secret!"}
    assert password_refs(CONFIG) == {TOR_ADDRESS: REF}
    assert secret_value(data, REF, "kube-system") == "t0p-secret"
    with pytest.raises(KeyError, match="Secret kube-system/tor-password key 'other'"):
        secret_value(data, dataclasses.replace(REF, key="other"), "kube-system")
    with pytest.raises(ValueError, match="key 'bad': not base64") as error:
        secret_value(data, dataclasses.replace(REF, key="bad"), "kube-system")
    assert "t0p-secret" not in str(error.value)


class FakeSpeaker:
    """Records what the driver asks of it; ``fail_apply`` makes the next apply raise SpeakerError,
    ``running = False`` plays an ExaBGP that died."""

    def __init__(self, calls: list[tuple[str, ...]], run_dir: Path) -> None:
        self.calls = calls
        self.fail_apply = False
        self.running = True
        self.announced: frozenset[Announcement] = frozenset()
        self.calls.append(("new", str(run_dir)))

    async def start(self, config: SpeakerConfig, announced: frozenset[Announcement], passwords: Mapping[str, str]):
        self.announced = announced
        self.calls.append(("start", str(config.local_asn), *sorted(passwords.values())))

    async def apply(self, desired: frozenset[Announcement]) -> None:
        if self.fail_apply:
            raise SpeakerError("ExaBGP API connection closed")
        self.announced = desired
        self.calls.append(("apply", *sorted(a.prefix for a in desired)))

    async def stop(self, graceful: bool = True) -> None:
        self.calls.append(("stop", "graceful" if graceful else "withdraw"))

    async def wait_announced(self, prefix: str, timeout: float) -> None:
        if not any(a.prefix == f"{prefix}/32" for a in self.announced):
            raise TimeoutError
        self.calls.append(("announced", prefix))


async def test_driver_starts_applies_restarts_and_stops(tmp_path):
    calls: list[tuple[str, ...]] = []
    speakers: list[FakeSpeaker] = []
    password = {"value": "one"}

    def new_speaker(run_dir: Path) -> FakeSpeaker:
        speakers.append(FakeSpeaker(calls, run_dir))
        return speakers[-1]

    async def read_secret(ref: SecretKeyRef) -> str:
        assert ref == REF
        return password["value"]

    driver = BGPDriver(tmp_path, read_secret, new_speaker)
    assert await driver.sync(None) == "none"
    assert await driver.sync(PLAN) == "start"
    with_pod = dataclasses.replace(PLAN, announcements=frozenset({ROUTE, POD_ROUTE}))
    assert await driver.sync(with_pod) == "apply"
    await driver.wait_announced("10.200.0.5", 1)
    # A rotated password: the old speaker stops gracefully, the new one starts with the routes.
    password["value"] = "two"
    assert await driver.sync(with_pod) == "restart"
    assert speakers[-1].announced == with_pod.announcements
    # The speaker fails: restarted the same way, with the desired routes.
    speakers[-1].fail_apply = True
    assert await driver.sync(PLAN) == "restart"
    # A password the speaker cannot carry: refused before the running speaker is touched.
    password["value"] = 'with "quotes"'
    with pytest.raises(ValueError, match=f"password of BGP peer {TOR_ADDRESS}"):
        await driver.sync(PLAN)
    password["value"] = "two"
    assert await driver.sync(None) == "stop"
    await driver.stop()  # nothing left to stop
    assert calls == [
        ("new", str(tmp_path)),
        ("start", "65101", "one"),
        ("apply", "10.200.0.0/24", "10.200.0.5/32"),
        ("announced", "10.200.0.5"),
        ("stop", "graceful"),
        ("new", str(tmp_path)),
        ("start", "65101", "two"),
        ("stop", "graceful"),
        ("new", str(tmp_path)),
        ("start", "65101", "two"),
        ("stop", "withdraw"),
    ]


async def test_driver_restarts_a_speaker_found_not_running_although_nothing_changed(tmp_path):
    async def read_secret(ref: SecretKeyRef) -> str:
        return "pw"

    calls: list[tuple[str, ...]] = []
    speakers: list[FakeSpeaker] = []

    def new_speaker(run_dir: Path) -> FakeSpeaker:
        speakers.append(FakeSpeaker(calls, run_dir))
        return speakers[-1]

    driver = BGPDriver(tmp_path, read_secret, new_speaker)
    with_pod = dataclasses.replace(PLAN, announcements=frozenset({ROUTE, POD_ROUTE}))
    assert await driver.sync(with_pod) == "start"
    assert await driver.sync(with_pod) == "apply"
    speakers[-1].running = False  # ExaBGP died; the same plan would send no command that could fail
    calls.clear()
    assert await driver.sync(with_pod) == "restart"
    # Stopped gracefully (peers keep the routes), and the new speaker starts with the desired routes.
    assert calls == [("stop", "graceful"), ("new", str(tmp_path)), ("start", "65101", "pw")]
    assert speakers[-1].announced == with_pod.announcements
    assert await driver.sync(with_pod) == "apply"  # the new one runs: no further restart
    assert len(speakers) == 2


async def test_wait_announced_waits_for_the_speaker_then_times_out(tmp_path):
    async def read_secret(ref: SecretKeyRef) -> str:
        return "pw"

    calls: list[tuple[str, ...]] = []
    driver = BGPDriver(tmp_path, read_secret, lambda run_dir: FakeSpeaker(calls, run_dir))
    with pytest.raises(TimeoutError):
        await driver.wait_announced("10.200.0.5", 0.1)  # no speaker yet
    waiting = asyncio.ensure_future(driver.wait_announced("10.200.0.5", 5))
    await asyncio.sleep(0.05)
    await driver.sync(dataclasses.replace(PLAN, announcements=frozenset({ROUTE, POD_ROUTE})))
    await waiting
    assert ("announced", "10.200.0.5") in calls


def test_bgp_settings_default_next_to_the_cni_socket_and_refuse_a_bad_timeout(monkeypatch, capsys):
    for variable in ("HYBRIDLAY_BGP_RUN_DIR", "HYBRIDLAY_BGP_ANNOUNCE_TIMEOUT", "POD_NAMESPACE"):
        monkeypatch.delenv(variable, raising=False)
    base = ["--node-name", "n1", "--vxlan-parent", "eth0", "--bgp-parent", "eth1", "--cni-socket", "/run/x/cni.sock"]
    settings = parse_args(base)
    assert settings.bgp_state_dir == Path("/run/x/bgp")
    assert (settings.bgp_announce_timeout, settings.secret_namespace) == (10.0, "hybridlay-system")
    monkeypatch.setenv("POD_NAMESPACE", "net-system")
    monkeypatch.setenv("HYBRIDLAY_BGP_ANNOUNCE_TIMEOUT", "2.5")
    settings = parse_args([*base, "--bgp-run-dir", "/var/lib/bgp"])
    assert settings.bgp_state_dir == Path("/var/lib/bgp")
    assert (settings.bgp_announce_timeout, settings.secret_namespace) == (2.5, "net-system")
    with pytest.raises(SystemExit):
        parse_args([*base, "--bgp-announce-timeout", "0"])
    assert "--bgp-announce-timeout 0.0: must be positive" in capsys.readouterr().err
