"""``hybridlay status`` and ``hybridlay ipinstances`` against the real API server.

The objects are the documented examples (docs/examples/*.yaml), as the operator would have written
them, with the statuses each test sets: they go to a control plane of this module's own (our CRDs and
RBAC, no operator and no webhooks), since the CLI shows every Network, Subnet and IPInstance of a
cluster and the session's shared cluster has its own (and an operator writing their statuses). The
last test reads what the session's operator wrote there.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import realcluster
import yaml
from apitopo import OVERLAY, Api, fresh_underlay, until
from realcluster import MANIFESTS, RealCluster

from hybridlay import names
from hybridlay_cli.main import main

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples"
GROUP, VERSION = "networking.hybridlay.io", "v1"
PLURALS = ("networks", "subnets", "ipinstances")
# The default columns of web-0's IPv4 address (docs/examples/ipinstances.yaml).
WEB0_V4_ROW = ["100.10.0.5/16", "shop/web-0", "node1", "overlay-v4", "overlay", "02:12:34:5a:0b:7c", "yes"]


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    yield from realcluster.own_cluster(tmp_path_factory.mktemp("cli-kube"))


@pytest.fixture
def kubeconfig(own_cluster: RealCluster, tmp_path: Path) -> Path:
    """An admin's kubeconfig of the module's cluster."""
    return own_cluster.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def api(own_cluster: RealCluster) -> Iterator[kubernetes.client.CustomObjectsApi]:
    """The module's cluster, its Networks, Subnets and IPInstances removed after each test."""
    custom = kubernetes.client.CustomObjectsApi(own_cluster.client())
    yield custom
    for plural in reversed(PLURALS):
        for obj in custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]:
            with contextlib.suppress(kubernetes.client.ApiException):
                custom.delete_cluster_custom_object(GROUP, VERSION, plural, obj["metadata"]["name"])


@pytest.fixture
def examples(api: kubernetes.client.CustomObjectsApi) -> kubernetes.client.CustomObjectsApi:
    """Every example Network, Subnet and IPInstance created, without status."""
    for plural in PLURALS:
        for obj in yaml.safe_load_all((EXAMPLES / f"{plural}.yaml").read_text()):
            api.create_cluster_custom_object(GROUP, VERSION, plural, obj)
    return api


def set_status(api, plural, name, status):
    api.patch_cluster_custom_object_status(GROUP, VERSION, plural, name, {"status": status})


def run(kubeconfig, *args, capsys):
    code = main(["--kubeconfig", str(kubeconfig), *args])
    out, err = capsys.readouterr()
    return code, out, err


def rows(text):
    """Cells of each output line: columns are three or more spaces apart, a note has single spaces."""
    return [re.split(r" {3,}", line) for line in text.splitlines()]


def test_status_shows_the_counts_the_operator_wrote(examples, kubeconfig, capsys):
    stats = {"total": 65534, "used": 1, "available": 65533}
    set_status(
        examples,
        "networks",
        "overlay",
        {
            "nodeList": ["node1", "node2", "node3"],
            "statistics": stats,
            "ipv6Statistics": {"total": 65535, "used": 1, "available": 65534},
        },
    )
    set_status(
        examples,
        "networks",
        "underlay-vlan100",
        {
            "nodeList": ["node1"],
            "statistics": {"total": 98, "used": 3, "available": 95},
        },
    )
    set_status(examples, "networks", "underlay-bgp", {"statistics": {"total": 254, "used": 0, "available": 254}})
    set_status(examples, "subnets", "overlay-v4", {**stats, "lastAllocatedIP": "100.10.0.5"})
    set_status(examples, "subnets", "overlay-v6", {"total": 65535, "used": 1, "available": 65534})
    set_status(
        examples,
        "subnets",
        "underlay-vlan100-v4",
        {"total": 98, "used": 3, "available": 95, "lastAllocatedIP": "192.168.56.103"},
    )
    set_status(examples, "subnets", "underlay-bgp-v4", {"total": 254, "used": 0, "available": 254})

    code, out, err = run(kubeconfig, "status", capsys=capsys)

    assert (code, err) == (0, "")
    # The counts are the status' own (used 3 on the VLAN subnet has no IPInstance here): no note.
    # Nodes: those the networks list, and node1 holding web-0's two addresses.
    assert rows(out)[:6] == [
        ["NODES"],
        ["NAME", "NETWORKS", "ADDRESSES"],
        ["node1", "overlay,underlay-vlan100", "2"],
        ["node2", "overlay", "0"],
        ["node3", "overlay", "0"],
        [""],
    ]
    assert rows(out)[6:] == [
        ["NETWORKS"],
        [
            "NAME",
            "TYPE",
            "MODE",
            "NETID",
            "NODES",
            "V4-TOTAL",
            "V4-USED",
            "V4-AVAILABLE",
            "V6-TOTAL",
            "V6-USED",
            "V6-AVAILABLE",
            "NOTE",
        ],
        ["overlay", "Overlay", "VXLAN", "4", "3", "65534", "1", "65533", "65535", "1", "65534", "-"],
        ["underlay-bgp", "Underlay", "BGP", "65010", "0", "254", "0", "254", "-", "-", "-", "-"],
        ["underlay-vlan100", "Underlay", "VLAN", "100", "1", "98", "3", "95", "-", "-", "-", "-"],
        [""],
        ["SUBNETS"],
        ["NAME", "NETWORK", "CIDR", "GATEWAY", "RANGE", "TOTAL", "USED", "AVAILABLE", "LAST-ALLOCATED", "NOTE"],
        [
            "overlay-v4",
            "overlay",
            "100.10.0.0/16",
            "-",
            "100.10.0.1-100.10.255.254",
            "65534",
            "1",
            "65533",
            "100.10.0.5",
            "-",
        ],
        [
            "overlay-v6",
            "overlay",
            "fd00:100:10::/112",
            "-",
            "fd00:100:10::1-fd00:100:10::ffff",
            "65535",
            "1",
            "65534",
            "-",
            "-",
        ],
        ["underlay-bgp-v4", "underlay-bgp", "10.30.0.0/24", "-", "10.30.0.1-10.30.0.254", "254", "0", "254", "-", "-"],
        [
            "underlay-vlan100-v4",
            "underlay-vlan100",
            "192.168.56.0/24",
            "192.168.56.1",
            "192.168.56.100-192.168.56.200",
            "98",
            "3",
            "95",
            "192.168.56.103",
            "-",
        ],
    ]


def test_status_without_operator_status_counts_ipinstances_and_says_so(examples, kubeconfig, capsys):
    set_status(examples, "subnets", "underlay-bgp-v4", {"total": 254, "used": 7, "available": 247})

    code, out, err = run(kubeconfig, "status", "-o", "json", capsys=capsys)

    assert (code, err) == (0, "")
    records = json.loads(out)
    subnets = {s["name"]: s for s in records["subnets"]}
    note = "no status yet: used counted from IPInstances"
    # web-0's two addresses are the only IPInstances: one in each overlay subnet.
    assert {n: (s["total"], s["used"], s["available"], s["note"]) for n, s in subnets.items()} == {
        "overlay-v4": (65534, 1, 65533, note),
        "overlay-v6": (65535, 1, 65534, note),
        "underlay-vlan100-v4": (98, 0, 98, note),
        "underlay-bgp-v4": (254, 7, 247, None),
    }
    overlay = next(n for n in records["networks"] if n["name"] == "overlay")
    assert overlay["ipv4"] == {"total": 65534, "used": 1, "available": 65533}
    assert overlay["ipv6"] == {"total": 65535, "used": 1, "available": 65534}
    assert overlay["note"] == note


def test_ipinstances_lists_pod_node_and_retained_addresses(examples, kubeconfig, capsys):
    # web-0's addresses are retained for its StatefulSet, bound or not: unbind the IPv6 one as the operator does.
    examples.patch_cluster_custom_object(
        GROUP,
        VERSION,
        "ipinstances",
        "fd00-100-10-0-0-0-0-5",
        {"spec": {"binding": {"podUID": None, "nodeName": None}}},
    )

    code, out, err = run(kubeconfig, "ipinstances", capsys=capsys)

    assert (code, err) == (0, "")
    assert out == (
        "IP                   POD          NODE    SUBNET       NETWORK   MAC                 RETAINED\n"
        "100.10.0.5/16        shop/web-0   node1   overlay-v4   overlay   02:12:34:5a:0b:7c   yes\n"
        "fd00:100:10::5/112   shop/web-0   -       overlay-v6   overlay   02:12:34:5a:0b:7c   yes\n"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--subnet", "overlay-v6"], ["fd00:100:10::5/112"]),
        (["--network", "overlay"], ["100.10.0.5/16", "fd00:100:10::5/112"]),
        (["--network", "underlay-bgp"], []),
        (["--node", "node1"], ["100.10.0.5/16", "fd00:100:10::5/112"]),
        (["--node", "node2"], []),
    ],
)
def test_ipinstances_filters(examples, kubeconfig, capsys, args, expected):
    code, out, _ = run(kubeconfig, "ipinstances", *args, "-o", "json", capsys=capsys)
    assert code == 0
    assert [r["ip"] for r in json.loads(out)] == expected


def test_ipinstances_wide_and_json(examples, kubeconfig, capsys):
    _, wide, _ = run(kubeconfig, "ipinstances", "-o", "wide", capsys=capsys)
    assert wide.splitlines()[0].split() == [
        "IP",
        "POD",
        "NODE",
        "SUBNET",
        "NETWORK",
        "MAC",
        "RETAINED",
        "GATEWAY",
        "NETID",
        "OWNER",
        "POD-UID",
        "TERMINATING",
    ]
    assert wide.splitlines()[1].split() == [
        *WEB0_V4_ROW,
        "-",
        "4",
        "StatefulSet/web",
        "9b1f6a62-4a1e-4a53-8f0e-3c2d9f1e7a10",
        "no",
    ]
    _, out, _ = run(kubeconfig, "ipinstances", "-o", "json", capsys=capsys)
    first = json.loads(out)[0]
    assert first["name"] == "100-10-0-5"
    assert first["pod"] == "shop/web-0"
    assert first["retained"] is True


def test_the_command_runs_as_a_process(examples, kubeconfig):
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"KUBECONFIG": str(kubeconfig)}
    done = subprocess.run(
        [sys.executable, "-m", "hybridlay_cli.main", "ipinstances", "--subnet", "overlay-v4"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[1].split() == WEB0_V4_ROW


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_api_is_one_line_and_exit_1(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{_closed_port()}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "hybridlay_cli.main", "--kubeconfig", str(kubeconfig), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("hybridlay: error: cannot reach the Kubernetes API at http://127.0.0.1:")
    assert "Connection refused" in done.stderr


def crd_documents() -> dict[str, dict[str, Any]]:
    """Our CRDs as manifests/crds/ has them, by name."""
    documents = [d for p in sorted((MANIFESTS / "crds").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return {d["metadata"]["name"]: d for d in documents}


def networks_served(api: kubernetes.client.CustomObjectsApi) -> bool:
    try:
        api.list_cluster_custom_object(GROUP, VERSION, "networks")
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


@pytest.fixture
def without_crds(own_cluster: RealCluster, api: kubernetes.client.CustomObjectsApi) -> Iterator[None]:
    """Our CRDs deleted for the test, then installed again."""
    ext = kubernetes.client.ApiextensionsV1Api(own_cluster.client())
    crds = crd_documents()
    for name in crds:
        ext.delete_custom_resource_definition(name)
    until(lambda: not networks_served(api), "the CRDs gone")
    yield
    for body in crds.values():
        ext.create_custom_resource_definition(body)
    until(lambda: networks_served(api), "the CRDs served again")


def test_missing_crds_is_one_line_and_exit_1(without_crds, kubeconfig, capsys):
    code, out, err = run(kubeconfig, "status", capsys=capsys)

    assert (code, out) == (1, "")
    assert err == (
        "hybridlay: error: the API serves no networks.networking.hybridlay.io/v1: are the hybridlay CRDs installed?\n"
    )


def replace_versions(ext: kubernetes.client.ApiextensionsV1Api, name: str, versions: list[dict[str, Any]]) -> None:
    current = json.loads(ext.read_custom_resource_definition(name, _preload_content=False).data)
    current["spec"]["versions"] = versions
    ext.replace_custom_resource_definition(name, current)


@pytest.fixture
def loose_network_crd(own_cluster: RealCluster, api: kubernetes.client.CustomObjectsApi) -> Iterator[None]:
    """The Network CRD with a schema that checks nothing (as an edited or foreign one might), so that
    the API server stores a Network our model refuses; ours again afterwards."""
    ext = kubernetes.client.ApiextensionsV1Api(own_cluster.client())
    name = f"networks.{GROUP}"
    ours = crd_documents()[name]["spec"]["versions"]
    loose = copy.deepcopy(ours)
    for version in loose:
        version["schema"] = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    replace_versions(ext, name, loose)
    yield
    replace_versions(ext, name, ours)


def test_an_object_the_model_refuses_is_named(loose_network_crd, api, kubeconfig, capsys):
    bad = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Network", "metadata": {"name": "bad"}, "spec": {"netID": "4"}}

    def stored() -> bool:
        try:
            api.create_cluster_custom_object(GROUP, VERSION, "networks", bad)
        except kubernetes.client.ApiException as e:
            if e.status == 422:  # the API server still applies our schema
                return False
            raise
        return True

    until(stored, "a Network with a string netID stored")
    code, _, err = run(kubeconfig, "status", capsys=capsys)
    assert code == 1
    assert err == "hybridlay: error: Network bad: spec.netID 4: must be of type integer\n"


def test_missing_kubeconfig_is_one_line(tmp_path, capsys):
    code, _, err = run(tmp_path / "none", "status", capsys=capsys)
    assert code == 1
    assert err.startswith(f"hybridlay: error: cannot load the kubeconfig ({tmp_path / 'none'})")
    assert len(err.splitlines()) == 1


def test_status_and_ipinstances_show_what_the_operator_wrote(
    real_cluster, real_api: Api, real_namespace, tmp_path, capsys
):
    """On the session's cluster: a pod's address in a subnet of its own, as the running operator
    claimed it and counted it in the Subnet's and Network's status."""
    underlay = fresh_underlay(real_api)  # a /24 with gateway .1: 253 addresses to hand out
    [node] = underlay.nodes
    pod = {
        "metadata": {"name": "p", "annotations": {names.ANNOTATION_SPECIFIED_NETWORK: underlay.network}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }
    real_api.core.create_namespaced_pod(real_namespace, pod)
    [instance] = until(lambda: real_api.instances_of(real_namespace, "p").values(), "p's address")
    ip = instance["spec"]["address"]["ip"]
    until(lambda: (real_api.get("subnets", underlay.subnet).get("status") or {}).get("used") == 1, "the status")
    for network in (underlay.network, OVERLAY):
        until(lambda n=network: node in (real_api.get("networks", n).get("status") or {}).get("nodeList", []), "nodes")
    kubeconfig = real_cluster.write_kubeconfig(tmp_path / "kubeconfig")

    code, out, err = run(kubeconfig, "status", "-o", "json", capsys=capsys)
    assert (code, err) == (0, "")
    records = json.loads(out)
    [subnet] = [s for s in records["subnets"] if s["name"] == underlay.subnet]
    assert (subnet["total"], subnet["used"], subnet["available"], subnet["note"]) == (253, 1, 252, None)
    assert subnet["lastAllocatedIP"] == ip.partition("/")[0]
    [network] = [n for n in records["networks"] if n["name"] == underlay.network]
    assert (network["nodes"], network["ipv4"], network["note"]) == (
        [node],
        {"total": 253, "used": 1, "available": 252},
        None,
    )
    assert {"name": node, "networks": sorted([OVERLAY, underlay.network]), "addresses": 1} in records["nodes"]

    code, out, err = run(kubeconfig, "ipinstances", "--subnet", underlay.subnet, "-o", "json", capsys=capsys)
    assert (code, err) == (0, "")
    [record] = json.loads(out)
    assert (record["ip"], record["pod"], record["node"], record["retained"]) == (ip, f"{real_namespace}/p", node, False)
    real_api.core.delete_namespaced_pod("p", real_namespace, grace_period_seconds=0)  # no kubelet to confirm
