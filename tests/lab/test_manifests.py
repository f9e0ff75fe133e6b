"""The manifests the lab installs (kubernetes mode), checked as documents: what the lab proves by
running them (tests/lab_e2e) should not regress unnoticed in a fast test either."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def workload(name: str, kind: str) -> dict:
    return next(d for d in documents(name) if d["kind"] == kind)


def test_operator_reads_its_tls_key_as_its_own_user():
    """Issue 16 #5: the key's Secret volume is 0400, root-owned, unless the pod gives it a group:
    fsGroup is the operator's group, so uid 65532 reads it (the lab's operator pods serve the webhooks)."""
    pod = workload("20-operator.yaml", "Deployment")["spec"]["template"]["spec"]
    security = pod["securityContext"]
    assert security["runAsUser"] == 65532 and security["fsGroup"] == security["runAsGroup"] == 65532
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["defaultMode"] & 0o400


def test_agent_installs_the_cni_plugin_from_its_image():
    pod = workload("50-agent.yaml", "DaemonSet")["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["command"][:3] == ["python", "-m", "hybridlay_agent.cni_install"]
    assert init["image"] == pod["containers"][0]["image"]
    assert init["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounted = {m["mountPath"] for m in init["volumeMounts"]}
    assert mounted == {"/host/opt/hybridlay/cni", "/host/opt/cni/bin", "/host/etc/cni/net.d"}
    paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    for mount in init["volumeMounts"]:
        assert mount["mountPath"] == "/host" + paths[mount["name"]]


def test_agent_rbac_names_every_verb_and_resource():
    for document in documents("40-agent-rbac.yaml"):
        for rule in document.get("rules", []):
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (document["metadata"]["name"], rule)
