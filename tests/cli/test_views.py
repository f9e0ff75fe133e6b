"""The CLI's tables and records, without an API."""

from __future__ import annotations

from dataclasses import replace

from hybridlay.ipam import Allocation
from hybridlay.model import (
    AddressRange,
    Binding,
    InstanceAddress,
    IPInstance,
    ReferredObject,
    Subnet,
    ipinstance_from_resource,
)
from hybridlay.pod_request import PodSettings, parse_pod_request
from hybridlay_cli import views
from hybridlay_operator import decisions


def instance(ip):
    return IPInstance(
        name=ip.split("/")[0].replace(".", "-"),
        network="n",
        subnet="s",
        address=InstanceAddress(version="4", ip=ip),
        binding=Binding(pod_name="p", pod_namespace="ns", pod_uid="u1", node_name="node1"),
    )


def test_render_table_aligns_columns_and_marks_empty_cells():
    columns = (views.Column("A", lambda r: r["a"]), views.Column("LONG-HEADER", lambda r: r["b"]))
    assert views.render_table(columns, [{"a": "xxxxx", "b": None}, {"a": "y", "b": True}]) == (
        "A       LONG-HEADER\nxxxxx   -\ny       yes"
    )


def test_instances_sort_by_address_value_not_text():
    found = views.select_instances([instance("10.0.0.10/24"), instance("10.0.0.9/24"), instance("10.0.0.100/24")])
    assert [i.address.ip for i in found] == ["10.0.0.9/24", "10.0.0.10/24", "10.0.0.100/24"]


def operator_instance(name, owner_kind):
    """The IPInstance the operator creates for pod ``name`` controlled by an ``owner_kind`` ``web``."""
    pod = {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "ownerReferences": [{"kind": owner_kind, "name": "web", "uid": "uid-web", "controller": True}],
        },
        "spec": {"nodeName": "node1"},
    }
    request, violations = parse_pod_request(pod, None, PodSettings())
    assert request is not None, violations
    # As the controller refers the claim: to the stateful workload when retained, else to the pod.
    if request.stateful is not None and request.retain:
        s = request.stateful
        referred, index = ReferredObject(s.kind, s.name, s.uid), s.ordinal
    else:
        referred, index = ReferredObject("Pod", name, f"uid-{name}"), None
    claim = Allocation("overlay", "overlay-v4", 4, "100.10.0.5", 16, None, 4)
    return ipinstance_from_resource(decisions.build_ipinstance(claim, pod, referred, "02:12:34:00:00:01", index))


def retained_column(instances):
    table = views.render_table(views.IPINSTANCE_COLUMNS, [views.ipinstance_record(i) for i in instances])
    return [line.split()[-1] for line in table.splitlines()]


def test_statefulset_pod_address_is_retained_bound_or_not():
    bound = operator_instance("web-0", "StatefulSet")
    # What the operator's reserve_patch leaves once the pod is gone.
    unbound = replace(bound, binding=replace(bound.binding, pod_uid=None, node_name=None))
    assert retained_column([bound]) == ["RETAINED", "yes"]
    assert retained_column([unbound]) == ["RETAINED", "yes"]
    assert views.ipinstance_record(bound)["retained"] is True


def test_address_of_a_pod_of_another_workload_is_not_retained():
    assert retained_column([operator_instance("web-5d8f7-x2x9q", "ReplicaSet")]) == ["RETAINED", "no"]


def test_subnet_with_a_refused_range_keeps_its_row():
    bad = Subnet(name="bad", network="n", range=AddressRange(version="4", cidr="10.0.0.0/24", start="10.0.1.5"))
    record = views.subnet_record(bad, views.computed_usage([], [bad], []))
    assert record["range"] == "10.0.1.5--"
    assert record["note"] == "no status yet, and its range is refused: see the operator's events"


def test_the_range_shown_is_what_the_total_counts():
    """Issue 16: RANGE counted the gateway while TOTAL did not."""
    ranged = AddressRange(version="4", cidr="192.168.56.0/24", gateway="192.168.56.1", exclude_ips=("192.168.56.254",))
    subnet = Subnet(name="s", network="n", range=ranged)
    record = views.subnet_record(subnet, views.computed_usage([], [subnet], []))
    assert record["range"] == "192.168.56.2-192.168.56.253"
    assert record["total"] == 252
