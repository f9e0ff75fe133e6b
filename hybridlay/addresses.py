"""Parsing and naming of addresses: the one place strings become ``ipaddress`` objects."""

from __future__ import annotations

import hashlib
import ipaddress
import re

from hybridlay.errors import InvalidValue

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
LABEL_VALUE_MAX = 63


def _no_zone(value: str, field: str) -> None:
    """Python takes an IPv6 zone (``fe80::1%eth0``) as part of an address; it names one host's link,
    never a cluster-wide address, and the API server's schemas refuse it."""
    if "%" in value:
        raise InvalidValue(field, value, "has a zone index (%...): give the address without it")


def parse_ip(value: object, field: str, version: int | None = None) -> IPAddress:
    """Parse a bare address; ``version`` (4 or 6) also checks the family."""
    if not isinstance(value, str):
        raise InvalidValue(field, value, "is not an IP address string")
    _no_zone(value, field)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidValue(field, value, "is not a valid IP address") from None
    if version is not None and address.version != version:
        raise InvalidValue(field, value, f"is not an IPv{version} address")
    return address


def parse_cidr(value: object, field: str, version: int | None = None) -> IPNetwork:
    """Parse a canonical CIDR (host bits zero); ``version`` (4 or 6) also checks the family."""
    if not isinstance(value, str) or "/" not in value:
        raise InvalidValue(field, value, "is not a CIDR (address/prefix)")
    _no_zone(value, field)
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidValue(field, value, "is not a valid CIDR") from None
    if network.network_address != ipaddress.ip_interface(value).ip:
        raise InvalidValue(field, value, f"has host bits set (canonical form is {network})")
    if version is not None and network.version != version:
        raise InvalidValue(field, value, f"is not an IPv{version} CIDR")
    return network


def parse_interface(value: object, field: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """Parse an address with prefix length, as IPInstance ``spec.address.ip`` holds it."""
    if not isinstance(value, str) or "/" not in value:
        raise InvalidValue(field, value, "is not an address with prefix length")
    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        raise InvalidValue(field, value, "is not a valid address with prefix length") from None


def parse_mac(value: object, field: str) -> str:
    """Return the MAC in lower case, or raise naming the field."""
    if not isinstance(value, str) or not _MAC.match(value):
        raise InvalidValue(field, value, "is not a MAC address (six colon-separated hex octets)")
    return value.lower()


def instance_name(address: IPAddress | str) -> str:
    """IPInstance name of an address: dots or colons become dashes, IPv6 expanded to 8 groups.

    ``10.0.0.5`` → ``10-0-0-5``; ``fd00::5`` → ``fd00-0-0-0-0-0-0-5`` (every group present and
    without leading zeros, so the name is unique per address and a valid DNS label).
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if ip.version == 4:
        return str(ip).replace(".", "-")
    packed = ip.packed
    return "-".join(format(int.from_bytes(packed[i : i + 2], "big"), "x") for i in range(0, 16, 2))


def address_from_instance_name(name: str) -> IPAddress:
    """Inverse of :func:`instance_name`."""
    parts = name.split("-")
    try:
        if len(parts) == 4:
            return ipaddress.IPv4Address(".".join(parts))
        if len(parts) == 8:
            return ipaddress.IPv6Address(":".join(parts))
    except ValueError:
        pass
    raise InvalidValue("metadata.name", name, "is not an IPInstance name (an address with dashes)")


def label_value(value: str) -> str:
    """A label-safe value: values over 63 characters are replaced by their SHA-224 hex digest."""
    if len(value) <= LABEL_VALUE_MAX:
        return value
    return hashlib.sha224(value.encode()).hexdigest()
