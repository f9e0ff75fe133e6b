# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network plan: check it, and derive from it what the roles apply.

Controller-side only (action and filter plugins import it): it uses the ``hybridlay`` core
package of the project's environment, so that a plan is judged by the very code the admission
webhooks run (``hybridlay.validation``), and jsonschema for the plan's shape. Nothing here is
shipped to managed nodes.

Every error carries its inventory path: ``hybridlay_subnets[1].gateway`` for the plan variables
(group_vars), ``host node1: hybridlay_node.vlan_parent`` for per-host variables.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible.errors import AnsibleError
from ansible_collections.hybridlay.fabric.plugins.plugin_utils import plan_schema

try:
    import jsonschema

    from hybridlay import devices, model, names, validation
    from hybridlay.errors import InvalidValue

    IMPORT_ERROR = None
except ImportError as exc:  # the controller's environment lacks the project's package
    IMPORT_ERROR = exc

NODES_GROUP = "hybridlay_nodes"
SWITCHES_GROUP = "hybridlay_switches"
BGP_SECRET_NAMESPACE = "kube-system"  # noqa: S105 (a namespace, not a secret)
SECRET_WORDS = ("password", "secret", "token")
HIDDEN = "(value hidden)"
DEFAULT_VLAN_INTERFACE = {"ios": "Vlan{net_id}", "eos": "Vlan{net_id}", "junos": "irb.{net_id}", "frr": "vlan{net_id}"}


@dataclass(frozen=True)
class PlanError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def require_libraries() -> None:
    if IMPORT_ERROR is not None:
        raise AnsibleError(
            f"hybridlay.fabric needs the hybridlay and jsonschema Python packages on the controller: {IMPORT_ERROR}"
        )


def attachment_label(network_name: str) -> str:
    """Node label that puts a node into an underlay network; the seed role sets it from the racks."""
    require_libraries()
    return names.key(f"network-{network_name}")


def _is_secret(path: str) -> bool:
    return any(word in path.lower() for word in SECRET_WORDS)


def _join(base: str, parts: Iterable[Any]) -> str:
    path = base
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _schema_errors(schema: Mapping[str, Any], value: Any, base: str) -> list[PlanError]:
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path))):
        path = _join(base, error.absolute_path)
        message = f"invalid value {HIDDEN}" if _is_secret(path) else error.message
        errors.append(PlanError(path, message))
    return errors


# --- from plan entries to the core's model -----------------------------------------------------


def network_resource(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The Network object a plan entry stands for; a BGP password becomes a reference to its Secret."""
    require_libraries()
    spec: dict[str, Any] = {"type": entry["type"]}
    for key in ("mode", "netID"):
        if key in entry:
            spec[key] = entry[key]
    if entry["type"] == "Underlay":
        spec["nodeSelector"] = {attachment_label(entry["name"]): "true"}
    peers = []
    for index, peer in enumerate(entry.get("bgpPeers", [])):
        item = {k: v for k, v in peer.items() if k != "password"}
        if "password" in peer:
            item["passwordSecretRef"] = {
                "name": bgp_secret_name(entry["name"]),
                "key": f"peer-{index}",
                "namespace": BGP_SECRET_NAMESPACE,
            }
        peers.append(item)
    if peers:
        spec["config"] = {"bgpPeers": peers}
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_NETWORK,
        "metadata": {"name": entry["name"]},
        "spec": spec,
    }


def bgp_secret_name(network_name: str) -> str:
    return f"hybridlay-bgp-{network_name}"


def bgp_secrets(networks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Secrets holding the BGP peers' passwords (the seed role creates them with no_log)."""
    secrets = []
    for entry in networks:
        data = {f"peer-{i}": p["password"] for i, p in enumerate(entry.get("bgpPeers", [])) if "password" in p}
        if data:
            secrets.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": bgp_secret_name(entry["name"]), "namespace": BGP_SECRET_NAMESPACE},
                    "type": "Opaque",
                    "stringData": data,
                }
            )
    return secrets


def subnet_resource(entry: Mapping[str, Any]) -> dict[str, Any]:
    require_libraries()
    version = "6" if ":" in entry["cidr"] else "4"
    address_range = {"version": version, "cidr": entry["cidr"]}
    for key in ("start", "end", "gateway", "reservedIPs", "excludeIPs"):
        if key in entry:
            address_range[key] = entry[key]
    spec: dict[str, Any] = {"network": entry["network"], "range": address_range}
    if "netID" in entry:
        spec["netID"] = entry["netID"]
    config = {key: entry[key] for key in ("autoNatOutgoing", "private") if key in entry}
    if config:
        spec["config"] = config
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND_SUBNET,
        "metadata": {"name": entry["name"]},
        "spec": spec,
    }


def _plan_field(field: str) -> str:
    """``spec.range.gateway`` -> ``gateway``: a resource field as the plan spells it."""
    for prefix in ("spec.range.", "spec.config.", "spec.", "metadata."):
        if field.startswith(prefix):
            field = field[len(prefix) :]
            break
    if field.startswith("nodeSelector"):
        return "racks"
    return field.replace("passwordSecretRef", "password")


def _violation_error(base: str, violation: validation.Violation, entry: Mapping[str, Any]) -> PlanError:
    field = _plan_field(violation.field)
    path = f"{base}.{field}" if field else base
    value = entry.get("racks") if field == "racks" else violation.value
    message = _RESOURCE_FIELD.sub(lambda m: _plan_field(m.group(0)), violation.message)
    if value is None:
        return PlanError(path, message)
    shown = HIDDEN if _is_secret(path) else validation.render(value)
    return PlanError(path, f"{shown} {message}")


# Field paths inside the webhooks' messages ("is outside spec.range.cidr ..."), renamed as the plan spells them.
_RESOURCE_FIELD = re.compile(r"\b(spec|metadata)\.[A-Za-z.\[\]0-9]+")


# --- the check ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inventory:
    """What the check needs from the inventory: groups, and each host's variables."""

    groups: Mapping[str, Sequence[str]]
    hostvars: Mapping[str, Mapping[str, Any]]

    def hosts(self, group: str) -> list[str]:
        return list(self.groups.get(group, []))

    def nodes(self) -> list[str]:
        return self.hosts(NODES_GROUP)

    def node_racks(self, node: str) -> list[str]:
        return sorted(g for g, members in self.groups.items() if node in members and g not in ("all", NODES_GROUP))

    def switches_of(self, rack: str) -> list[str]:
        return [s for s in self.hosts(SWITCHES_GROUP) if self.var(s, "hybridlay_switch").get("rack") == rack]

    def var(self, host: str, name: str) -> Mapping[str, Any]:
        value = self.hostvars.get(host, {}).get(name)
        return value if isinstance(value, Mapping) else {}


def check_plan(networks: Any, subnets: Any, inventory: Inventory, check_interfaces: bool = True) -> list[PlanError]:
    """Every problem of the plan, each with its inventory path; empty when the plan can be applied."""
    require_libraries()
    errors = _schema_errors(plan_schema.PLAN_VARIABLES["hybridlay_networks"], networks, "hybridlay_networks")
    errors += _schema_errors(plan_schema.PLAN_VARIABLES["hybridlay_subnets"], subnets, "hybridlay_subnets")
    for group, var in ((NODES_GROUP, "hybridlay_node"), (SWITCHES_GROUP, "hybridlay_switch")):
        for host in inventory.hosts(group):
            value = inventory.hostvars.get(host, {}).get(var, {} if var == "hybridlay_node" else None)
            errors += _schema_errors(plan_schema.HOST_VARIABLES[var], value, f"host {host}: {var}")
    if errors:
        # The core's rules assume well-formed entries; report shapes first.
        return errors
    errors += _duplicate_names(networks, "hybridlay_networks") + _duplicate_names(subnets, "hybridlay_subnets")
    errors += _core_errors(networks, subnets, inventory)
    errors += _rack_errors(networks, inventory)
    errors += _interface_errors(networks, inventory, check_interfaces)
    errors += _switch_errors(inventory)
    return errors


def _duplicate_names(entries: Sequence[Mapping[str, Any]], variable: str) -> list[PlanError]:
    """Each name once: a second entry would silently replace the first in the cluster."""
    first: dict[str, int] = {}
    errors = []
    for index, entry in enumerate(entries):
        name = entry["name"]
        if name in first:
            errors.append(
                PlanError(f"{variable}[{index}].name", f"{name}: already the name of {variable}[{first[name]}]")
            )
        first.setdefault(name, index)
    return errors


def _switch_errors(inventory: Inventory) -> list[PlanError]:
    """A switch's VLAN interface pattern must format with ``{net_id}`` alone (the routes use it)."""
    errors = []
    for switch in inventory.hosts(SWITCHES_GROUP):
        pattern = inventory.var(switch, "hybridlay_switch").get("vlan_interface")
        if pattern is None:
            continue
        try:
            pattern.format(net_id=1)
        except (IndexError, KeyError, ValueError) as e:
            reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            errors.append(
                PlanError(
                    f"host {switch}: hybridlay_switch.vlan_interface",
                    f"{pattern!r}: must hold {{net_id}} and no other placeholder ({reason})",
                )
            )
    return errors


def node_labels(networks: Sequence[Mapping[str, Any]], inventory: Inventory) -> dict[str, dict[str, str]]:
    """Every node's attachment labels, as the seed role will set them."""
    return {node: node_network_labels(networks, inventory.node_racks(node)) for node in inventory.nodes()}


def _core_errors(
    networks: Sequence[Mapping[str, Any]], subnets: Sequence[Mapping[str, Any]], inventory: Inventory
) -> list[PlanError]:
    """The admission webhooks' rules, applied to the plan's objects in the order the seed role creates them."""
    errors: list[PlanError] = []
    labels = node_labels(networks, inventory)
    converted: dict[str, model.Network] = {}
    for index, entry in enumerate(networks):
        network, violations = validation.validate_resource(names.KIND_NETWORK, network_resource(entry))
        if network is not None:
            violations = validation.validate_network_create(network, converted.values(), labels)
            converted[network.name] = network
        errors += [_violation_error(f"hybridlay_networks[{index}]", v, entry) for v in violations]
    accepted: list[model.Subnet] = []
    for index, entry in enumerate(subnets):
        subnet, violations = validation.validate_resource(names.KIND_SUBNET, subnet_resource(entry))
        if subnet is not None:
            violations = validation.validate_subnet_create(subnet, converted, accepted)
            accepted.append(subnet)
        errors += [_violation_error(f"hybridlay_subnets[{index}]", v, entry) for v in violations]
    return errors


def _rack_problems(rack: str, inventory: Inventory) -> list[str]:
    """An underlay rack needs nodes, and exactly one switch to route its VLANs' subnets."""
    problems = []
    if not set(inventory.hosts(rack)) & set(inventory.nodes()):
        problems.append(f"rack has no host in group {NODES_GROUP}")
    switches = inventory.switches_of(rack)
    if not switches:
        problems.append(f"rack has no switch (no host of {SWITCHES_GROUP} with hybridlay_switch.rack: {rack})")
    elif len(switches) > 1:
        problems.append(f"rack has several switches: {', '.join(switches)}")
    return problems


def _rack_errors(networks: Sequence[Mapping[str, Any]], inventory: Inventory) -> list[PlanError]:
    errors = []
    vlan_owner: dict[tuple[str, int], str] = {}
    for index, entry in enumerate(networks):
        racks = entry.get("racks", [])
        base = f"hybridlay_networks[{index}].racks"
        if entry["type"] == "Overlay":
            if racks:
                errors.append(PlanError(base, "an overlay network spans every node; list no racks"))
            continue
        if not racks:
            errors.append(PlanError(base, f"underlay network {entry['name']} needs at least one rack"))
        for position, rack in enumerate(racks):
            path = f"{base}[{position}]"
            if rack not in inventory.groups:
                errors.append(PlanError(path, f"{rack}: no such inventory group"))
                continue
            errors += [PlanError(path, f"{rack}: {problem}") for problem in _rack_problems(rack, inventory)]
            if entry.get("mode", "VLAN") == "VLAN":
                key = (rack, entry.get("netID", 0))
                if key in vlan_owner:
                    errors.append(
                        PlanError(path, f"{rack}: VLAN {key[1]} already carries network {vlan_owner[key]} there")
                    )
                vlan_owner.setdefault(key, entry["name"])
    for switch in inventory.hosts(SWITCHES_GROUP):
        rack = inventory.var(switch, "hybridlay_switch")["rack"]
        if rack not in inventory.groups:
            errors.append(PlanError(f"host {switch}: hybridlay_switch.rack", f"{rack}: no such inventory group"))
    return errors


def _interface_errors(
    networks: Sequence[Mapping[str, Any]], inventory: Inventory, check_interfaces: bool
) -> list[PlanError]:
    """Each node has the parent interfaces its networks need (and, with facts, they exist)."""
    errors = []
    has_overlay = any(e["type"] == "Overlay" for e in networks)
    vlan_racks = {
        r for e in networks if e["type"] == "Underlay" and e.get("mode", "VLAN") == "VLAN" for r in e.get("racks", [])
    }
    for node in inventory.nodes():
        wanted = []
        if has_overlay:
            wanted.append("vxlan_parent")
        if vlan_racks & set(inventory.node_racks(node)):
            wanted.append("vlan_parent")
        settings = inventory.var(node, "hybridlay_node")
        facts = inventory.hostvars.get(node, {}).get("ansible_facts", {})
        present = facts.get("interfaces") if isinstance(facts, Mapping) else None
        for key in wanted:
            path = f"host {node}: hybridlay_node.{key}"
            if key not in settings:
                errors.append(PlanError(path, "is required: the node is in a network that needs it"))
            elif check_interfaces and present is not None and settings[key] not in present:
                errors.append(
                    PlanError(
                        path, f"{settings[key]}: no such interface on the node (it has {', '.join(sorted(present))})"
                    )
                )
        if "vlan_parent" in wanted and "vlan_parent" in settings:
            errors += _vlan_name_errors(networks, inventory.node_racks(node), settings["vlan_parent"], node)
    return errors


def _vlan_name_errors(
    networks: Sequence[Mapping[str, Any]], racks: Sequence[str], parent: str, node: str
) -> list[PlanError]:
    """The VLAN interfaces the node will get must have names the kernel takes (15 characters)."""
    errors = []
    for entry in networks:
        if entry["type"] != "Underlay" or entry.get("mode", "VLAN") != "VLAN" or not set(racks) & set(entry["racks"]):
            continue
        try:
            devices.vlan_interface_name(parent, entry.get("netID", 0))
        except InvalidValue as e:
            errors.append(PlanError(f"host {node}: hybridlay_node.vlan_parent", f"network {entry['name']}: {e}"))
    return errors


# --- what the roles apply ----------------------------------------------------------------------


def node_vlan_interfaces(
    networks: Sequence[Mapping[str, Any]], racks: Iterable[str], settings: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The VLAN interfaces a node in ``racks`` needs: one per VLAN underlay network of those racks."""
    require_libraries()
    interfaces = []
    for entry in networks:
        if entry["type"] != "Underlay" or entry.get("mode", "VLAN") != "VLAN":
            continue
        if not set(racks) & set(entry.get("racks", [])):
            continue
        parent, net_id = settings["vlan_parent"], entry.get("netID", 0)
        item = {
            "network": entry["name"],
            "parent": parent,
            "id": net_id,
            "name": devices.vlan_interface_name(parent, net_id),
        }
        if "vlan_mtu" in settings:
            item["mtu"] = settings["vlan_mtu"]
        interfaces.append(item)
    return interfaces


def node_network_labels(networks: Sequence[Mapping[str, Any]], racks: Iterable[str]) -> dict[str, str]:
    """The attachment labels of a node in ``racks`` (the nodeSelector of its underlay networks)."""
    return {
        attachment_label(e["name"]): "true"
        for e in networks
        if e["type"] == "Underlay" and set(racks) & set(e.get("racks", []))
    }


def node_label_patch(
    networks: Sequence[Mapping[str, Any]], racks: Iterable[str], current: Mapping[str, str] | None
) -> dict[str, str | None]:
    """The labels patch that makes a node's network attachment labels those of its racks: wanted
    ones added, and stale ones (a rack that left a network, a network gone from the plan) removed
    (null). Only labels the seed owns are touched; ``{}`` when the node is as wanted."""
    require_libraries()
    current = current or {}
    wanted = node_network_labels(networks, racks)
    owned = names.key("network-")
    patch: dict[str, str | None] = {k: v for k, v in wanted.items() if current.get(k) != v}
    patch.update({k: None for k in current if k.startswith(owned) and k not in wanted})
    return patch


def switch_routes(
    networks: Sequence[Mapping[str, Any]], subnets: Sequence[Mapping[str, Any]], switch: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Static routes a rack's switch needs: each underlay VLAN subnet of the rack, via the VLAN interface.

    An interface route rather than a secondary address on the VLAN interface: the switch then
    reaches every subnet of the VLAN by ARP without holding an address in each.
    """
    fmt = switch.get("vlan_interface") or DEFAULT_VLAN_INTERFACE[switch["platform"]]
    by_name = {e["name"]: e for e in networks}
    routes = []
    for entry in subnets:
        network = by_name.get(entry["network"], {})
        if network.get("type") != "Underlay" or network.get("mode", "VLAN") != "VLAN":
            continue
        if switch["rack"] not in network.get("racks", []):
            continue
        cidr = ipaddress.ip_network(entry["cidr"])
        routes.append(
            {
                "dest": str(cidr),
                "afi": f"ipv{cidr.version}",
                "interface": fmt.format(net_id=network.get("netID", 0)),
                "subnet": entry["name"],
            }
        )
    return routes


def static_routes_config(routes: Sequence[Mapping[str, Any]], platform: str) -> list[dict[str, Any]]:
    """Routes in the ``config`` shape of the vendor's ``*_static_routes`` resource module.

    ios and eos name the exit interface; junos's module takes only a next-hop address, and
    Junos accepts an interface name (``irb.20``) there. FRR (hybridlay.fabric.frr_static_routes)
    takes a flat list.
    """
    if platform == "frr":
        return [{"dest": route["dest"], "interface": route["interface"]} for route in routes]
    families: dict[str, list[dict[str, Any]]] = {}
    for route in routes:
        if platform == "junos":
            entry = {"dest": route["dest"], "next_hop": [{"forward_router_address": route["interface"]}]}
        else:
            entry = {"dest": route["dest"], "next_hops": [{"interface": route["interface"]}]}
        families.setdefault(route["afi"], []).append(entry)
    if not families:
        return []
    return [{"address_families": [{"afi": afi, "routes": items} for afi, items in sorted(families.items())]}]


def bgp_peer_args(peers: Sequence[Mapping[str, Any]], network_name: str) -> list[dict[str, Any]]:
    """A plan network's BGP peers as hybridlay.fabric.network's ``bgp_peers`` (passwords by reference)."""
    args = []
    for index, peer in enumerate(peers):
        item: dict[str, Any] = {"asn": peer["asn"], "address": peer["address"]}
        for plan_key, arg in (
            ("gracefulRestartSeconds", "graceful_restart_seconds"),
            ("doesNotRouteTraffic", "does_not_route_traffic"),
            ("allowNotEstablished", "allow_not_established"),
        ):
            if plan_key in peer:
                item[arg] = peer[plan_key]
        if "password" in peer:
            item["password_secret"] = {
                "name": bgp_secret_name(network_name),
                "key": f"peer-{index}",
                "namespace": BGP_SECRET_NAMESPACE,
            }
        args.append(item)
    return args


def network_module_args(networks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """hybridlay.fabric.network's arguments for each plan network: no password in them, so that the
    loop items Ansible prints carry none."""
    args = []
    for entry in networks:
        spec = network_resource(entry)["spec"]
        item = {"name": entry["name"], "type": entry["type"], "node_selector": spec.get("nodeSelector", {})}
        if "mode" in entry:
            item["mode"] = entry["mode"]
        if "netID" in entry:
            item["net_id"] = entry["netID"]
        item["bgp_peers"] = bgp_peer_args(entry.get("bgpPeers", []), entry["name"])
        args.append(item)
    return args
