"""The operator's IPAM against the API stand-in: reference §6's integration cases and ours.

Runs the real operator (kopf watches, our controller, the official client) in-process against
KMock (tests/support/kapi.py), because no kube-apiserver runs here. KMock has no kubelet, no
scheduler and no garbage collector: the tests set pod phases and container states as a kubelet
would and delete what a user would.
"""

from __future__ import annotations

from opsupport import NS, eventually

from hybridlay import names

TYPE, FAMILY = names.ANNOTATION_NETWORK_TYPE, names.ANNOTATION_IP_FAMILY
UNDERLAY = {TYPE: "Underlay"}


def ips(instances):
    return sorted(i["spec"]["address"]["ip"] for i in instances)


async def test_underlay_pod_gets_an_address_and_gives_it_back_on_deletion(cluster, start_operator):
    await start_operator()
    uid = cluster.create_pod("p1", annotations=UNDERLAY)
    [instance] = await eventually(lambda: cluster.instances_of("p1"), what="p1's IPInstance")

    assert instance["metadata"]["name"] == "192-168-56-2"  # .1 is the gateway
    spec = instance["spec"]
    assert spec["network"] == "underlay-network"
    assert spec["subnet"] == "underlay-subnet"
    assert spec["address"]["ip"] == "192.168.56.2/24"
    assert spec["address"]["gateway"] == "192.168.56.1"
    assert spec["address"]["netID"] == 100
    assert spec["address"]["mac"].startswith("02:12:34:")
    assert spec["binding"]["podUID"] == uid
    assert spec["binding"]["nodeName"] == "node1"
    assert spec["binding"]["referredObject"] == {"kind": "Pod", "name": "p1", "uid": uid}
    assert instance["metadata"]["ownerReferences"][0]["uid"] == uid
    labels = instance["metadata"]["labels"]
    assert labels[names.LABEL_NODE] == "node1"
    assert labels[names.LABEL_POD] == "p1"
    assert labels[names.LABEL_POD_UID] == uid

    await eventually(
        lambda: (
            cluster.get("subnets", "underlay-subnet").get("status")
            == {"total": 253, "used": 1, "available": 252, "lastAllocatedIP": "192.168.56.2"}
        ),
        what="subnet status counts the allocation",
    )
    await eventually(lambda: cluster.events("IPAllocationSucceed", about="p1"), what="success event")

    cluster.delete_pod("p1")
    await eventually(lambda: not cluster.instances(), what="IPInstance deleted with its pod")
    await eventually(lambda: cluster.get("subnets", "underlay-subnet")["status"]["used"] == 0, what="used back to 0")
    await eventually(lambda: cluster.events("IPReleaseSucceed", about="p1"), what="release event")


async def test_ipv6_overlay_pod_and_dual_stack_pod(cluster, start_operator):
    await start_operator()
    cluster.create_pod("v6", node="node3", annotations={FAMILY: "IPv6"})
    cluster.create_pod("ds", node="node3", annotations={FAMILY: "DualStack"})

    [v6] = await eventually(lambda: cluster.instances_of("v6"), what="v6 pod's IPInstance")
    assert v6["spec"]["address"]["version"] == "6"
    assert v6["spec"]["address"]["ip"].startswith("fe80::")
    assert v6["spec"]["address"]["ip"].endswith("/120")
    assert v6["spec"]["network"] == "overlay-network"

    both = await eventually(lambda: len(cluster.instances_of("ds")) == 2 and cluster.instances_of("ds"))
    assert sorted(i["spec"]["address"]["version"] for i in both) == ["4", "6"]
    assert ips(both)[0].startswith("100.10.0.")
    assert both[0]["spec"]["address"]["mac"] == both[1]["spec"]["address"]["mac"]  # one interface, one MAC
    await eventually(lambda: cluster.get("networks", "overlay-network").get("status", {}).get("statistics"))
    status = await eventually(
        lambda: (s := cluster.get("networks", "overlay-network")["status"])["ipv6Statistics"]["used"] == 2 and s
    )
    assert status["statistics"] == {"total": 254, "used": 1, "available": 253}
    assert status["ipv6Statistics"] == {"total": 255, "used": 2, "available": 253}
    assert status["dualStackStatistics"]["available"] == 253


async def test_completed_and_evicted_pods_release_at_once(cluster, start_operator):
    await start_operator()
    cluster.create_pod("job", annotations=UNDERLAY)
    cluster.create_pod("evicted", annotations=UNDERLAY)
    await eventually(lambda: cluster.instances_of("job") and cluster.instances_of("evicted"))

    cluster.set_pod_status("job", "Succeeded", running=False)
    cluster.patch_pod_status("evicted", {"status": {"phase": "Failed", "reason": "Evicted"}})
    await eventually(lambda: not cluster.instances(), what="both released while the pods still exist")
    assert cluster.pod("job") is not None
    assert cluster.pod("evicted") is not None


async def test_host_network_and_unscheduled_pods_get_nothing_until_scheduled(cluster, start_operator):
    operator = await start_operator()
    cluster.create_pod("host", host_network=True)
    cluster.create_pod("pending", node=None)
    cluster.create_pod("marker")  # processed after the two above: when it has its address, they were seen
    await eventually(lambda: cluster.instances_of("marker"))
    await eventually(lambda: operator.controller.queue.idle)
    assert cluster.instances_of("host") == []
    assert cluster.instances_of("pending") == []

    cluster.core.patch_namespaced_pod("pending", NS, {"spec": {"nodeName": "node2"}})
    [instance] = await eventually(lambda: cluster.instances_of("pending"), what="address once scheduled")
    assert instance["spec"]["binding"]["nodeName"] == "node2"


async def test_statefulset_pod_keeps_its_address_across_deletion_and_nodes(cluster, start_operator):
    await start_operator()
    sts_uid = cluster.statefulset("web")
    owner = ("StatefulSet", "web", sts_uid)
    first_uid = cluster.create_pod("web-0", annotations=UNDERLAY, owner=owner)
    cluster.set_pod_status("web-0", "Running", running=True)
    [instance] = await eventually(lambda: cluster.instances_of("web-0"))
    name = instance["metadata"]["name"]
    assert instance["spec"]["binding"]["referredObject"] == {"kind": "StatefulSet", "name": "web", "uid": sts_uid}
    assert instance["spec"]["binding"]["stateful"] == {"index": 0}
    assert instance["metadata"]["ownerReferences"][0]["uid"] == sts_uid
    await eventually(lambda: names.FINALIZER_POD in (cluster.pod("web-0")["metadata"].get("finalizers") or []))

    # Deleted while its container still runs: the address stays bound until the container stops.
    cluster.delete_pod("web-0")
    await eventually(lambda: cluster.pod("web-0")["metadata"].get("deletionTimestamp"))
    cluster.set_pod_status("web-0", "Running", running=True)  # an event the operator sees and must wait on
    still = cluster.instances()[name]
    assert still["spec"]["binding"]["podUID"] == first_uid
    assert cluster.pod("web-0") is not None

    cluster.set_pod_status("web-0", "Running", running=False)
    await eventually(lambda: cluster.pod("web-0") is None, what="finalizer removed once no container runs")
    reserved = cluster.instances()[name]
    assert "podUID" not in reserved["spec"]["binding"]
    assert "nodeName" not in reserved["spec"]["binding"]
    assert reserved["spec"]["binding"]["podName"] == "web-0"
    await eventually(lambda: cluster.events("IPReserveSucceed", about="web-0"))

    # The same ordinal on another node gets the same address back.
    second_uid = cluster.create_pod("web-0", node="node2", annotations=UNDERLAY, owner=owner)
    rebound = await eventually(
        lambda: (i := cluster.instances()[name])["spec"]["binding"].get("podUID") == second_uid and i
    )
    assert rebound["spec"]["binding"]["nodeName"] == "node2"
    assert len(cluster.instances_of("web-0")) == 1

    # Scale-down (the pod deleted for good) keeps it; deleting the StatefulSet frees it.
    cluster.delete_pod("web-0")
    cluster.set_pod_status("web-0", "Running", running=False)
    await eventually(lambda: cluster.pod("web-0") is None)
    assert name in cluster.instances()
    cluster.apps.delete_namespaced_stateful_set("web", NS)
    await eventually(lambda: name not in cluster.instances(), what="freed with its StatefulSet")


async def test_statefulset_pod_with_ip_retain_false_is_a_normal_pod(cluster, start_operator):
    await start_operator()
    owner = ("StatefulSet", "tmp", cluster.statefulset("tmp"))
    uid = cluster.create_pod("tmp-0", annotations={**UNDERLAY, names.ANNOTATION_IP_RETAIN: "false"}, owner=owner)
    [instance] = await eventually(lambda: cluster.instances_of("tmp-0"))
    assert instance["spec"]["binding"]["referredObject"]["kind"] == "Pod"
    assert instance["spec"]["binding"]["referredObject"]["uid"] == uid
    assert names.FINALIZER_POD not in (cluster.pod("tmp-0")["metadata"].get("finalizers") or [])
    cluster.delete_pod("tmp-0")
    await eventually(lambda: not cluster.instances_of("tmp-0"))


async def test_settings_come_from_pod_then_namespace_annotations(cluster, start_operator):
    await start_operator()
    cluster.namespace("team", {TYPE: "Underlay"})
    cluster.create_pod("from-ns", namespace="team")
    cluster.create_pod("own", namespace="team", annotations={TYPE: "Overlay"})
    cluster.create_pod("default-type")
    [from_ns] = await eventually(lambda: cluster.instances_of("from-ns", "team"))
    [own] = await eventually(lambda: cluster.instances_of("own", "team"))
    [default] = await eventually(lambda: cluster.instances_of("default-type"))
    assert from_ns["spec"]["network"] == "underlay-network"
    assert own["spec"]["network"] == "overlay-network"
    assert default["spec"]["network"] == "overlay-network"  # DEFAULT_NETWORK_TYPE: Overlay


async def test_ip_pool_by_ordinal_and_a_changed_entry_frees_the_old_address(cluster, start_operator):
    await start_operator()
    owner = ("StatefulSet", "db", cluster.statefulset("db"))
    pool = {names.ANNOTATION_SPECIFIED_NETWORK: "overlay-network", names.ANNOTATION_IP_POOL: "100.10.0.50,100.10.0.51"}
    cluster.create_pod("db-1", annotations=pool, owner=owner)
    [instance] = await eventually(lambda: cluster.instances_of("db-1"))
    assert instance["metadata"]["name"] == "100-10-0-51"
    assert instance["spec"]["binding"]["stateful"] == {"index": 1}

    cluster.delete_pod("db-1")
    cluster.set_pod_status("db-1", "Running", running=False)
    await eventually(lambda: cluster.pod("db-1") is None)
    changed = {**pool, names.ANNOTATION_IP_POOL: "100.10.0.50,100.10.0.61"}
    cluster.create_pod("db-1", annotations=changed, owner=owner)
    await eventually(lambda: ips(cluster.instances_of("db-1")) == ["100.10.0.61/24"], what="moved to the new entry")
    assert "100-10-0-51" not in cluster.instances()


async def test_invalid_annotations_get_an_event_and_no_address(cluster, start_operator):
    operator = await start_operator()
    cluster.create_pod("bad", annotations={FAMILY: "IPv5"})
    cluster.create_pod("nosuch", annotations={names.ANNOTATION_SPECIFIED_NETWORK: "no-such-network"})
    [event] = await eventually(lambda: cluster.events("IPAllocationFail", about="bad"))
    assert event["type"] == "Warning"
    assert f"metadata.annotations[{FAMILY}] IPv5 must be one of IPv4, IPv6, DualStack" in event["message"]
    [event] = await eventually(lambda: cluster.events("IPAllocationFail", about="nosuch"))
    assert "no-such-network does not exist" in event["message"]
    await eventually(lambda: operator.controller.queue.idle)
    assert cluster.instances() == {}
    # Nothing leaked in IPAM either: every address is still available.
    assert operator.controller.ipam.network_status("overlay-network").statistics.used == 0


async def test_network_status_and_node_labels_follow_selectors_and_quota(cluster, start_operator):
    await start_operator()
    underlay_nodes = lambda: cluster.get("networks", "underlay-network").get("status", {}).get("nodeList")  # noqa: E731
    await eventually(lambda: underlay_nodes() == ["node1", "node2"], what="nodeList from the selector")
    labels = lambda node: cluster.get("nodes", node)["metadata"].get("labels", {})  # noqa: E731
    await eventually(lambda: labels("node1").get(names.LABEL_UNDERLAY_ATTACHMENT) == "true")
    assert labels("node1")[names.LABEL_IPV4_QUOTA] == "nonempty"
    assert labels("node1")[names.LABEL_IPV6_QUOTA] == "empty"
    assert labels("node1")[names.LABEL_OVERLAY_ATTACHMENT] == "true"
    assert names.LABEL_UNDERLAY_ATTACHMENT not in labels("node3")

    # The selector changes: the attachment labels and the node list follow.
    cluster.custom.patch_cluster_custom_object(
        names.GROUP,
        names.VERSION,
        "networks",
        "underlay-network",
        {"spec": {"nodeSelector": {"network": None, "rack": "b"}}},
    )
    cluster.core.patch_node("node3", {"metadata": {"labels": {"rack": "b"}}})
    await eventually(lambda: underlay_nodes() == ["node3"], what="nodeList follows the new selector")
    await eventually(lambda: labels("node3").get(names.LABEL_UNDERLAY_ATTACHMENT) == "true")
    await eventually(lambda: names.LABEL_UNDERLAY_ATTACHMENT not in labels("node1"))

    # A one-address subnet: its node's quota label turns empty when the address is taken.
    cluster.node("node4", {"zone": "tiny"})
    cluster.network("tiny", "Underlay", 200, {"zone": "tiny"})
    cluster.subnet("tiny-subnet", "tiny", "10.9.0.0/30", gateway="10.9.0.1")
    await eventually(lambda: labels("node4").get(names.LABEL_IPV4_QUOTA) == "nonempty")
    cluster.create_pod("only", node="node4", annotations=UNDERLAY)
    await eventually(lambda: ips(cluster.instances_of("only")) == ["10.9.0.2/30"])
    await eventually(lambda: labels("node4").get(names.LABEL_IPV4_QUOTA) == "empty", what="quota empty when full")
    cluster.delete_pod("only")
    await eventually(lambda: labels("node4").get(names.LABEL_IPV4_QUOTA) == "nonempty", what="quota back")
