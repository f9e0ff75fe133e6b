"""Address parsing names the field and value; IPInstance names are unique, reversible DNS labels."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridlay.addresses import (
    address_from_instance_name,
    instance_name,
    label_value,
    parse_cidr,
    parse_ip,
    parse_mac,
)
from hybridlay.errors import InvalidValue

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("10.0.0.5", "10-0-0-5"),
        ("fd00::5", "fd00-0-0-0-0-0-0-5"),
        ("::1", "0-0-0-0-0-0-0-1"),
        ("2001:db8:0:0:1::", "2001-db8-0-0-1-0-0-0"),
    ],
)
def test_instance_name(address, name):
    assert instance_name(address) == name
    assert address_from_instance_name(name) == ipaddress.ip_address(address)


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_instance_name_is_a_reversible_dns_label(address):
    name = instance_name(address)
    assert DNS_LABEL.match(name)
    assert address_from_instance_name(name) == address


@pytest.mark.parametrize(
    ("value", "version", "reason"),
    [
        ("10.0.0.256", None, "is not a valid IP address"),
        ("fd00::1", 4, "is not an IPv4 address"),
        (5, None, "is not an IP address string"),
    ],
)
def test_parse_ip_errors_name_field_and_value(value, version, reason):
    with pytest.raises(InvalidValue) as caught:
        parse_ip(value, "spec.range.gateway", version)
    assert str(caught.value) == f"spec.range.gateway {value} {reason}".replace(f"{value} ", f"{value}: ", 1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10.0.0.0", "is not a CIDR"),
        ("10.0.0.0/33", "is not a valid CIDR"),
        ("10.0.0.1/24", "has host bits set (canonical form is 10.0.0.0/24)"),
    ],
)
def test_parse_cidr_errors(value, reason):
    with pytest.raises(InvalidValue, match=re.escape(reason)):
        parse_cidr(value, "spec.range.cidr")
    assert str(parse_cidr("fd00::/120", "x")) == "fd00::/120"


def test_parse_mac():
    assert parse_mac("02:12:34:AB:cd:00", "mac") == "02:12:34:ab:cd:00"
    with pytest.raises(InvalidValue, match="mac-pool 02:12:34:ab:cd"):
        parse_mac("02:12:34:ab:cd", "mac-pool")


def test_label_value_hashes_long_pod_names():
    assert label_value("web-0") == "web-0"
    long_name = "a" * 64
    hashed = label_value(long_name)
    assert len(hashed) <= 63
    assert hashed != label_value("a" * 65)
    assert DNS_LABEL.match(hashed)


@pytest.mark.parametrize("value", ["fd00:20::1%eth0", "fe80::1%2"])
def test_an_address_with_a_zone_index_is_refused(value):
    """Python's parser takes ``%zone``; it names one host's link, never a cluster-wide address (issue 16, 11)."""
    with pytest.raises(InvalidValue, match=r"spec.range.gateway .* has a zone index"):
        parse_ip(value, "spec.range.gateway")


def test_a_cidr_with_a_zone_index_is_refused():
    with pytest.raises(InvalidValue, match="has a zone index"):
        parse_cidr("fd00:20::%eth0/64", "spec.range.cidr")
