"""Filters the install and seed roles use that are not covered through the plan tests."""

from __future__ import annotations

from ansible_collections.hybridlay.fabric.plugins.filter import plan as filters


def test_ca_bundle_goes_into_the_named_webhook_configurations_only():
    docs = [
        {"kind": "ValidatingWebhookConfiguration", "metadata": {"name": "hybridlay"},
         "webhooks": [{"name": "a", "clientConfig": {"service": {"name": "s"}, "caBundle": ""}}, {"name": "b"}]},
        {"kind": "MutatingWebhookConfiguration", "metadata": {"name": "other"}, "webhooks": [{"name": "c"}]},
        None,
        {"kind": "Deployment", "metadata": {"name": "hybridlay"}},
    ]
    out = filters.with_ca_bundle(docs, "Q0E=", ["hybridlay"])
    assert out[0]["webhooks"] == [
        {"name": "a", "clientConfig": {"service": {"name": "s"}, "caBundle": "Q0E="}},
        {"name": "b", "clientConfig": {"caBundle": "Q0E="}},
    ]
    assert out[1] == docs[1] and out[2] == docs[3] and len(out) == 3
    assert docs[0]["webhooks"][0]["clientConfig"]["caBundle"] == ""  # input left as it was


def test_small_helpers():
    assert filters.pod_of({"podName": "web-0", "podNamespace": "shop"}) == "shop/web-0"
    assert filters.label_removal({"a": "true", "b": "x"}) == {"a": None, "b": None}
    assert filters.named("vlan20", "Subnet") == {"kind": "Subnet", "name": "vlan20"}
