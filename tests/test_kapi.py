"""The API stand-in behaves as the real API where our code depends on it (see tests/support/kapi.py)."""

from __future__ import annotations

import threading

import kubernetes
import pytest
from kapi import parse_selector, selector_of


@pytest.fixture
def client(kubeconfig):
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


def ipinstance(name, subnet, node="node1"):
    return {
        "apiVersion": "networking.hybridlay.io/v1",
        "kind": "IPInstance",
        "metadata": {"name": name, "labels": {"networking.hybridlay.io/subnet": subnet,
                                              "networking.hybridlay.io/node": node}},
        "spec": {"network": "n", "subnet": subnet, "address": {"version": "4", "ip": "10.0.0.5/24"}},
    }


GROUP, VERSION, PLURAL = "networking.hybridlay.io", "v1", "ipinstances"


def test_create_returns_the_object_and_a_second_claim_conflicts(client):
    api = kubernetes.client.CustomObjectsApi(client)
    created = api.create_cluster_custom_object(GROUP, VERSION, PLURAL, ipinstance("10-0-0-5", "a"))
    assert created["metadata"]["name"] == "10-0-0-5"
    assert created["metadata"]["uid"]
    assert created["metadata"]["resourceVersion"]
    with pytest.raises(kubernetes.client.ApiException) as caught:
        api.create_cluster_custom_object(GROUP, VERSION, PLURAL, ipinstance("10-0-0-5", "b"))
    assert caught.value.status == 409


def test_core_create_returns_the_object(client):
    core = kubernetes.client.CoreV1Api(client)
    pod = core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert pod is not None
    assert pod.metadata.name == "p"


def test_label_and_field_selectors_filter_lists(client):
    api = kubernetes.client.CustomObjectsApi(client)
    api.create_cluster_custom_object(GROUP, VERSION, PLURAL, ipinstance("10-0-0-5", "a", "node1"))
    api.create_cluster_custom_object(GROUP, VERSION, PLURAL, ipinstance("10-0-0-6", "b", "node2"))
    selected = api.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector="networking.hybridlay.io/subnet=b")
    assert [o["metadata"]["name"] for o in selected["items"]] == ["10-0-0-6"]
    by_field = api.list_cluster_custom_object(GROUP, VERSION, PLURAL, field_selector="metadata.name=10-0-0-5")
    assert [o["metadata"]["name"] for o in by_field["items"]] == ["10-0-0-5"]


def test_stale_update_conflicts(client):
    api = kubernetes.client.CustomObjectsApi(client)
    created = api.create_cluster_custom_object(GROUP, VERSION, PLURAL, ipinstance("10-0-0-5", "a"))
    stale = created["metadata"]["resourceVersion"]
    api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "10-0-0-5", {"spec": {"subnet": "c"}})
    with pytest.raises(kubernetes.client.ApiException) as caught:
        api.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, "10-0-0-5", {"metadata": {"resourceVersion": stale}, "spec": {"subnet": "d"}}
        )
    assert caught.value.status == 409
    assert api.get_cluster_custom_object(GROUP, VERSION, PLURAL, "10-0-0-5")["spec"]["subnet"] == "c"


def test_replace_and_replace_status(client):
    api = kubernetes.client.CustomObjectsApi(client)
    created = api.create_cluster_custom_object(GROUP, VERSION, PLURAL, ipinstance("10-0-0-5", "a"))
    created["spec"]["subnet"] = "z"
    replaced = api.replace_cluster_custom_object(GROUP, VERSION, PLURAL, "10-0-0-5", created)
    assert replaced["spec"]["subnet"] == "z"
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]
    replaced["status"] = {"nodeName": "node9"}
    api.replace_cluster_custom_object_status(GROUP, VERSION, PLURAL, "10-0-0-5", replaced)
    assert api.get_cluster_custom_object(GROUP, VERSION, PLURAL, "10-0-0-5")["status"] == {"nodeName": "node9"}


def test_watch_streams_only_selected_objects(client, kube_api):
    api = kubernetes.client.CustomObjectsApi(client)
    seen: list[str] = []
    done = threading.Event()

    def watch():
        stream = kubernetes.watch.Watch()
        for event in stream.stream(api.list_cluster_custom_object, GROUP, VERSION, PLURAL,
                                   label_selector="networking.hybridlay.io/node=node2", _request_timeout=10):
            seen.append(event["object"]["metadata"]["name"])
            if len(seen) == 1:
                stream.stop()
        done.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    api.create_cluster_custom_object(GROUP, VERSION, PLURAL, ipinstance("10-0-0-5", "a", "node1"))
    api.create_cluster_custom_object(GROUP, VERSION, PLURAL, ipinstance("10-0-0-6", "a", "node2"))
    assert done.wait(10)
    assert seen == ["10-0-0-6"]


def test_finalizers_hold_deletion(client, kube_api):
    core = kubernetes.client.CoreV1Api(client)
    pod = {"metadata": {"name": "p", "finalizers": ["x/y"]}, "spec": {"containers": []}}
    core.create_namespaced_pod("default", pod)
    core.delete_namespaced_pod("p", "default")
    assert core.read_namespaced_pod("p", "default").metadata.deletion_timestamp is not None
    core.patch_namespaced_pod("p", "default", {"metadata": {"finalizers": None}})
    assert kube_api.objects("v1/pods") == []


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1,b!=2", {"a": "1", "b": "3"}, True),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a notin (1,2),c", {"a": "3", "c": ""}, True),
        ("!a", {"a": "1"}, False),
        ("a=1,b=2", {"a": "1"}, False),
    ],
)
def test_label_selector_syntax(selector, labels, expected):
    assert selector_of({"labelSelector": selector})({"metadata": {"labels": labels}}) is expected
    assert parse_selector("", lambda o, k: None)({}) is True


def test_lists_carry_their_kind(client):
    api = kubernetes.client.CustomObjectsApi(client)
    listed = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert (listed["apiVersion"], listed["kind"]) == ("networking.hybridlay.io/v1", "IPInstanceList")


def test_namespace_objects_are_served(client, kube_api):
    core = kubernetes.client.CoreV1Api(client)
    core.create_namespace({"metadata": {"name": "shop"}})
    assert core.read_namespace("shop").metadata.name == "shop"
    assert [n["metadata"]["name"] for n in kube_api.objects("v1/namespaces")] == ["shop"]


def test_dry_run_answers_and_stores_nothing(client, kube_api):
    api = kubernetes.client.CustomObjectsApi(client)
    answer = api.create_cluster_custom_object(GROUP, VERSION, PLURAL, ipinstance("10-0-0-5", "a"), dry_run="All")
    assert answer["metadata"]["name"] == "10-0-0-5"
    assert kube_api.objects(f"{GROUP}/{VERSION}/{PLURAL}") == []
    assert kube_api.api.dry_runs == [("POST", None)]


def test_secret_string_data_is_stored_as_base64_data(client, kube_api):
    core = kubernetes.client.CoreV1Api(client)
    core.create_namespaced_secret("default", {"metadata": {"name": "bgp"}, "stringData": {"peer": "s3cret"}})
    stored = kube_api.objects("v1/secrets")[0]
    assert "stringData" not in stored
    assert stored["data"] == {"peer": "czNjcmV0"}
