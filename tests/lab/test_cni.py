"""Configuration-list chaining as libcni does it (CNI spec 1.x), with a recording runner.

These check the caller's side in isolation (what each plugin is given, in which order, and what its
answer means); test_kubelet.py runs the same code against the real reference plugins.
"""

from __future__ import annotations

import json

import pytest

from hybridlay_lab import cni

ATTACHMENT = cni.Attachment("c0ffee", "/var/run/netns/x", "eth0", (("K8S_POD_NAMESPACE", "ns"), ("K8S_POD_NAME", "p")))
CONFLIST = json.dumps(
    {
        "cniVersion": "1.0.0",
        "name": "net",
        "plugins": [
            {"type": "first", "ipam": {"type": "host-local"}},
            {"type": "second", "capabilities": {"bandwidth": True}},
            {"type": "third"},
        ],
    }
)


class Recorder:
    """Answers like plugins that add their own name to the interfaces of the result they were given."""

    def __init__(self, fail=None, error=None):
        self.calls = []
        self.fail = fail
        self.error = error

    def __call__(self, plugin, env, stdin):
        config = json.loads(stdin)
        self.calls.append((plugin, dict(env), config))
        if plugin == self.fail:
            return 1, json.dumps(self.error).encode() if self.error else b"", b"panic: oops"
        if env["CNI_COMMAND"] != "ADD":
            return 0, b"", b""
        previous = config.get("prevResult", {"cniVersion": "1.0.0", "interfaces": [], "ips": []})
        result = {**previous, "interfaces": [*previous["interfaces"], {"name": plugin}]}
        if plugin == "first":
            result["ips"] = [{"address": "10.0.0.5/24", "interface": 0}, {"address": "fd00::5/64", "interface": 0}]
        return 0, json.dumps(result).encode(), b""


def test_add_chains_each_result_into_the_next_plugin():
    network = cni.parse_network_list(CONFLIST, "10-net.conflist")
    run = Recorder()

    result = cni.add(run, network, ATTACHMENT, "/usr/lib/cni")

    assert [plugin for plugin, _, _ in run.calls] == ["first", "second", "third"]
    configs = [config for _, _, config in run.calls]
    assert "prevResult" not in configs[0]
    assert [i["name"] for i in configs[1]["prevResult"]["interfaces"]] == ["first"]
    assert [i["name"] for i in configs[2]["prevResult"]["interfaces"]] == ["first", "second"]
    assert all((c["name"], c["cniVersion"]) == ("net", "1.0.0") for c in configs)
    assert configs[0]["ipam"] == {"type": "host-local"}
    assert configs[1]["capabilities"] == {"bandwidth": True}  # passed on as written, as libcni does
    assert [i["name"] for i in result["interfaces"]] == ["first", "second", "third"]
    assert cni.result_ips(result) == ["10.0.0.5", "fd00::5"]


def test_every_plugin_gets_the_runtime_environment():
    run = Recorder()
    cni.add(run, cni.parse_network_list(CONFLIST, "f"), ATTACHMENT, "/opt/cni/bin:/usr/lib/cni")
    assert run.calls[0][1] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c0ffee",
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
        "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
    }


def test_del_runs_in_reverse_with_the_cached_result():
    network = cni.parse_network_list(CONFLIST, "f")
    cached = {"cniVersion": "1.0.0", "interfaces": [{"name": "first"}], "ips": []}
    run = Recorder()

    cni.delete(run, network, ATTACHMENT, "/usr/lib/cni", cached)

    assert [plugin for plugin, _, _ in run.calls] == ["third", "second", "first"]
    assert all(env["CNI_COMMAND"] == "DEL" for _, env, _ in run.calls)
    assert all(config["prevResult"] == cached for _, _, config in run.calls)


def test_del_without_a_cached_result_sends_no_prev_result():
    run = Recorder()
    cni.delete(run, cni.parse_network_list(CONFLIST, "f"), ATTACHMENT, "/usr/lib/cni", None)
    assert all("prevResult" not in config for _, _, config in run.calls)


def test_a_failing_plugin_stops_add_with_its_error():
    run = Recorder(fail="second", error={"cniVersion": "1.0.0", "code": 11, "msg": "try again", "details": "busy"})
    with pytest.raises(cni.CNIError) as caught:
        cni.add(run, cni.parse_network_list(CONFLIST, "f"), ATTACHMENT, "/usr/lib/cni")
    assert [plugin for plugin, _, _ in run.calls] == ["first", "second"]
    assert (caught.value.code, caught.value.msg, caught.value.details) == (11, "try again", "busy")
    assert str(caught.value) == "plugin type='second' failed (add): try again: busy"


def test_a_failing_plugin_stops_del_as_in_libcni():
    run = Recorder(fail="second")
    with pytest.raises(cni.CNIError, match=r"plugin type='second' failed \(del\): exit code 1: panic: oops"):
        cni.delete(run, cni.parse_network_list(CONFLIST, "f"), ATTACHMENT, "/usr/lib/cni", None)
    assert [plugin for plugin, _, _ in run.calls] == ["third", "second"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (b"not json", "result is not JSON: 'not json'"),
        (b"[1]", "result is not a JSON object: '[1]'"),
    ],
)
def test_an_unreadable_add_result_is_an_error(output, message):
    with pytest.raises(cni.CNIError) as caught:
        cni.parse_output("p", "ADD", 0, output, b"")
    assert caught.value.msg == message


def test_a_single_plugin_conf_is_a_list_of_one():
    network = cni.parse_network_list('{"cniVersion": "0.4.0", "name": "n", "type": "bridge"}', "f.conf")
    assert [p["type"] for p in network.plugins] == ["bridge"]


def test_cni_versions_picks_the_highest_supported():
    text = json.dumps(
        {"cniVersion": "0.4.0", "cniVersions": ["0.4.0", "1.0.0", "1.1.0"], "name": "n", "plugins": [{"type": "x"}]}
    )
    assert cni.parse_network_list(text, "f").cni_version == "1.0.0"


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ("{", "f: not JSON"),
        ('{"name": "n", "plugins": [{"type": "x"}]}', "f: cniVersion None: must be a version string"),
        ('{"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}', "f: name None: must be a non-empty string"),
        ('{"cniVersion": "1.0.0", "name": "n", "plugins": []}', "f: plugins: must be a non-empty list"),
        ('{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": ""}]}', "f: plugins[0].type: must be"),
        ('{"cniVersions": ["2.0.0"], "name": "n", "plugins": [{"type": "x"}]}', "f: cniVersions ['2.0.0']: none"),
    ],
)
def test_bad_configuration_names_the_field(conf, message):
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        cni.parse_network_list(conf, "f")
