"""hybridlay_lab.matrix's pure parts: which cells must answer, the ping scripts, the tables."""

from __future__ import annotations

from hybridlay_lab.matrix import Cell, Endpoint, expected, parse_pings, ping_script, render

OVERLAY = Endpoint("overlay@node1", "overlay", ("172.24.0.4", "fd00:24::4"), pod="overlay-abc")
UNDERLAY = Endpoint("underlay-rack1@node2", "underlay", ("192.168.20.104",), pod="underlay-xyz")
NODE = Endpoint("node1", "node", ("10.10.1.11",), container="lab-node1")
EXTERNAL = Endpoint("external", "external", ("198.18.100.10",), container="lab-external")
ALL = [OVERLAY, UNDERLAY, NODE, EXTERNAL]


def test_only_the_external_host_to_overlay_pods_is_not_expected():
    assert not expected(EXTERNAL, OVERLAY)
    assert expected(EXTERNAL, UNDERLAY) and expected(OVERLAY, EXTERNAL) and expected(NODE, OVERLAY)


def test_ping_script_pings_each_family_both_ends_have():
    script = ping_script(OVERLAY, ALL)
    assert "ping -n -q -c 2 -i 0.2 -W 2 192.168.20.104" in script
    assert "fd00:24::4" not in script  # itself
    assert "ping -6" not in script  # no other end has IPv6
    assert script.rstrip().endswith("wait")
    other = Endpoint("overlay@node2", "overlay", ("172.24.0.5", "fd00:24::5"), pod="o2")
    assert "ping -6 -n -q -c 2 -i 0.2 -W 2 fd00:24::5" in ping_script(OVERLAY, [OVERLAY, other])


def test_parse_pings_busybox_and_iputils_lines():
    output = "overlay@node1 node1 4 0.123\nexternal overlay@node1 4 x\nnoise line\noverlay@node1 ghost 4 1\n"
    cells = parse_pings(output, ALL)
    assert cells == [
        Cell("overlay@node1", "node1", 4, True, 0.123),
        Cell("external", "overlay@node1", 4, False, None),
    ]


def test_render_numbers_the_columns_and_marks_cells():
    cells = [
        Cell("overlay@node1", "node1", 4, True, 0.5),
        Cell("node1", "overlay@node1", 4, True, None),
        Cell("external", "overlay@node1", 4, False, None),
    ]
    table = render(ALL, cells, 4).splitlines()
    assert table[0].startswith("IPv4 from \\ to") and table[0].split()[-4:] == ["1", "2", "3", "4"]
    assert table[1].startswith(" 1 overlay@node1 172.24.0.4") and "✓ 0.50" in table[1]
    assert table[3].startswith(" 3 node1 10.10.1.11") and "✗" in table[3]
    assert table[4].startswith(" 4 external") and table[4].split()[3] == "-"
    six = render(ALL, [], 6).splitlines()
    assert len(six) == 2 and "fd00:24::4" in six[1]  # only endpoints with an IPv6 address
