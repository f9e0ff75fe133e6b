"""The admission webhooks answer real AdmissionReview requests over HTTPS.

The operator runs in-process with its TLS webhook server (kopf's, with a certificate from files as
the install role provides them). KMock calls no webhooks, so the tests play the API server: they
POST the AdmissionReview JSON the API server would send and check the answers, denial messages
(the core's, word for word) and the mutating JSONPatch applied to the pod.
"""

from __future__ import annotations

import base64
import copy
import ssl
import uuid

import aiohttp
import jsonpatch
import pytest
from opsupport import NS, eventually
from realcluster import free_port, write_tls_files

from hybridlay import model, names, validation
from hybridlay.pod_request import PodSettings, validate_pod_create

NETWORKS = {"group": names.GROUP, "version": names.VERSION, "resource": "networks"}
SUBNETS = {"group": names.GROUP, "version": names.VERSION, "resource": "subnets"}
PODS = {"group": "", "version": "v1", "resource": "pods"}


class Webhooks:
    def __init__(self, port, ca_file):
        self.base = f"https://127.0.0.1:{port}"
        self.ssl = ssl.create_default_context(cafile=str(ca_file))

    async def review(self, path, resource, operation, obj=None, old=None):
        request = {
            "uid": str(uuid.uuid4()),
            "kind": {"group": resource["group"], "version": resource["version"], "kind": "X"},
            "resource": resource,
            "operation": operation,
            "userInfo": {"username": "admin", "groups": ["system:masters"]},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
        }
        if resource is PODS:
            request["namespace"] = NS
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.base}/{path}", json=review, ssl=self.ssl) as response,
        ):
            assert response.status == 200
            answer = await response.json()
        assert answer["response"]["uid"] == request["uid"]
        return answer["response"]


@pytest.fixture
async def webhooks(cluster, start_operator, tmp_path):
    ca, cert, key = write_tls_files(tmp_path)
    port = free_port()
    operator = await start_operator(
        webhook_addr="127.0.0.1", webhook_port=port, webhook_certfile=str(cert), webhook_keyfile=str(key)
    )
    # The caches the rules read are filled by the watches once the operator runs.
    await eventually(lambda: len(operator.controller.subnets) == 3 and len(operator.controller.nodes) == 3)
    hooks = Webhooks(port, ca)

    async def serving():
        try:
            await hooks.review("validate-network", NETWORKS, "CREATE", network_obj("probe", "Underlay", 7, {"x": "y"}))
        except aiohttp.ClientError:
            return False
        return True

    await eventually(serving, what="webhook server answering")
    operator.hooks = hooks
    return operator


def network_obj(name, type_, net_id=None, selector=None):
    spec = {"type": type_}
    if net_id is not None:
        spec["netID"] = net_id
    if selector:
        spec["nodeSelector"] = selector
    return {"apiVersion": f"{names.GROUP}/{names.VERSION}", "kind": "Network", "metadata": {"name": name}, "spec": spec}


def subnet_obj(name, network, cidr, **range_):
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": "Subnet",
        "metadata": {"name": name},
        "spec": {"network": network, "range": {"version": "4", "cidr": cidr, **range_}},
    }


def pod_obj(name, annotations=None, host_network=False, node_selector=None):
    spec = {"containers": [{"name": "c", "image": "x"}]}
    if host_network:
        spec["hostNetwork"] = True
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "spec": spec,
    }


def denial(response):
    assert response["allowed"] is False
    return response["status"]["message"]


def core_words(violations):
    """What the core says, joined as the webhook joins it."""
    return "; ".join(str(v) for v in violations)


async def test_network_rules(webhooks, cluster):
    hooks, controller = webhooks.hooks, webhooks.controller
    ok = network_obj("rack-b", "Underlay", 101, {"rack": "b"})
    assert (await hooks.review("validate-network", NETWORKS, "CREATE", ok))["allowed"] is True

    second_overlay = network_obj("overlay-2", "Overlay", 5)
    message = denial(await hooks.review("validate-network", NETWORKS, "CREATE", second_overlay))
    expected = validation.validate_network_create(
        model.network_from_resource(second_overlay), controller.networks.values(), controller.nodes
    )
    assert expected
    assert message == core_words(expected)

    old = network_obj("underlay-network", "Underlay", 100, {"network": "underlay-network"})
    changed = copy.deepcopy(old)
    changed["spec"]["netID"] = 200
    message = denial(await hooks.review("validate-network", NETWORKS, "UPDATE", changed, old))
    assert "spec.netID 200 must not change (was 100)" in message

    message = denial(await hooks.review("validate-network", NETWORKS, "DELETE", None, old))
    expected = validation.validate_network_delete(model.network_from_resource(old), controller.subnets.values())
    assert "underlay-subnet" in message
    assert message == core_words(expected)


async def test_subnet_rules(webhooks, cluster):
    hooks = webhooks.hooks
    fresh = subnet_obj("fresh", "underlay-network", "192.168.57.0/24", gateway="192.168.57.1")
    assert (await hooks.review("validate-subnet", SUBNETS, "CREATE", fresh))["allowed"] is True

    overlapping = subnet_obj("overlap", "overlay-network", "100.10.0.0/25")
    message = denial(await hooks.review("validate-subnet", SUBNETS, "CREATE", overlapping))
    assert "overlay-subnet" in message

    missing_network = subnet_obj("orphan", "no-such-network", "10.77.0.0/24")
    message = denial(await hooks.review("validate-subnet", SUBNETS, "CREATE", missing_network))
    assert "no-such-network" in message

    # In use by an IPInstance: deletion refused, naming the instance.
    cluster.create_pod("user", annotations={names.ANNOTATION_NETWORK_TYPE: "Underlay"})
    [instance] = await eventually(lambda: cluster.instances_of("user"))
    await eventually(lambda: instance["metadata"]["name"] in webhooks.controller.instances)
    used = subnet_obj("underlay-subnet", "underlay-network", "192.168.56.0/24", gateway="192.168.56.1")
    message = denial(await hooks.review("validate-subnet", SUBNETS, "DELETE", None, used))
    assert instance["metadata"]["name"] in message
    expected = validation.validate_subnet_delete(
        model.subnet_from_resource(used), webhooks.controller.instances.values()
    )
    assert message == core_words(expected)


async def test_pod_validation(webhooks, cluster):
    hooks, controller = webhooks.hooks, webhooks.controller
    plain = pod_obj("plain")
    assert (await hooks.review("validate-pod", PODS, "CREATE", plain))["allowed"] is True

    bad = pod_obj("bad", {names.ANNOTATION_SPECIFIED_NETWORK: "nope", names.ANNOTATION_IP_FAMILY: "IPv4"})
    message = denial(await hooks.review("validate-pod", PODS, "CREATE", bad))
    expected = validate_pod_create(bad, None, controller.networks, controller.subnets, PodSettings())
    assert message == core_words(expected)
    assert f"metadata.annotations[{names.ANNOTATION_SPECIFIED_NETWORK}] nope does not exist" in message


def patched(pod, response):
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    return jsonpatch.apply_patch(pod, jsonpatch.JsonPatch.from_string(base64.b64decode(response["patch"]).decode()))


async def test_pod_mutation_writes_the_choice_and_scheduling_constraints(webhooks, cluster):
    hooks = webhooks.hooks
    underlay = pod_obj("u", {names.ANNOTATION_NETWORK_TYPE: "underlay"}, node_selector={"disk": "ssd"})
    result = patched(underlay, await hooks.review("mutate-pod", PODS, "CREATE", underlay))
    annotations = result["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_NETWORK_TYPE] == "Underlay"
    assert annotations[names.ANNOTATION_IP_FAMILY] == "IPv4"
    # Any underlay network will do: the node must be attached to one, with a free IPv4 address.
    assert result["spec"]["nodeSelector"] == {
        "disk": "ssd",
        names.LABEL_UNDERLAY_ATTACHMENT: "true",
        names.LABEL_IPV4_QUOTA: names.QUOTA_NONEMPTY,
    }

    chosen = pod_obj("n", {names.ANNOTATION_SPECIFIED_NETWORK: "underlay-network"})
    result = patched(chosen, await hooks.review("mutate-pod", PODS, "CREATE", chosen))
    assert result["metadata"]["annotations"][names.ANNOTATION_NETWORK_TYPE] == "Underlay"
    assert result["spec"]["nodeSelector"] == {
        "network": "underlay-network",
        names.LABEL_IPV4_QUOTA: names.QUOTA_NONEMPTY,
    }

    overlay = pod_obj("o", {names.ANNOTATION_IP_FAMILY: "DualStack"})
    result = patched(overlay, await hooks.review("mutate-pod", PODS, "CREATE", overlay))
    assert result["metadata"]["annotations"][names.ANNOTATION_SPECIFIED_NETWORK] == "overlay-network"
    assert result["metadata"]["annotations"][names.ANNOTATION_IP_FAMILY] == "DualStack"
    assert result["spec"]["nodeSelector"] == {names.LABEL_OVERLAY_ATTACHMENT: "true"}

    host = pod_obj("h", host_network=True)
    result = patched(host, await hooks.review("mutate-pod", PODS, "CREATE", host))
    assert {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"} in result[
        "spec"
    ]["tolerations"]
    assert "nodeSelector" not in result["spec"]


async def test_pod_without_namespace_takes_the_review_namespace(webhooks, cluster):
    """A controller's pod reaches admission without metadata.namespace; request.namespace is the truth."""
    cluster.core.patch_namespace(NS, {"metadata": {"annotations": {names.ANNOTATION_IP_FAMILY: "DualStack"}}})
    namespaces = webhooks.controller.namespaces
    await eventually(
        lambda: names.ANNOTATION_IP_FAMILY in namespaces.get(NS, {}).get("metadata", {}).get("annotations", {}),
        what="the namespace default is seen",
    )
    pod = pod_obj("from-controller")
    del pod["metadata"]["namespace"]
    result = patched(pod, await webhooks.hooks.review("mutate-pod", PODS, "CREATE", pod))
    assert result["metadata"]["annotations"][names.ANNOTATION_IP_FAMILY] == "DualStack"


async def test_webhook_server_speaks_only_tls(webhooks):
    plain_url = webhooks.hooks.base.replace("https://", "http://")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.post(f"{plain_url}/validate-network", json={}) as response:
                await response.read()
