"""The manifests parse, grant exactly what the operator and agent use (no wildcards), and agree with
the code: webhook paths with handler ids, Deployment settings with what the operator reads, the
operator's actual API requests with its RBAC."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from opsupport import eventually

from hybridlay import names
from hybridlay_operator.config import OperatorConfig, parse_stateful_workloads
from hybridlay_operator.controller import Controller
from hybridlay_operator.handlers import build_registry
from hybridlay_operator.kube import Kube

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"


def documents():
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")) + sorted(MANIFESTS.glob("crds/*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def find(kind, name, namespace=None):
    for _, doc in documents():
        meta = doc["metadata"]
        if doc["kind"] == kind and meta["name"] == name and meta.get("namespace") == namespace:
            return doc
    raise AssertionError(f"no {kind} {name} in manifests/")


def test_every_manifest_is_a_named_kubernetes_object():
    docs = documents()
    kinds = {doc["kind"] for _, doc in docs}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "Deployment", "DaemonSet"} <= kinds
    assert {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "Service"} <= kinds
    for filename, doc in docs:
        assert doc.get("apiVersion"), filename
        assert doc["metadata"].get("name"), filename


def test_rbac_has_no_wildcards():
    for filename, doc in documents():
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        for rule in doc["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(field, []), f"{filename}: {doc['metadata']['name']} {field} has *"
                assert all("*" not in value for value in rule.get(field, [])), filename


def allowed(roles, group, resource, verb, name=None):
    for role in roles:
        for rule in role["rules"]:
            names_ok = "resourceNames" not in rule or name in rule["resourceNames"]
            if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"] and names_ok:
                return True
    return False


def test_agent_rbac_is_what_the_agent_needs():
    role = find("ClusterRole", "hybridlay-agent")
    for plural in ("networks", "subnets", "ipinstances", "nodeinfos"):
        for verb in ("get", "list", "watch"):
            assert allowed([role], names.GROUP, plural, verb)
    for verb in ("create", "update", "patch"):
        assert allowed([role], names.GROUP, "nodeinfos", verb)
    assert allowed([role], "", "nodes", "get")
    assert not allowed([role], names.GROUP, "ipinstances", "create")
    assert not allowed([role], "", "nodes", "patch")
    binding = find("ClusterRoleBinding", "hybridlay-agent")
    daemonset = find("DaemonSet", "hybridlay-agent", "hybridlay-system")
    assert binding["subjects"][0]["name"] == daemonset["spec"]["template"]["spec"]["serviceAccountName"]


def test_webhook_paths_are_the_operators_handler_ids():
    registry = build_registry(Controller(Kube.__new__(Kube), OperatorConfig()), webhooks=True)
    ids = {f"/{handler.id}" for handler in registry._webhooks.get_all_handlers()}
    paths = set()
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for hook in find(kind, "hybridlay")["webhooks"]:
            config = hook["clientConfig"]
            assert config["service"] == {
                **config["service"],
                "name": "hybridlay-webhook",
                "namespace": "hybridlay-system",
            }
            assert "caBundle" in config  # filled by the install role
            paths.add(config["service"]["path"])
            policy = "Ignore" if hook["rules"][0]["resources"] == ["pods"] else "Fail"
            assert hook["failurePolicy"] == policy
    assert paths == ids == {"/validate-network", "/validate-subnet", "/validate-pod", "/mutate-pod"}


def test_deployment_settings_are_the_ones_the_operator_reads():
    deployment = find("Deployment", "hybridlay-operator", "hybridlay-system")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    config = OperatorConfig.from_env(env)
    assert config.pod.default_network_type.value == "Overlay"
    assert config.pod.default_ip_family.value == "IPv4"
    assert config.pod.stateful_kinds == ("StatefulSet",)
    assert config.pod.default_ip_retain is True
    assert config.leader_election is True
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"webhook": config.webhook_port, "probes": config.probe_port}
    mount = container["volumeMounts"][0]["mountPath"]
    assert config.webhook_certfile.startswith(mount)
    assert config.webhook_keyfile.startswith(mount)
    service = find("Service", "hybridlay-webhook", "hybridlay-system")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    binding = find("ClusterRoleBinding", "hybridlay-operator")
    assert binding["subjects"][0]["name"] == deployment["spec"]["template"]["spec"]["serviceAccountName"]


def test_containerfile_copies_what_exists_and_runs_the_console_scripts():
    text = (ROOT / "Containerfile").read_text()
    for source in re.findall(r"^COPY (\S+) ", text, flags=re.MULTILINE):
        assert list(ROOT.glob(source)), f"COPY {source}: matches nothing"
    commands = {
        d["spec"]["template"]["spec"]["containers"][0]["command"][0]
        for _, d in documents()
        if d["kind"] in ("Deployment", "DaemonSet")
    }
    assert commands == {"hybridlay-operator", "hybridlay-agent"}


_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def rbac_verb(method, path):
    match = _PATH.match(path)
    assert match, path
    group = "" if match["core"] else match["group"]
    plural, name = match["plural"], match["name"]
    if match["core"] and plural == "namespaces" and match["ns"] and not name:
        plural, name = "namespaces", match["ns"]  # GET /api/v1/namespaces/NAME
    resource = f"{plural}/{match['sub']}" if match["sub"] else plural
    verb = _VERBS.get(method) or ("get" if name else "list")
    return group, resource, verb, name


@pytest.mark.slow
async def test_every_request_the_operator_makes_is_granted(cluster, start_operator):
    """Runs the operator through allocation, retention, status, node labels and the Lease, records
    every request of its own client, and checks each against the ClusterRole and Role."""
    operator = await start_operator(leader_election=True, lease_seconds=3, namespace="hybridlay-system")
    calls = []
    original = operator.kube.request

    async def recording(method, path, *args, **kwargs):
        calls.append((method, path))
        return await original(method, path, *args, **kwargs)

    operator.kube.request = recording
    await eventually(lambda: operator.controller.active, what="lease held")
    owner = ("StatefulSet", "web", cluster.statefulset("web"))
    cluster.create_pod("web-0", annotations={names.ANNOTATION_NETWORK_TYPE: "Underlay"}, owner=owner)
    cluster.create_pod("plain", namespace="default")
    await eventually(lambda: cluster.instances_of("web-0") and cluster.instances_of("plain"))
    cluster.delete_pod("web-0")
    cluster.set_pod_status("web-0", "Running", running=False)
    cluster.delete_pod("plain")
    await eventually(lambda: cluster.pod("web-0") is None and not cluster.instances_of("plain"))
    await operator.controller.collect_orphans()
    await eventually(lambda: any(m == "PUT" for m, _ in calls), timeout=10, what="a lease renewal")

    cluster_role = find("ClusterRole", "hybridlay-operator")
    role = find("Role", "hybridlay-operator", "hybridlay-system")
    used = {rbac_verb(method, path) for method, path in calls}
    resources = {(g, r) for g, r, _, _ in used}
    assert {("", "pods"), ("", "nodes"), (names.GROUP, "ipinstances"), (names.GROUP, "subnets/status")} <= resources
    for group, resource, verb, name in sorted(used, key=str):
        granted = allowed([cluster_role, role], group, resource, verb, name)
        assert granted, f"{verb} {group}/{resource} {name or ''} is used but not granted"
    # And kopf's watches: list and watch of every resource a handler watches.
    for handler in operator.registry._watching.get_all_handlers():
        selector = handler.selector
        for verb in ("list", "watch"):
            assert allowed([cluster_role], selector.group or "", selector.plural, verb), selector


def test_registry_watches_every_configured_stateful_kind():
    workloads = parse_stateful_workloads(
        "StatefulSet,StatefulSet.apps.kruise.io/v1beta1/statefulsets,CloneSet.apps.kruise.io/v1alpha1/clonesets"
    )
    registry = build_registry(Controller(Kube.__new__(Kube), OperatorConfig(stateful_workloads=workloads)), False)
    handlers = registry._watching.get_all_handlers()
    watched = {(h.selector.group, h.selector.version, h.selector.plural) for h in handlers}
    assert {
        ("apps", "v1", "statefulsets"),
        ("apps.kruise.io", "v1beta1", "statefulsets"),
        ("apps.kruise.io", "v1alpha1", "clonesets"),
    } <= watched
    assert len({h.id for h in handlers}) == len(handlers)


def test_rbac_comment_shows_the_rule_another_stateful_kind_needs():
    """The ClusterRole grants apps/v1 StatefulSets only; its comment shows the rule to add for another kind."""
    lines = (MANIFESTS / "10-operator-rbac.yaml").read_text().splitlines()
    start = next(
        i for i, line in enumerate(lines) if "STATEFUL_WORKLOAD_KINDS" in line and line.strip().startswith("#")
    )
    example = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith("add:"))
    block = []
    for line in lines[example + 1 :]:
        if not line.startswith("  #   "):
            break
        block.append(line.removeprefix("  #   "))
    [rule] = yaml.safe_load("\n".join(block))
    entry = re.search(r"entry ([A-Z]\S*/\S+)", " ".join(lines[start : example + 1]))
    [workload] = parse_stateful_workloads(entry[1])
    role = find("ClusterRole", "hybridlay-operator")
    for verb in ("get", "list", "watch"):
        assert not allowed([role], workload.group, workload.plural, verb)
        assert allowed([{"rules": [rule]}], workload.group, workload.plural, verb)
    assert all("*" not in value for field in rule.values() for value in field)
