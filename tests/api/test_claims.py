"""Claims on the real API: an IPInstance's creation is the claim of its address, the API server
refuses a second one (409) and a write based on a stale read (409 Conflict); and the operator's
in-cluster IPAM as a user sees it through the API: addresses given to pods and given back when
they go, the status of Subnets and Networks, node labels, events.

There is no kubelet: a test sets a pod's node (``spec.nodeName`` or a binding, as the scheduler
does), its phase (as the kubelet does), and deletes it with no grace period. Each test that counts
addresses uses an underlay network of its own (:func:`own_underlay`).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from apitopo import OVERLAY, Api, unique, until
from kubernetes.client import V1DeleteOptions, V1Preconditions
from kubernetes.client.exceptions import ApiException
from podlife import PodLifecycle, running_status, terminated_status

from hybridlay import names
from hybridlay.addresses import instance_name

NET, TYPE, FAM = names.ANNOTATION_SPECIFIED_NETWORK, names.ANNOTATION_NETWORK_TYPE, names.ANNOTATION_IP_FAMILY
TEST_LABEL = "hybridlay-test/rack"
OVERLAY_NODE = "node3"


def refusal(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


@dataclass(frozen=True)
class Underlay:
    network: str
    subnet: str
    cidr: ipaddress.IPv4Network
    nodes: tuple[str, ...]
    label: dict[str, str]

    def host(self, n: int) -> str:
        """The n-th address of the CIDR (1 is the gateway)."""
        return str(self.cidr.network_address + n)


def free_cidr(api: Api, prefix: int = 24) -> ipaddress.IPv4Network:
    """A CIDR in 10.152.0.0/16 that no existing subnet overlaps."""
    taken = [
        ipaddress.ip_network(s["spec"]["range"]["cidr"], strict=False)
        for s in api.custom.list_cluster_custom_object(names.GROUP, names.VERSION, "subnets")["items"]
    ]
    for cidr in ipaddress.IPv4Network("10.152.0.0/16").subnets(new_prefix=prefix):
        if not any(t.version == 4 and t.overlaps(cidr) for t in taken):
            return cidr
    raise AssertionError("no free CIDR in 10.152.0.0/16")


def own_underlay(api: Api, nodes: int = 1, prefix: int = 24, net_id: int = 300) -> Underlay:
    """A VLAN network of ``nodes`` new nodes and one subnet (gateway .1), once the operator has seen
    them all: it has labelled the nodes with the network's free-address quota."""
    label = {TEST_LABEL: unique("rack")}
    node_names = tuple(unique("node") for _ in range(nodes))
    for node in node_names:
        api.node(node, label)
    network = unique("net")
    api.network(network, "Underlay", net_id, label)
    # The subnet webhook reads the operator's cache: the network must be in it first.
    probe = {
        "apiVersion": names.API_VERSION,
        "kind": "Subnet",
        "metadata": {"name": unique("probe")},
        "spec": {"network": network, "range": {"version": "4", "cidr": "10.255.255.0/24", "gateway": "10.255.255.1"}},
    }

    def network_seen() -> bool:
        try:
            api.custom.create_cluster_custom_object(names.GROUP, names.VERSION, "subnets", probe, dry_run="All")
        except ApiException as e:
            return "does not exist" not in e.body
        return True

    until(network_seen, f"the operator sees network {network}")
    cidr = free_cidr(api, prefix)
    subnet = f"{network}-subnet"
    api.subnet(subnet, network, str(cidr), gateway=str(cidr.network_address + 1))
    for node in node_names:
        until(lambda node=node: quota(api, node) == names.QUOTA_NONEMPTY, f"node {node} labelled")
    return Underlay(network, subnet, cidr, node_names, label)


def node_labels(api: Api, node: str) -> dict[str, str]:
    return dict(api.core.read_node(node).metadata.labels or {})


def quota(api: Api, node: str) -> str | None:
    return node_labels(api, node).get(names.LABEL_IPV4_QUOTA)


def pod_body(
    name: str, node: str | None = None, annotations: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"containers": [{"name": "c", "image": "x"}], **spec},
    }
    if node:
        body["spec"]["nodeName"] = node
    return body


def create_pod(api: Api, namespace: str, body: dict[str, Any]) -> str:
    """Create the pod; its UID."""
    return str(api.core.create_namespaced_pod(namespace, body).metadata.uid)


def delete_pod(api: Api, namespace: str, name: str) -> None:
    """Deleted at once, as a kubelet confirms a pod's end."""
    api.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def held(api: Api, namespace: str, pod: str) -> list[dict[str, Any]]:
    """The pod's IPInstances, IPv4 first."""
    return sorted(api.instances_of(namespace, pod).values(), key=lambda i: i["spec"]["address"]["version"])


def events(api: Api, namespace: str, pod: str, reason: str) -> list[Any]:
    selector = f"involvedObject.name={pod},reason={reason}"
    return list(api.core.list_namespaced_event(namespace, field_selector=selector).items)


def status(api: Api, plural: str, name: str) -> dict[str, Any]:
    return dict(api.get(plural, name).get("status") or {})


# --- the API server's part of a claim -------------------------------------------------------------


def test_an_address_is_claimed_once(real_api: Api, real_namespace: str) -> None:
    """The operator's claim is an IPInstance named after the address: another one of that name is
    refused by the API server itself, whoever sends it (another operator, a restarted one)."""
    uid = create_pod(real_api, real_namespace, pod_body("p", OVERLAY_NODE))
    [claim] = until(lambda: held(real_api, real_namespace, "p"), "p's address")
    second = copy.deepcopy(claim)
    del second["metadata"]["resourceVersion"], second["metadata"]["uid"], second["metadata"]["creationTimestamp"]
    second["metadata"].pop("managedFields", None)
    second["spec"]["binding"] = {"podName": "q", "podNamespace": real_namespace, "podUID": str(uuid.uuid4())}
    code, body = refusal(
        lambda: real_api.custom.create_cluster_custom_object(names.GROUP, names.VERSION, "ipinstances", second)
    )
    assert (code, body["reason"]) == (409, "AlreadyExists")
    assert real_api.get("ipinstances", claim["metadata"]["name"])["spec"]["binding"]["podUID"] == uid


def hand_made_claim(api: Api, namespace: str, pod_uid: str) -> dict[str, Any]:
    """An IPInstance of an address no network holds, bound to the live unscheduled pod ``holder`` (so
    the operator has no reason to remove it)."""
    address = ipaddress.IPv4Address("10.253.0.0") + uuid.uuid4().int % 65000 + 2
    body = {
        "apiVersion": names.API_VERSION,
        "kind": "IPInstance",
        "metadata": {"name": instance_name(address)},
        "spec": {
            "network": "nowhere",
            "subnet": "nowhere-subnet",
            "address": {"version": "4", "ip": f"{address}/16"},
            "binding": {"podName": "holder", "podNamespace": namespace, "podUID": pod_uid},
        },
    }
    return dict(api.custom.create_cluster_custom_object(names.GROUP, names.VERSION, "ipinstances", body))


def test_a_write_based_on_a_stale_read_is_refused(real_api: Api, real_namespace: str) -> None:
    """An update carries the resourceVersion it read; after someone else's write it gets 409
    Conflict, and what the other wrote stands."""
    uid = create_pod(real_api, real_namespace, pod_body("holder"))
    claim = hand_made_claim(real_api, real_namespace, uid)
    name = claim["metadata"]["name"]
    custom = real_api.custom
    try:
        custom.patch_cluster_custom_object(
            names.GROUP, names.VERSION, "ipinstances", name, {"spec": {"binding": {"nodeName": "node1"}}}
        )
        stale = copy.deepcopy(claim)
        stale["spec"]["binding"]["nodeName"] = "node2"
        code, body = refusal(
            lambda: custom.replace_cluster_custom_object(names.GROUP, names.VERSION, "ipinstances", name, stale)
        )
        assert (code, body["reason"]) == (409, "Conflict")
        stale_patch = {
            "metadata": {"resourceVersion": claim["metadata"]["resourceVersion"]},
            "spec": {"binding": {"nodeName": "node2"}},
        }
        code, body = refusal(
            lambda: custom.patch_cluster_custom_object(names.GROUP, names.VERSION, "ipinstances", name, stale_patch)
        )
        assert (code, body["reason"]) == (409, "Conflict")
        assert real_api.get("ipinstances", name)["spec"]["binding"]["nodeName"] == "node1"
    finally:
        custom.delete_cluster_custom_object(names.GROUP, names.VERSION, "ipinstances", name)


def test_a_delete_meant_for_an_old_claim_spares_a_new_claim_of_the_address(real_api: Api, real_namespace: str) -> None:
    """The operator deletes an orphaned IPInstance with its UID as a precondition: if the address
    was claimed again since it looked, the new claim stays."""
    uid = create_pod(real_api, real_namespace, pod_body("holder"))
    old = hand_made_claim(real_api, real_namespace, uid)
    name = old["metadata"]["name"]
    custom = real_api.custom
    custom.delete_cluster_custom_object(names.GROUP, names.VERSION, "ipinstances", name)
    again = copy.deepcopy(old)
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        again["metadata"].pop(key, None)
    new = custom.create_cluster_custom_object(names.GROUP, names.VERSION, "ipinstances", again)
    try:
        code, body = refusal(
            lambda: custom.delete_cluster_custom_object(
                names.GROUP,
                names.VERSION,
                "ipinstances",
                name,
                body=V1DeleteOptions(preconditions=V1Preconditions(uid=old["metadata"]["uid"])),
            )
        )
        assert (code, body["reason"]) == (409, "Conflict")
        assert real_api.get("ipinstances", name)["metadata"]["uid"] == new["metadata"]["uid"]
    finally:
        custom.delete_cluster_custom_object(names.GROUP, names.VERSION, "ipinstances", name)


# --- in-cluster IPAM, as seen through the API -----------------------------------------------------


def test_an_underlay_pod_gets_an_address_and_gives_it_back_when_it_goes(real_api: Api, real_namespace: str) -> None:
    net = own_underlay(real_api)
    [node] = net.nodes
    uid = create_pod(real_api, real_namespace, pod_body("p1", node, {TYPE: "Underlay"}))
    [claim] = until(lambda: held(real_api, real_namespace, "p1"), "p1's address")

    spec, labels = claim["spec"], claim["metadata"]["labels"]
    ip = ipaddress.ip_interface(spec["address"]["ip"])
    # An address of the subnet (its prefix length with it), never the gateway; the claim is named after it.
    assert ip.network == net.cidr
    assert str(ip.ip) not in (net.host(0), net.host(1), net.host(255))
    assert claim["metadata"]["name"] == instance_name(ip.ip)
    assert (spec["network"], spec["subnet"]) == (net.network, net.subnet)
    address = spec["address"]
    assert (address["version"], address["gateway"], address["netID"]) == ("4", net.host(1), 300)
    assert address["mac"].startswith(names.POD_MAC_PREFIX + ":")
    binding = spec["binding"]
    assert (binding["podName"], binding["podNamespace"], binding["podUID"], binding["nodeName"]) == (
        "p1",
        real_namespace,
        uid,
        node,
    )
    assert {k: binding["referredObject"][k] for k in ("kind", "name", "uid")} == {
        "kind": "Pod",
        "name": "p1",
        "uid": uid,
    }
    assert "stateful" not in binding
    assert {k: labels.get(k) for k in (names.LABEL_NODE, names.LABEL_POD, names.LABEL_POD_UID, names.LABEL_SUBNET)} == {
        names.LABEL_NODE: node,
        names.LABEL_POD: "p1",
        names.LABEL_POD_UID: uid,
        names.LABEL_SUBNET: net.subnet,
    }
    # A node's addresses can be listed by label.
    assert list(real_api.instances(f"{names.LABEL_NODE}={node}")) == [claim["metadata"]["name"]]

    until(
        lambda: (
            status(real_api, "subnets", net.subnet)
            == {"total": 253, "used": 1, "available": 252, "lastAllocatedIP": str(ip.ip)}
        ),
        "the subnet's status counts the address",
    )
    network_status = until(
        lambda: (s := status(real_api, "networks", net.network)).get("statistics", {}).get("used") == 1 and s,
        "the network's status counts the address",
    )
    assert network_status["statistics"] == {"total": 253, "used": 1, "available": 252}
    assert network_status["lastAllocatedSubnet"] == net.subnet
    assert network_status["nodeList"] == [node]
    assert network_status["subnetList"] == [net.subnet]
    [event] = until(lambda: events(real_api, real_namespace, "p1", "IPAllocationSucceed"), "an allocation event")
    assert event.type == "Normal"
    assert event.message == f"allocated {ip} in {net.network}"
    assert event.involved_object.uid == uid

    delete_pod(real_api, real_namespace, "p1")
    until(lambda: not held(real_api, real_namespace, "p1"), "the address given back")
    until(lambda: status(real_api, "subnets", net.subnet)["used"] == 0, "the subnet's status: none used")
    assert status(real_api, "subnets", net.subnet)["available"] == 253
    [event] = until(lambda: events(real_api, real_namespace, "p1", "IPReleaseSucceed"), "a release event")
    assert event.message == f"released {ip}"


def test_an_ipv6_pod_and_a_dual_stack_pod_get_their_families(real_api: Api, real_namespace: str) -> None:
    create_pod(real_api, real_namespace, pod_body("v6", OVERLAY_NODE, {FAM: "IPv6"}))
    [v6] = until(lambda: held(real_api, real_namespace, "v6"), "v6's address")
    assert v6["spec"]["network"] == OVERLAY
    assert v6["spec"]["address"]["version"] == "6"
    assert ipaddress.ip_interface(v6["spec"]["address"]["ip"]).network == ipaddress.ip_network("fd00:64::/112")

    net = own_underlay(real_api)
    v6_cidr = ipaddress.IPv6Network(f"fd00:152:{uuid.uuid4().int % 0xFFFF:x}::/120")
    real_api.subnet(f"{net.network}-v6", net.network, str(v6_cidr), version="6", gateway=str(v6_cidr[1]))
    until(lambda: status(real_api, "subnets", f"{net.network}-v6"), "the IPv6 subnet seen")
    create_pod(real_api, real_namespace, pod_body("ds", net.nodes[0], {TYPE: "Underlay", FAM: "DualStack"}))
    both = until(lambda: len(found := held(real_api, real_namespace, "ds")) == 2 and found, "ds's two addresses")
    assert [i["spec"]["address"]["version"] for i in both] == ["4", "6"]
    assert ipaddress.ip_interface(both[0]["spec"]["address"]["ip"]).network == net.cidr
    assert ipaddress.ip_interface(both[1]["spec"]["address"]["ip"]).network == v6_cidr
    # One interface, one MAC.
    assert both[0]["spec"]["address"]["mac"] == both[1]["spec"]["address"]["mac"]
    network_status = until(
        lambda: (s := status(real_api, "networks", net.network)).get("ipv6Statistics", {}).get("used") == 1 and s,
        "the network's status counts both",
    )
    # IPv4: .2-.254; IPv6: ::2-::ff (::1 is the gateway); a pair needs one of each.
    assert network_status["statistics"] == {"total": 253, "used": 1, "available": 252}
    assert network_status["ipv6Statistics"] == {"total": 254, "used": 1, "available": 253}
    assert network_status["dualStackStatistics"]["available"] == 252
    assert network_status["lastAllocatedIPv6Subnet"] == f"{net.network}-v6"


def test_completed_and_evicted_pods_give_their_addresses_back_at_once(real_api: Api, real_namespace: str) -> None:
    net = own_underlay(real_api)
    [node] = net.nodes
    for name in ("job", "evicted"):
        create_pod(real_api, real_namespace, pod_body(name, node, {TYPE: "Underlay"}))
    until(lambda: held(real_api, real_namespace, "job") and held(real_api, real_namespace, "evicted"), "addresses")
    real_api.core.patch_namespaced_pod_status("job", real_namespace, {"status": {"phase": "Succeeded"}})
    real_api.core.patch_namespaced_pod_status(
        "evicted", real_namespace, {"status": {"phase": "Failed", "reason": "Evicted"}}
    )
    until(lambda: not real_api.instances_of(real_namespace), "both given back while the pods still exist")
    assert {p.metadata.name for p in real_api.core.list_namespaced_pod(real_namespace).items} == {"job", "evicted"}
    until(lambda: status(real_api, "subnets", net.subnet)["used"] == 0, "the subnet's status: none used")


def test_host_network_and_unscheduled_pods_get_nothing_until_scheduled(real_api: Api, real_namespace: str) -> None:
    net = own_underlay(real_api, nodes=2)
    underlay = {TYPE: "Underlay"}
    create_pod(real_api, real_namespace, pod_body("host", net.nodes[0], underlay, hostNetwork=True))
    create_pod(real_api, real_namespace, pod_body("pending", None, underlay))
    # Seen after the two above: once it has its address, they have been looked at.
    create_pod(real_api, real_namespace, pod_body("marker", net.nodes[0], underlay))
    until(lambda: held(real_api, real_namespace, "marker"), "the marker's address")
    assert set(real_api.instances_of(real_namespace)) == {
        i["metadata"]["name"] for i in held(real_api, real_namespace, "marker")
    }

    binding = {"metadata": {"name": "pending"}, "target": {"kind": "Node", "name": net.nodes[1]}}
    real_api.core.create_namespaced_pod_binding("pending", real_namespace, binding, _preload_content=False)
    [claim] = until(lambda: held(real_api, real_namespace, "pending"), "an address once scheduled")
    assert (claim["spec"]["binding"]["nodeName"], claim["spec"]["network"]) == (net.nodes[1], net.network)
    assert not held(real_api, real_namespace, "host")


@pytest.fixture
def underlay_namespace(real_api: Api) -> Any:
    """A namespace whose pods are Underlay by default, once the operator (whose mutating webhook writes
    the choice into each new pod) knows it."""
    name = unique("ns")
    real_api.core.create_namespace({"metadata": {"name": name, "annotations": {TYPE: "Underlay"}}})

    def seen() -> bool:
        pod = real_api.core.create_namespaced_pod(name, pod_body("probe"), dry_run="All")
        return (pod.metadata.annotations or {}).get(TYPE) == "Underlay"

    until(seen, f"the operator knows namespace {name}")
    yield name
    real_api.core.delete_namespace(name, _preload_content=False)


def test_settings_come_from_the_pod_then_its_namespace(
    real_api: Api, real_namespace: str, underlay_namespace: str
) -> None:
    net = own_underlay(real_api)
    [node] = net.nodes
    create_pod(real_api, underlay_namespace, pod_body("from-ns", node))
    create_pod(real_api, underlay_namespace, pod_body("own", node, {TYPE: "Overlay"}))
    create_pod(real_api, real_namespace, pod_body("default", node))
    for namespace, pod, network in (
        (underlay_namespace, "from-ns", net.network),
        (underlay_namespace, "own", OVERLAY),
        (real_namespace, "default", OVERLAY),  # the operator's setting: Overlay
    ):
        [claim] = until(lambda namespace=namespace, pod=pod: held(real_api, namespace, pod), f"{pod}'s address")
        assert claim["spec"]["network"] == network, pod


def test_a_pod_whose_settings_turn_invalid_gets_a_warning_event_and_no_address(
    real_api: Api, real_namespace: str
) -> None:
    """The pod webhooks see a pod's creation only; its annotations may change before it is scheduled.
    The operator then says why it gives no address, once, on the pod."""
    net = own_underlay(real_api)
    [node] = net.nodes
    for name, wrong in (("bad", {FAM: "IPv5"}), ("nosuch", {NET: "no-such-network"})):
        create_pod(real_api, real_namespace, pod_body(name, None, {TYPE: "Underlay"}))
        real_api.core.patch_namespaced_pod(name, real_namespace, {"metadata": {"annotations": wrong}})
        binding = {"metadata": {"name": name}, "target": {"kind": "Node", "name": node}}
        real_api.core.create_namespaced_pod_binding(name, real_namespace, binding, _preload_content=False)
    [event] = until(lambda: events(real_api, real_namespace, "bad", "IPAllocationFail"), "bad's warning")
    assert event.type == "Warning"
    assert f"metadata.annotations[{FAM}] IPv5 must be one of IPv4, IPv6, DualStack" in event.message
    [event] = until(lambda: events(real_api, real_namespace, "nosuch", "IPAllocationFail"), "nosuch's warning")
    assert f"metadata.annotations[{NET}] no-such-network does not exist" in event.message
    assert real_api.instances_of(real_namespace) == {}
    assert status(real_api, "subnets", net.subnet)["used"] == 0


def test_network_status_and_node_labels_follow_the_node_selector(real_api: Api) -> None:
    net = own_underlay(real_api, nodes=1)
    [member] = net.nodes
    until(lambda: status(real_api, "networks", net.network).get("nodeList") == [member], "nodeList")
    labels = node_labels(real_api, member)
    assert {
        k: labels.get(k)
        for k in (
            names.LABEL_UNDERLAY_ATTACHMENT,
            names.LABEL_OVERLAY_ATTACHMENT,
            names.LABEL_IPV4_QUOTA,
            names.LABEL_IPV6_QUOTA,
            names.LABEL_DUALSTACK_QUOTA,
        )
    } == {
        names.LABEL_UNDERLAY_ATTACHMENT: "true",
        names.LABEL_OVERLAY_ATTACHMENT: "true",
        names.LABEL_IPV4_QUOTA: names.QUOTA_NONEMPTY,
        names.LABEL_IPV6_QUOTA: names.QUOTA_EMPTY,
        names.LABEL_DUALSTACK_QUOTA: names.QUOTA_EMPTY,
    }

    newcomer = unique("node")
    moved = {TEST_LABEL: unique("rack")}
    real_api.node(newcomer, moved)
    real_api.custom.patch_cluster_custom_object(
        names.GROUP, names.VERSION, "networks", net.network, {"spec": {"nodeSelector": {TEST_LABEL: moved[TEST_LABEL]}}}
    )
    until(lambda: status(real_api, "networks", net.network).get("nodeList") == [newcomer], "nodeList follows")
    until(lambda: node_labels(real_api, newcomer).get(names.LABEL_UNDERLAY_ATTACHMENT) == "true", "newcomer in")
    until(lambda: names.LABEL_UNDERLAY_ATTACHMENT not in node_labels(real_api, member), "member out")
    assert names.LABEL_IPV4_QUOTA not in node_labels(real_api, member)


def test_a_nodes_quota_label_says_whether_its_network_has_a_free_address(real_api: Api, real_namespace: str) -> None:
    tiny = own_underlay(real_api, prefix=30)  # .1 the gateway, .2 the one address
    [node] = tiny.nodes
    create_pod(real_api, real_namespace, pod_body("only", node, {TYPE: "Underlay"}))
    [claim] = until(lambda: held(real_api, real_namespace, "only"), "the one address")
    assert claim["spec"]["address"]["ip"] == f"{tiny.host(2)}/30"
    until(lambda: quota(real_api, node) == names.QUOTA_EMPTY, "quota empty when full")
    delete_pod(real_api, real_namespace, "only")
    until(lambda: quota(real_api, node) == names.QUOTA_NONEMPTY, "quota back when the address is free")


def test_a_networks_status_forgets_its_last_subnet_and_node(real_api: Api) -> None:
    net = own_underlay(real_api)
    until(lambda: status(real_api, "networks", net.network).get("subnetList") == [net.subnet], "subnetList")
    real_api.custom.delete_cluster_custom_object(names.GROUP, names.VERSION, "subnets", net.subnet)
    real_api.core.patch_node(net.nodes[0], {"metadata": {"labels": {TEST_LABEL: None}}})
    until(lambda: status(real_api, "networks", net.network)["statistics"]["total"] == 0, "the subnet uncounted")
    # The operator writes the networks' status, then the node labels: the label gone, the status is written.
    until(
        lambda: names.LABEL_UNDERLAY_ATTACHMENT not in node_labels(real_api, net.nodes[0]), "the node left the network"
    )
    final = status(real_api, "networks", net.network)
    assert final["subnetList"] == []
    assert final["nodeList"] == []


# --- stateful pods: what their IPInstances record -------------------------------------------------


def statefulset(name: str, annotations: dict[str, str], replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    template = {
        "metadata": {"labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    spec = {
        "replicas": replicas,
        "serviceName": name,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": labels},
        "template": template,
    }
    return {"metadata": {"name": name}, "spec": spec}


def test_a_statefulset_pod_with_ip_retain_false_holds_its_address_as_a_normal_pod(
    real_api: Api, real_namespace: str
) -> None:
    net = own_underlay(real_api)
    with PodLifecycle(real_api.client, real_namespace, lambda _: net.nodes[0]) as lifecycle:
        real_api.apps.create_namespaced_stateful_set(
            real_namespace, statefulset("tmp", {NET: net.network, names.ANNOTATION_IP_RETAIN: "false"})
        )
        [claim] = until(lambda: held(real_api, real_namespace, "tmp-0"), "tmp-0's address")
        pod = real_api.core.read_namespaced_pod("tmp-0", real_namespace)
        assert claim["spec"]["binding"]["referredObject"]["kind"] == "Pod"
        assert claim["spec"]["binding"]["referredObject"]["uid"] == pod.metadata.uid
        assert "stateful" not in claim["spec"]["binding"]
        assert names.FINALIZER_POD not in (pod.metadata.finalizers or [])
        real_api.core.delete_namespaced_pod("tmp-0", real_namespace)
        # Its successor gets an address of its own; the old one is not kept for the ordinal.
        until(
            lambda: (
                (c := held(real_api, real_namespace, "tmp-0")) and c[0]["spec"]["binding"]["podUID"] != pod.metadata.uid
            ),
            "tmp-0 back with an address of its own",
        )
        assert claim["metadata"]["name"] not in real_api.instances_of(real_namespace)
        assert not lifecycle.errors


def test_an_ip_pool_gives_each_ordinal_its_entry_and_a_changed_entry_frees_the_old_address(
    real_api: Api, real_namespace: str
) -> None:
    net = own_underlay(real_api)
    pool = f"{net.host(50)},{net.host(51)}"
    with PodLifecycle(real_api.client, real_namespace, lambda _: net.nodes[0]) as lifecycle:
        real_api.apps.create_namespaced_stateful_set(
            real_namespace, statefulset("db", {NET: net.network, names.ANNOTATION_IP_POOL: pool}, replicas=2)
        )
        for ordinal, host in ((0, 50), (1, 51)):
            [claim] = until(lambda o=ordinal: held(real_api, real_namespace, f"db-{o}"), f"db-{ordinal}'s address")
            assert claim["metadata"]["name"] == instance_name(net.host(host))
            assert claim["spec"]["binding"]["stateful"] == {"index": ordinal}
            assert claim["spec"]["binding"]["referredObject"]["kind"] == "StatefulSet"

        # A new template (the second entry changed): the controller replaces db-1, which moves.
        changed = f"{net.host(50)},{net.host(61)}"
        real_api.apps.patch_namespaced_stateful_set(
            "db",
            real_namespace,
            {"spec": {"template": {"metadata": {"annotations": {names.ANNOTATION_IP_POOL: changed}}}}},
        )
        until(
            lambda: (
                [c["metadata"]["name"] for c in held(real_api, real_namespace, "db-1")] == [instance_name(net.host(61))]
            ),
            "db-1 moved to its new entry",
            timeout=20,
        )
        assert instance_name(net.host(51)) not in real_api.instances_of(real_namespace)
        real_api.apps.delete_namespaced_stateful_set("db", real_namespace)
        until(lambda: not real_api.instances_of(real_namespace), "addresses freed with the StatefulSet")
        assert not lifecycle.errors


def test_a_deleted_statefulset_pod_keeps_its_address_bound_until_its_containers_stop(
    real_api: Api, real_namespace: str
) -> None:
    """The kubelet's part played by hand: while a deleted pod's containers still run, its address
    stays bound to it (the pod's finalizer holds it); once they stop, the address is reserved for the
    ordinal (pod UID and node cleared) and the pod may go."""
    net = own_underlay(real_api)
    [node] = net.nodes
    core = real_api.core
    real_api.apps.create_namespaced_stateful_set(real_namespace, statefulset("web", {NET: net.network}))
    until(lambda: core.list_namespaced_pod(real_namespace, label_selector="app=web").items, "web-0")
    binding = {"metadata": {"name": "web-0"}, "target": {"kind": "Node", "name": node}}
    core.create_namespaced_pod_binding("web-0", real_namespace, binding, _preload_content=False)
    pod = real_api.client.sanitize_for_serialization(core.read_namespaced_pod("web-0", real_namespace))
    uid = pod["metadata"]["uid"]
    core.patch_namespaced_pod_status("web-0", real_namespace, {"status": running_status(pod)})
    [claim] = until(lambda: held(real_api, real_namespace, "web-0"), "web-0's address")
    name = claim["metadata"]["name"]
    assert claim["spec"]["binding"]["stateful"] == {"index": 0}
    until(
        lambda: names.FINALIZER_POD in (core.read_namespaced_pod("web-0", real_namespace).metadata.finalizers or []),
        "the pod's finalizer",
    )

    core.delete_namespaced_pod("web-0", real_namespace)
    core.patch_namespaced_pod_status("web-0", real_namespace, {"status": running_status(pod)})
    # A pod seen after those changes: once it has an address, they have been looked at too.
    create_pod(real_api, real_namespace, pod_body("marker", node, {TYPE: "Underlay"}))
    until(lambda: held(real_api, real_namespace, "marker"), "the marker's address")
    assert real_api.get("ipinstances", name)["spec"]["binding"]["podUID"] == uid
    assert core.read_namespaced_pod("web-0", real_namespace).metadata.uid == uid

    core.patch_namespaced_pod_status("web-0", real_namespace, {"status": terminated_status(pod)})
    until(
        lambda: (
            names.FINALIZER_POD not in (core.read_namespaced_pod("web-0", real_namespace).metadata.finalizers or [])
        ),
        "the finalizer removed once no container runs",
    )
    binding_now = real_api.get("ipinstances", name)["spec"]["binding"]
    assert "podUID" not in binding_now
    assert "nodeName" not in binding_now
    assert (binding_now["podName"], binding_now["stateful"]) == ("web-0", {"index": 0})
    until(lambda: events(real_api, real_namespace, "web-0", "IPReserveSucceed"), "a reserve event")
    delete_pod(real_api, real_namespace, "web-0")  # the kubelet's last word
    real_api.apps.delete_namespaced_stateful_set("web", real_namespace)
    until(lambda: name not in real_api.instances(), "the address freed with its StatefulSet")
