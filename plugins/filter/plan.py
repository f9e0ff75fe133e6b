# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters deriving what the roles apply from the network plan (see docs/network-plan.md)."""

from __future__ import annotations

from ansible_collections.hybridlay.fabric.plugins.plugin_utils import plan


def with_ca_bundle(documents, ca_bundle, configurations):
    """Manifest documents with the CA (base64 PEM, as a Secret's data holds it) in ``clientConfig.caBundle``
    of every webhook of the named webhook configurations; other documents unchanged."""
    kinds = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    result = []
    for doc in filter(None, documents):
        if doc.get("kind") in kinds and doc.get("metadata", {}).get("name") in configurations:
            webhooks = doc.get("webhooks", [])
            result.append(dict(doc, webhooks=[_with_ca(w, ca_bundle) for w in webhooks]))
        else:
            result.append(doc)
    return result


def _with_ca(webhook, ca_bundle):
    return dict(webhook, clientConfig=dict(webhook.get("clientConfig", {}), caBundle=ca_bundle))


def pod_of(binding):
    """``namespace/name`` of the pod an IPInstance's binding names."""
    return f"{binding.get('podNamespace', '')}/{binding.get('podName', '')}"


def named(name, kind):
    return {"kind": kind, "name": name}


def label_removal(labels):
    """Labels as a patch that removes them (a null value deletes a key)."""
    return dict.fromkeys(labels)


class FilterModule:
    def filters(self):
        return {
            "bgp_secrets": plan.bgp_secrets,
            "network_module_args": plan.network_module_args,
            "node_vlan_interfaces": plan.node_vlan_interfaces,
            "node_network_labels": plan.node_network_labels,
            "switch_routes": plan.switch_routes,
            "static_routes_config": plan.static_routes_config,
            "with_ca_bundle": with_ca_bundle,
            "pod_of": pod_of,
            "named": named,
            "label_removal": label_removal,
        }
