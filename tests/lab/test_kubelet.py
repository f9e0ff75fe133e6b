"""The lab kubelet runs pods' network namespaces through real CNI plugins.

Real: the kubelet process, network namespaces, Debian's reference CNI plugins (bridge + host-local,
bandwidth chained after them), ping between pods. Stand-in: the Kubernetes API (KMock, see
tests/support/kapi.py), because no kube-apiserver can run here.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import kubernetes
import pytest
import yaml
from kapi import RunningAPI, kubeconfig

from hybridlay_lab.pods import new_record

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def netns_of(lab, pod_name):
    return new_record(lab.pod(pod_name), lab.prefix, {}).netns


def eth0_addresses(netns):
    out = subprocess.run(["ip", "-n", netns, "-j", "addr", "show", "eth0"], capture_output=True, text=True, check=True)
    return [f"{a['local']}/{a['prefixlen']}" for a in json.loads(out.stdout)[0]["addr_info"] if a["family"] == "inet"]


def ping(netns, address):
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "2", address], capture_output=True, check=False
    )
    return done.returncode == 0


def allocations(lab):
    """The addresses host-local holds for the lab network (one file per address)."""
    directory = lab.ipam_dir / "labnet"
    return {p.name for p in directory.glob("10.*")} if directory.exists() else set()


def test_pods_get_namespaces_addresses_and_reach_each_other(lab):
    lab.start("node1")
    lab.create_pod("a", "node1")
    lab.create_pod("b", "node1")
    lab.create_pod("elsewhere", "node2")

    ip_a, ip_b = lab.wait_running("a"), lab.wait_running("b")

    pod_a = lab.pod("a")
    assert pod_a["status"]["phase"] == "Running"
    assert pod_a["status"]["podIPs"] == [{"ip": ip_a}]
    ns_a, ns_b = netns_of(lab, "a"), netns_of(lab, "b")
    assert lab.namespaces() == {ns_a, ns_b}
    assert eth0_addresses(ns_a) == [f"{ip_a}/24"]
    assert eth0_addresses(ns_b) == [f"{ip_b}/24"]
    assert allocations(lab) == {ip_a, ip_b}
    assert ping(ns_a, ip_b)
    assert ping(ns_b, ip_a)
    # bandwidth found the host side of the veth in the bridge's result (prevResult) and shaped it.
    record = json.loads((lab.tmp / "node1" / f"{pod_a['metadata']['uid']}.json").read_text())
    host_veth = record["result"]["interfaces"][1]["name"]
    qdisc = subprocess.run(["tc", "qdisc", "show", "dev", host_veth], capture_output=True, text=True, check=True)
    assert "tbf" in qdisc.stdout
    # The pod for node2 is not node1's: it waits for node2's kubelet, then joins the same bridge.
    assert "podIP" not in (lab.pod("elsewhere").get("status") or {})
    lab.start("node2")
    ip_elsewhere = lab.wait_running("elsewhere")
    assert ping(ns_a, ip_elsewhere)
    assert {p.stem for p in (lab.tmp / "node1").glob("*.json")} == {
        pod_a["metadata"]["uid"],
        lab.pod("b")["metadata"]["uid"],
    }
    assert {p.stem for p in (lab.tmp / "node2").glob("*.json")} == {lab.pod("elsewhere")["metadata"]["uid"]}


def test_deleting_a_pod_runs_del_and_removes_its_namespace(lab):
    lab.start("node1")
    lab.create_pod("a", "node1")
    lab.create_pod("b", "node1")
    ip_a, ip_b = lab.wait_running("a"), lab.wait_running("b")
    ns_a = netns_of(lab, "a")

    lab.core.delete_namespaced_pod("a", "default")

    lab.wait_for(lambda: ns_a not in lab.namespaces(), what="pod a's namespace to go")
    assert allocations(lab) == {ip_b}  # host-local's file for a's address is gone: DEL ran
    assert lab.namespaces() == {netns_of(lab, "b")}
    assert ping(netns_of(lab, "b"), ip_b)
    assert not ping(netns_of(lab, "b"), ip_a)


def test_a_pod_held_by_a_finalizer_stops_and_waits_for_its_owner(lab):
    lab.start("node1")
    lab.create_pod("web-0", "node1", finalizers=["networking.hybridlay.io/ip-retain"])
    lab.wait_running("web-0")
    ns = netns_of(lab, "web-0")

    lab.core.delete_namespaced_pod("web-0", "default")

    lab.wait_for(lambda: lab.pod("web-0")["status"]["phase"] == "Succeeded", what="web-0 to stop")
    assert ns not in lab.namespaces()
    assert allocations(lab) == set()
    # The object stays until the finalizer's owner lets go of it; then the API removes it.
    assert lab.pod("web-0")["metadata"]["deletionTimestamp"]
    lab.core.patch_namespaced_pod("web-0", "default", {"metadata": {"finalizers": None}})
    assert not any(p.metadata.name == "web-0" for p in lab.core.list_namespaced_pod("default").items)


def test_restart_resyncs_the_node(lab):
    lab.start("node1")
    for name in ("gone", "kept", "lost"):
        lab.create_pod(name, "node1")
    ips = {name: lab.wait_running(name) for name in ("gone", "kept", "lost")}
    namespaces = {name: netns_of(lab, name) for name in ips}
    lab.stop("node1")

    # While the kubelet is down: one pod deleted, one created, one namespace lost (a reboot, say).
    lab.core.delete_namespaced_pod("gone", "default")
    lab.create_pod("new", "node1")
    subprocess.run(["ip", "netns", "delete", namespaces["lost"]], check=True)
    lab.start("node1")

    ip_new = lab.wait_running("new")
    lab.wait_for(lambda: namespaces["lost"] in lab.namespaces(), what="the lost namespace to be rebuilt")
    lab.wait_for(lambda: namespaces["gone"] not in lab.namespaces(), what="the deleted pod's namespace to go")
    assert lab.namespaces() == {namespaces["kept"], namespaces["lost"], netns_of(lab, "new")}
    ip_lost = lab.wait_for(lambda: eth0_addresses(namespaces["lost"]), what="eth0 in the rebuilt namespace")[0]
    lab.wait_for(lambda: lab.pod_ip("lost") == ip_lost.split("/")[0], what="the rebuilt pod's status")
    assert allocations(lab) == {ips["kept"], ip_lost.split("/")[0], ip_new}
    assert ping(namespaces["kept"], ip_new)
    assert sorted(p.name for p in (lab.tmp / "node1").glob("*.json")) == sorted(
        f"{lab.pod(n)['metadata']['uid']}.json" for n in ("kept", "lost", "new")
    )


def test_a_plugin_failure_is_an_event_and_leaves_no_namespace(lab):
    """host-local with one address in its range: the second pod's ADD fails in the plugin itself."""
    lab.write_conflist(range_start=f"10.252.{lab.subnet_octet}.10", range_end=f"10.252.{lab.subnet_octet}.10")
    lab.start("node1")
    lab.create_pod("first", "node1")
    assert lab.wait_running("first") == f"10.252.{lab.subnet_octet}.10"

    lab.create_pod("second", "node1")

    def failure_events():
        return [
            e
            for e in lab.core.list_namespaced_event("default").items
            if e.involved_object.name == "second" and e.reason == "FailedCreatePodSandBox"
        ]

    event = lab.wait_for(failure_events, what="a FailedCreatePodSandBox event")[0]
    assert event.type == "Warning"
    assert "plugin type='bridge' failed (add)" in event.message
    assert "no IP addresses available" in event.message
    assert lab.namespaces() == {netns_of(lab, "first")}
    second = lab.pod("second")
    assert "podIP" not in (second.get("status") or {})
    assert not (lab.tmp / "node1" / f"{second['metadata']['uid']}.json").exists()

    # Retried at each resync: once the address is free, the pod gets it.
    lab.core.delete_namespaced_pod("first", "default")
    assert lab.wait_running("second") == f"10.252.{lab.subnet_octet}.10"
    assert lab.namespaces() == {netns_of(lab, "second")}


def test_a_bad_configuration_stops_the_kubelet_with_one_line(lab):
    for conf in lab.conf_dir.iterdir():
        conf.write_text('{"cniVersion": "1.0.0", "name": "x", "plugins": [{"bridge": "b"}]}')
    process = lab.start("node1")
    assert process.wait(timeout=30) == 1
    assert lab.log("node1").strip().splitlines() == [
        f"hybridlay-lab-kubelet: error: {Path(lab.conf_dir) / '10-lab.conflist'}: plugins[0].type: "
        "must be a non-empty string"
    ]


def test_the_kubelet_waits_for_an_api_that_is_not_up_yet(lab, tmp_path):
    """The lab's node services may start before the control plane: the kubelet keeps retrying."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    later = RunningAPI(port=port)
    lab.kubeconfig = tmp_path / "later-kubeconfig"
    lab.kubeconfig.write_text(yaml.safe_dump(kubeconfig(f"http://127.0.0.1:{port}")))
    lab.start("node1")
    time.sleep(2)
    with later:
        lab.core = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(lab.kubeconfig)))
        lab.create_pod("a", "node1")
        assert lab.wait_running("a")
    assert "API:" in lab.log("node1")
