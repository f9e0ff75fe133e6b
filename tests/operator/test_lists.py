"""How the operator reads large lists: streamed item by item, the IPInstances' Table at start, and
the objects themselves as the core would.

Pure: no API. The real server's answers to these requests are exercised by tests/api (every
operator start reads the Table, every informer the streamed lists) and by bench/operator_burst.py.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from hybridlay import model
from hybridlay.errors import InvalidValue
from hybridlay.ipam import Allocation
from hybridlay.model import IPInstance, ReferredObject
from hybridlay_operator import cache, decisions
from hybridlay_operator.kube import ListParser

ANSWER = {
    "apiVersion": "v1",
    "kind": "PodList",
    "metadata": {"resourceVersion": "4711", "continue": ""},
    "items": [{"metadata": {"name": f"p{i}", "note": 'a "quoted" ] } é \\u00e9'}, "n": i} for i in range(300)],
}


@pytest.mark.parametrize("indent", [None, 1])
def test_a_list_answer_is_read_item_by_item_whatever_its_chunks(indent):
    text = json.dumps(ANSWER, indent=indent, ensure_ascii=indent is None)
    rng = random.Random(7)
    for _ in range(20):
        items = []
        parser = ListParser(items.append)
        position = 0
        while position < len(text):
            size = rng.randint(1, 400)
            parser.feed(text[position : position + size])
            position += size
        parser.feed("", final=True)
        assert items == ANSWER["items"]
        assert parser.resource_version == "4711"


def test_an_empty_or_cut_list_answer():
    items = []
    parser = ListParser(items.append)
    parser.feed('{"items": null, "metadata": {"resourceVersion": "5"}}', final=True)
    assert (items, parser.resource_version) == ([], "5")
    with pytest.raises(ValueError, match="ended early"):
        ListParser(items.append).feed('{"items": [{"a": 1}', final=True)


def table(columns, *rows):
    return {"kind": "Table", "columnDefinitions": [{"name": c} for c in columns], "rows": [{"cells": r} for r in rows]}


def test_a_table_row_gives_what_the_core_would_make_of_those_fields():
    answer = table(cache.ROW_COLUMNS, ["10-0-0-5", "10.0.0.5/24", "10.0.0.1", "p", "ns", "node1", "s", "n"])
    read = cache.table_columns(answer)
    instance = cache.instance_from_row(answer["rows"][0]["cells"], read)
    assert instance == IPInstance(
        name="10-0-0-5",
        network="n",
        subnet="s",
        address=instance.address.__class__(version="4", ip="10.0.0.5/24", gateway="10.0.0.1"),
        binding=instance.binding.__class__(pod_name="p", pod_namespace="ns", node_name="node1"),
        labels={},
    )
    assert instance.owner_key == "ns/p"
    # Both ways of making it agree (the quick one is used only then).
    assert cache._quick_is_exact()


def test_a_table_without_optional_columns_or_with_missing_cells():
    columns = [c for c in cache.ROW_COLUMNS if c not in ("Gateway", "Node")]
    answer = table(columns, ["fd00-0-0-0-0-0-0-5", "fd00::5/64", "p", "ns", "s6", "n"])
    instance = cache.instance_from_row(answer["rows"][0]["cells"], cache.table_columns(answer))
    assert (instance.address.version, instance.address.gateway, instance.binding.node_name) == ("6", None, None)
    with pytest.raises(InvalidValue):
        cache.instance_from_row([None, None, "p", "ns", "s", "n"], cache.table_columns(answer))
    with pytest.raises(InvalidValue):
        cache.instance_from_row(["x"], cache.table_columns(answer))
    assert cache.table_columns(table(["Name", "IP"])) is None  # printer columns not ours: read the objects


def test_an_ipinstance_the_operator_writes_reads_back_as_the_core_reads_it():
    """The quick reading of full objects (lists of 100,000) agrees with the core's conversion."""
    claim = Allocation(
        network="n", subnet="s", version=4, address="10.0.0.5", prefix_length=24, gateway="10.0.0.1", net_id=7
    )
    owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "su", "controller": True}
    pod = {"metadata": {"name": "web-0", "namespace": "ns", "uid": "pu", "ownerReferences": [owner]}, "spec": {}}
    referred = ReferredObject(kind="StatefulSet", name="web", uid="su")
    for index in (None, 0):
        body = decisions.build_ipinstance(claim, pod, referred, "02:12:34:00:00:01", index, namespace_uid="nu")
        body["metadata"].update(uid="u", resourceVersion="1", managedFields=[{"manager": "m"}])
        expected = dataclasses.replace(model.ipinstance_from_resource(body), labels={})
        assert cache.parse_instance(body) == expected
    assert cache._QUICK_OBJECTS
    odd = {"metadata": {"name": "10-0-0-5"}, "spec": {"address": {"netID": True}}}
    with pytest.raises(InvalidValue, match="integer"):
        cache.parse_instance(odd)  # not the quick reading's to judge: the core refuses it
