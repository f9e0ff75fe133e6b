"""The CLI's tables and records, without an API."""

from __future__ import annotations

from hybridlay.model import AddressRange, Binding, InstanceAddress, IPInstance, ReferredObject, Subnet
from hybridlay_cli import views


def instance(ip, *, pod_uid="u1", node="node1", terminating=False):
    return IPInstance(
        name=ip.split("/")[0].replace(".", "-"),
        network="n",
        subnet="s",
        address=InstanceAddress(version="4", ip=ip),
        binding=Binding(
            pod_name="p",
            pod_namespace="ns",
            pod_uid=pod_uid,
            node_name=node,
            referred_object=ReferredObject("StatefulSet", "p", "x"),
            stateful_index=0,
        ),
        terminating=terminating,
    )


def test_render_table_aligns_columns_and_marks_empty_cells():
    columns = (views.Column("A", lambda r: r["a"]), views.Column("LONG-HEADER", lambda r: r["b"]))
    assert views.render_table(columns, [{"a": "xxxxx", "b": None}, {"a": "y", "b": True}]) == (
        "A       LONG-HEADER\nxxxxx   -\ny       yes"
    )


def test_instances_sort_by_address_value_not_text():
    found = views.select_instances([instance("10.0.0.10/24"), instance("10.0.0.9/24"), instance("10.0.0.100/24")])
    assert [i.address.ip for i in found] == ["10.0.0.9/24", "10.0.0.10/24", "10.0.0.100/24"]


def test_retained_means_no_pod_bound_and_not_being_deleted():
    assert views.is_retained(instance("10.0.0.1/24", pod_uid=None, node=None))
    assert not views.is_retained(instance("10.0.0.1/24"))
    assert not views.is_retained(instance("10.0.0.1/24", pod_uid=None, terminating=True))


def test_subnet_with_a_refused_range_keeps_its_row():
    bad = Subnet(name="bad", network="n", range=AddressRange(version="4", cidr="10.0.0.0/24", start="10.0.1.5"))
    record = views.subnet_record(bad, views.computed_usage([], [bad], []))
    assert record["range"] == "10.0.1.5--"
    assert record["note"] == "no status yet, and its range is refused: see the operator's events"
