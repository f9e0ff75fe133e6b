# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters deriving what the roles apply from the network plan (see docs/network-plan.md)."""

from __future__ import annotations

from ansible_collections.hybridlay.fabric.plugins.plugin_utils import plan

_WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")


def with_ca_bundle(documents, ca_bundle, configurations):
    """Manifest documents with the CA (base64 PEM, as a Secret's data holds it) in ``clientConfig.caBundle``
    of every webhook of the named webhook configurations; other documents unchanged."""
    result = []
    for doc in filter(None, documents):
        if doc.get("kind") in _WEBHOOK_KINDS and doc.get("metadata", {}).get("name") in configurations:
            webhooks = doc.get("webhooks", [])
            result.append(dict(doc, webhooks=[_with_ca(w, ca_bundle) for w in webhooks]))
        else:
            result.append(doc)
    return result


def _with_ca(webhook, ca_bundle):
    return dict(webhook, clientConfig=dict(webhook.get("clientConfig", {}), caBundle=ca_bundle))


# What runs the operator and the agent in the cluster: in systemd mode they are host services instead.
_WORKLOAD_KINDS = ("Deployment", "DaemonSet", "Service")


def for_install_mode(documents, mode, webhooks=True):
    """The manifest documents the install mode applies: all of them in ``kubernetes`` mode; in
    ``systemd`` mode everything but the operator's and agent's workloads (RBAC and namespace stay),
    and the webhook configurations only with ``webhooks`` (a webhook nobody serves would refuse
    every Network and Subnet change)."""
    if mode not in ("kubernetes", "systemd"):
        raise ValueError(f"install_mode {mode!r}: must be kubernetes or systemd")
    kept = [doc for doc in documents if doc]
    if mode == "kubernetes":
        return kept
    dropped = _WORKLOAD_KINDS + (() if webhooks else _WEBHOOK_KINDS)
    return [doc for doc in kept if doc.get("kind") not in dropped]


def with_webhook_url(documents, base_url):
    """Webhook configurations calling ``base_url`` + the service's path instead of the in-cluster
    service (the operator as a host service); unchanged when ``base_url`` is empty."""
    if not base_url:
        return documents

    def by_url(webhook):
        client = dict(webhook.get("clientConfig", {}))
        service = client.pop("service", {})
        return dict(webhook, clientConfig=dict(client, url=base_url.rstrip("/") + service.get("path", "/")))

    return [
        dict(doc, webhooks=[by_url(w) for w in doc.get("webhooks", [])]) if doc.get("kind") in _WEBHOOK_KINDS else doc
        for doc in documents
    ]


def manifest_env(documents, kind):
    """The literal environment (``name: value`` entries) of the first container of the first
    ``kind`` object: the settings a host service of that workload gets, kept in the manifests only."""
    for doc in filter(None, documents):
        if doc.get("kind") == kind:
            container = doc["spec"]["template"]["spec"]["containers"][0]
            return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    raise ValueError(f"no {kind} in the manifests")


_AGENT_PARENT_SETTINGS = {
    "vxlan_parent": "HYBRIDLAY_VXLAN_PARENT",
    "vlan_parent": "HYBRIDLAY_VLAN_PARENT",
    "bgp_parent": "HYBRIDLAY_BGP_PARENT",
}


def agent_host_env(node_settings, node_name, namespace):
    """What the DaemonSet's downward API and per-node settings give the agent, for a host service:
    the node's name, the namespace of BGP peer Secrets, and the parents of ``hybridlay_node``."""
    env = {"NODE_NAME": node_name, "POD_NAMESPACE": namespace}
    env.update({var: node_settings[key] for key, var in _AGENT_PARENT_SETTINGS.items() if key in node_settings})
    return env


def pod_of(binding):
    """``namespace/name`` of the pod an IPInstance's binding names."""
    return f"{binding.get('podNamespace', '')}/{binding.get('podName', '')}"


def named(name, kind):
    return {"kind": kind, "name": name}


class FilterModule:
    def filters(self):
        return {
            "bgp_secrets": plan.bgp_secrets,
            "network_module_args": plan.network_module_args,
            "node_vlan_interfaces": plan.node_vlan_interfaces,
            "node_network_labels": plan.node_network_labels,
            "node_label_patch": plan.node_label_patch,
            "switch_routes": plan.switch_routes,
            "static_routes_config": plan.static_routes_config,
            "with_ca_bundle": with_ca_bundle,
            "for_install_mode": for_install_mode,
            "with_webhook_url": with_webhook_url,
            "manifest_env": manifest_env,
            "agent_host_env": agent_host_env,
            "pod_of": pod_of,
            "named": named,
        }
