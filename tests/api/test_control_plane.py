"""The real control plane itself: what every API test builds on."""

from __future__ import annotations

import time

import kubernetes
from apitopo import Api
from realcluster import AGENT_SA, OPERATOR_SA, SYSTEM_NAMESPACE, OperatorProcess, RealCluster


def test_operator_runs_as_its_service_account_and_may_not_do_more(
    real_cluster: RealCluster, real_operator: OperatorProcess
) -> None:
    auth = kubernetes.client.AuthorizationV1Api(real_cluster.client())

    def may(user: str, verb: str, resource: str, group: str = "", namespace: str = "") -> bool:
        review = {
            "spec": {
                "user": user,
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{SYSTEM_NAMESPACE}"],
                "resourceAttributes": {"verb": verb, "resource": resource, "group": group, "namespace": namespace},
            }
        }
        return bool(auth.create_subject_access_review(review).status.allowed)

    operator = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{OPERATOR_SA}"
    agent = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{AGENT_SA}"
    assert may(operator, "create", "ipinstances", "networking.hybridlay.io")
    assert may(operator, "watch", "pods")
    assert not may(operator, "delete", "nodes")
    assert not may(agent, "create", "networks", "networking.hybridlay.io")
    assert real_operator.ready()


def test_a_pod_gets_an_overlay_address_through_the_real_api(real_api: Api, real_namespace: str) -> None:
    real_api.core.create_namespaced_pod(
        real_namespace,
        {"metadata": {"name": "p"}, "spec": {"nodeName": "node3", "containers": [{"name": "c", "image": "x"}]}},
    )
    deadline = time.monotonic() + 15
    while not (held := real_api.instances_of(real_namespace, "p")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [o["spec"]["network"] for o in held.values()] == ["overlay-network"]
