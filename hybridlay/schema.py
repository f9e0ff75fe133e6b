"""CustomResourceDefinition schemas applied as the API server applies them, without an API server.

Everything here takes already-loaded dicts (a CRD manifest, an object) and does no I/O.

- :func:`validation_errors` checks an object against a CRD version's ``openAPIV3Schema`` with
  jsonschema, after :func:`to_json_schema` has translated the OpenAPI dialect (``nullable``,
  boolean ``exclusiveMinimum``, ``x-kubernetes-*``) into JSON Schema draft 4. Unknown fields are
  errors, as the API server's strict field validation (kubectl's default) makes them.
  ``x-kubernetes-validations`` (CEL) rules are not evaluated.
- :func:`apply_defaults` fills in schema defaults the way the API server does on every write.
- :func:`schema_problems` and :func:`crd_problems` report what the API server would refuse when the
  CRD itself is created: a schema that is not structural, misplaced extensions, defaults that do
  not validate, status without its subresource, printer columns pointing nowhere.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from hybridlay.errors import InvalidValue

Schema = Mapping[str, Any]

# The formats of apiextensions-apiserver's own list that our CRDs use, checked at least as strictly
# as the API server checks them (Go's net.ParseIP / ParseCIDR / ParseMAC). Any other format is
# ignored, as the API server ignores formats it does not know.
FORMAT_CHECKER = jsonschema.FormatChecker(formats=())

# The forms Go's net.ParseMAC accepts: 6, 8 or 20 octets as ':'- or '-'-separated pairs or '.'-separated quads.
_MAC = re.compile(
    "|".join(
        rf"^[0-9a-fA-F]{{2}}({sep}[0-9a-fA-F]{{2}}){{{octets - 1}}}$" for octets in (6, 8, 20) for sep in (":", "-")
    )
    + "".join(rf"|^[0-9a-fA-F]{{4}}(\.[0-9a-fA-F]{{4}}){{{octets // 2 - 1}}}$" for octets in (6, 8, 20))
)


def _parses_as_ip(value: str) -> bool:
    if "%" in value:  # Go's net.ParseIP refuses IPv6 zones; Python's ipaddress would accept them
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@FORMAT_CHECKER.checks("ipv4")
def _is_ipv4(value: object) -> bool:
    # Go's check is "parses as an IP and contains a dot", so ::ffff:1.2.3.4 passes there too.
    return not isinstance(value, str) or ("." in value and _parses_as_ip(value))


@FORMAT_CHECKER.checks("ipv6")
def _is_ipv6(value: object) -> bool:
    return not isinstance(value, str) or (":" in value and _parses_as_ip(value))


@FORMAT_CHECKER.checks("cidr")
def _is_cidr(value: object) -> bool:
    """Address and prefix length; host bits may be set (as Go's net.ParseCIDR allows)."""
    if not isinstance(value, str):
        return True
    address, slash, prefix = value.partition("/")
    # A netmask instead of a length (10.0.0.0/255.0.0.0) is Python-only; Go refuses it.
    if not slash or not prefix.isdigit() or not _parses_as_ip(address):
        return False
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return False
    return True


@FORMAT_CHECKER.checks("mac")
def _is_mac(value: object) -> bool:
    return not isinstance(value, str) or bool(_MAC.match(value))


def version_schema(crd: Mapping[str, Any], version: str | None = None) -> Schema:
    """The ``openAPIV3Schema`` of one version of a CRD (by default the storage version)."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version or (version is None and entry.get("storage")):
            found: Schema = entry["schema"]["openAPIV3Schema"]
            return found
    raise InvalidValue("spec.versions", version, f"is not a version of {crd['metadata']['name']}")


_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")


def to_json_schema(schema: Schema, *, root: bool = True) -> dict[str, Any]:
    """Translate an OpenAPI v3 schema node and its children into JSON Schema draft 4."""
    out = {key: _translate(key, value, root) for key, value in schema.items() if _kept(key)}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if schema.get("x-kubernetes-int-or-string") and "type" not in out:
        out["type"] = ["integer", "string"]
    if schema.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    closed = "properties" in schema and "additionalProperties" not in schema
    if schema.get("type") == "object" and closed and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _kept(key: str) -> bool:
    # list-map-keys stays: the keyword added in _K8sValidator checks it. The others say nothing
    # jsonschema could check, or are translated above.
    return key != "nullable" and (not key.startswith("x-kubernetes-") or key == "x-kubernetes-list-map-keys")


def _translate(key: str, value: Any, root: bool) -> Any:
    if key in ("items", "not") or (key == "additionalProperties" and isinstance(value, Mapping)):
        return to_json_schema(value, root=False)
    if key == "properties":
        return {
            name: _metadata_schema(child) if root and name == "metadata" else to_json_schema(child, root=False)
            for name, child in value.items()
        }
    if key in ("allOf", "anyOf", "oneOf"):
        return [to_json_schema(child, root=False) for child in value]
    return value


def _metadata_schema(schema: Schema) -> dict[str, Any]:
    """ObjectMeta is the API server's own type: a CRD only narrows name and generateName."""
    out = to_json_schema(schema, root=False)
    out.pop("additionalProperties", None)
    return out


def _list_map_keys(validator: Validator, keys: list[str], instance: Any, schema: Schema) -> Iterator[Any]:
    """Items of an ``x-kubernetes-list-type: map`` list are unique by their key fields."""
    if not isinstance(instance, list):
        return
    seen: dict[tuple[Any, ...], int] = {}
    for index, item in enumerate(instance):
        if not isinstance(item, Mapping):
            continue
        key = tuple(repr(item.get(k)) for k in keys)
        if key in seen:
            described = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
            yield jsonschema.ValidationError(
                f"duplicate entry ({described}) also at [{seen[key]}]", path=[index], instance=item
            )
        seen.setdefault(key, index)


_K8sValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]  # untyped in types-jsonschema
    jsonschema.Draft4Validator, validators={"x-kubernetes-list-map-keys": _list_map_keys}
)


def validator(schema: Schema, *, root: bool = True) -> Validator:
    """A jsonschema validator for objects of one CRD version, given its ``openAPIV3Schema``.

    ``root=False`` validates a value against one node of a schema instead.
    """
    validator_instance: Validator = _K8sValidator(to_json_schema(schema, root=root), format_checker=FORMAT_CHECKER)
    return validator_instance


def field_path(parts: Iterable[str | int]) -> str:
    """``["spec", "config", "bgpPeers", 0, "asn"]`` → ``spec.config.bgpPeers[0].asn``."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


_REASONS: dict[str, Callable[[Any], str]] = {
    "type": lambda kind: "must be of type " + (" or ".join(kind) if isinstance(kind, list) else str(kind)),
    "enum": lambda values: "must be one of " + ", ".join(repr(v) for v in values),
    "format": lambda name: f"is not a valid {name}",
    "pattern": lambda pattern: f"must match {pattern}",
    "minimum": lambda bound: f"must be at least {bound}",
    "maximum": lambda bound: f"must be at most {bound}",
    "uniqueItems": lambda _: "has duplicate entries",
}


def _reason(error: jsonschema.ValidationError) -> str:
    if error.validator == "anyOf":
        reasons = sorted({_reason(sub) for sub in error.context or []})
        if reasons and all(r.startswith("is not a valid ") for r in reasons):
            return "is not a valid " + " or ".join(r.removeprefix("is not a valid ") for r in reasons)
        return " or ".join(reasons) or "matches no alternative"
    describe = _REASONS.get(str(error.validator))
    return describe(error.validator_value) if describe else str(error.message)


def validation_errors(schema: Schema, obj: Any, *, root: bool = True) -> list[InvalidValue]:
    """Every way ``obj`` breaks the CRD version's schema, each naming the field and the value.

    ``root=False`` checks a value against one node of a schema instead.
    """
    found: list[InvalidValue] = []
    errors = validator(schema, root=root).iter_errors(obj)
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        path: list[str | int] = list(error.absolute_path)
        if error.validator == "required":
            missing = re.search(r"'([^']+)' is a required property", error.message)
            path.append(missing.group(1) if missing else "?")
            found.append(InvalidValue(field_path(path), None, "is required"))
        elif error.validator == "additionalProperties":
            node = error.schema if isinstance(error.schema, Mapping) else {}
            instance: Mapping[str, Any] = error.instance if isinstance(error.instance, Mapping) else {}
            for name in sorted(set(instance) - set(node.get("properties", {}))):
                found.append(InvalidValue(field_path([*path, name]), instance[name], "is not a known field"))
        else:
            found.append(InvalidValue(field_path(path), error.instance, _reason(error)))
    return found


def apply_defaults(schema: Schema, obj: Any) -> Any:
    """A copy of ``obj`` with the schema's defaults filled in where fields are absent.

    Like the API server: a default applies only where its parent object exists, and defaults of
    nested fields apply inside a defaulted parent (so ``default: {}`` on a parent brings its
    children's defaults).
    """
    result = copy.deepcopy(obj)
    _default_in_place(schema, result)
    return result


def _default_in_place(schema: Schema, value: Any) -> None:
    if isinstance(value, dict):
        for name, child in schema.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                _default_in_place(child, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for child_value in value.values():
                _default_in_place(extra, child_value)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _default_in_place(schema["items"], item)


# --- what the API server refuses in a CRD -------------------------------------------------------

_FORBIDDEN_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")
_SCALAR_TYPES = ("string", "integer", "number", "boolean")
_TYPES = ("object", "array", *_SCALAR_TYPES)
_NAME_CONSTRAINTS = {"type", "pattern", "maxLength", "minLength", "format", "enum", "description"}


def schema_problems(schema: Schema) -> list[str]:
    """Why an ``openAPIV3Schema`` would be refused or is not what we allow ourselves; empty if fine.

    The Kubernetes rules for a structural schema, plus two of ours: ``x-kubernetes-preserve-unknown-fields``
    never replaces a type, and every ``default`` validates against its own node.
    """
    problems: list[str] = []
    if schema.get("type") != "object":
        problems.append("(root): type must be object")
    if "additionalProperties" in schema:
        problems.append("(root): additionalProperties is not allowed at the root")
    for name, child in schema.get("properties", {}).items():
        if name == "metadata":
            problems += _metadata_problems(child)
        else:
            _node_problems(child, name, problems)
    problems += _extension_problems(schema, "(root)")
    return problems


def _metadata_problems(schema: Schema) -> list[str]:
    problems = [] if schema.get("type") == "object" else ["metadata: type must be object"]
    for key in set(schema) - {"type", "properties", "description"}:
        problems.append(f"metadata: {key} is not allowed; only name and generateName may be constrained")
    for name, child in schema.get("properties", {}).items():
        if name not in ("name", "generateName"):
            problems.append(f"metadata.{name}: only name and generateName may be constrained")
        elif child.get("type") != "string" or set(child) - _NAME_CONSTRAINTS:
            problems.append(f"metadata.{name}: must be a string with only value constraints")
    return problems


def _node_problems(schema: Schema, path: str, problems: list[str]) -> None:
    """Structural rules for one specified field or array item, then its children."""
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if not schema.get("type") and not int_or_string:
        reason = "uses x-kubernetes-preserve-unknown-fields instead of a type" if preserve else "has no type"
        problems.append(f"{path}: {reason}")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties are mutually exclusive")
    problems.extend(_extension_problems(schema, path))
    if "pattern" in schema and not _compiles(schema["pattern"]):
        problems.append(f"{path}: pattern {schema['pattern']!r} is not a regular expression")
    if schema.get("type") and schema["type"] not in _TYPES:
        problems.append(f"{path}: type {schema['type']!r} is not one of {', '.join(_TYPES)}")
    problems.extend(_named_value_problems(schema, path))
    for junctor in _JUNCTORS:
        for index, sub in enumerate(_as_list(schema.get(junctor))):
            _junctor_problems(schema, sub, f"{path}.{junctor}[{index}]", problems)
    for name, child in schema.get("properties", {}).items():
        _node_problems(child, f"{path}.{name}", problems)
    if isinstance(schema.get("additionalProperties"), Mapping):
        _node_problems(schema["additionalProperties"], f"{path}.*", problems)
    if "items" in schema:
        _node_problems(schema["items"], f"{path}[*]", problems)


def _named_value_problems(schema: Schema, path: str) -> list[str]:
    """The default and each enum value must pass the node's own schema, or no object could use them."""
    problems = []
    if "default" in schema:
        node = {k: v for k, v in schema.items() if k != "default"}
        for error in validation_errors(node, schema["default"], root=False):
            at = f" at {error.field}" if error.field else ""
            problems.append(f"{path}: default {schema['default']!r}{at} {error.reason}")
    if "enum" in schema:
        node = {k: v for k, v in schema.items() if k not in ("enum", "default")}
        for value in schema["enum"]:
            problems += [f"{path}: enum value {value!r} {e.reason}" for e in validation_errors(node, value, root=False)]
    return problems


def _compiles(pattern: Any) -> bool:
    try:
        re.compile(pattern)
    except (re.error, TypeError):
        return False
    return True


def _as_list(value: Any) -> list[Schema]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _junctor_problems(outer: Schema, sub: Schema, path: str, problems: list[str]) -> None:
    """Inside allOf/anyOf/oneOf/not only value validation, on fields also specified outside."""
    int_or_string_form = outer.get("x-kubernetes-int-or-string") and sub.get("type") in ("integer", "string")
    for key in _FORBIDDEN_IN_JUNCTORS:
        if key in sub and not (key == "type" and int_or_string_form):
            problems.append(f"{path}: {key} is not allowed inside a logical junctor")
    for name in sub.get("properties", {}):
        if name not in outer.get("properties", {}):
            problems.append(f"{path}.{name}: is not specified outside the logical junctor")
    if "items" in sub and "items" not in outer:
        problems.append(f"{path}[*]: items are not specified outside the logical junctor")
    if any(key.startswith("x-kubernetes-") for key in sub):
        problems.append(f"{path}: x-kubernetes- extensions are not allowed inside a logical junctor")


def _extension_problems(schema: Schema, path: str) -> list[str]:
    problems: list[str] = []
    kind = schema.get("type")
    list_type = schema.get("x-kubernetes-list-type")
    if list_type is not None:
        items = schema.get("items", {})
        if kind != "array":
            problems.append(f"{path}: x-kubernetes-list-type is only for arrays")
        elif list_type not in ("atomic", "set", "map"):
            problems.append(f"{path}: x-kubernetes-list-type must be atomic, set or map")
        elif list_type == "set" and items.get("type") not in _SCALAR_TYPES:
            problems.append(f"{path}: a set's items must be scalars")
        elif list_type == "map":
            problems.extend(_list_map_problems(items, schema.get("x-kubernetes-list-map-keys"), path))
    elif "x-kubernetes-list-map-keys" in schema:
        problems.append(f"{path}: x-kubernetes-list-map-keys needs x-kubernetes-list-type: map")
    map_type = schema.get("x-kubernetes-map-type")
    if map_type is not None and (kind != "object" or map_type not in ("granular", "atomic")):
        problems.append(f"{path}: x-kubernetes-map-type is only for objects and must be granular or atomic")
    if schema.get("x-kubernetes-embedded-resource") and kind != "object":
        problems.append(f"{path}: x-kubernetes-embedded-resource needs type object")
    if schema.get("x-kubernetes-int-or-string") and kind:
        problems.append(f"{path}: x-kubernetes-int-or-string must not also set a type")
    return problems


def _list_map_problems(items: Schema, keys: Any, path: str) -> list[str]:
    if items.get("type") != "object" or not keys:
        return [f"{path}: a map list needs object items and x-kubernetes-list-map-keys"]
    problems = []
    for key in keys:
        field = items.get("properties", {}).get(key)
        if field is None or field.get("type") not in _SCALAR_TYPES:
            problems.append(f"{path}: map key {key} must be a scalar field of the items")
        elif key not in items.get("required", []) and "default" not in field:
            problems.append(f"{path}: map key {key} must be required or have a default")
    return problems


_PRINTER_TYPES = {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean", "date": "string"}


def crd_problems(crd: Mapping[str, Any]) -> list[str]:
    """What in a CRD manifest the API server would refuse, or that would not work; empty if fine."""
    problems: list[str] = []
    spec = crd["spec"]
    if crd["metadata"]["name"] != f"{spec['names']['plural']}.{spec['group']}":
        problems.append("metadata.name: must be <plural>.<group>")
    versions = spec["versions"]
    if sum(1 for v in versions if v.get("storage")) != 1:
        problems.append("spec.versions: exactly one version must be the storage version")
    for version in versions:
        where = f"version {version['name']}"
        schema = version.get("schema", {}).get("openAPIV3Schema")
        if schema is None:
            problems.append(f"{where}: has no openAPIV3Schema")
            continue
        problems += [f"{where}: {p}" for p in schema_problems(schema)]
        has_status = "status" in schema.get("properties", {})
        if has_status != ("status" in version.get("subresources", {})):
            problems.append(f"{where}: status must be declared both in the schema and as a subresource")
        for column in version.get("additionalPrinterColumns", []):
            problems += [f"{where}: column {column['name']}: {p}" for p in _column_problems(schema, column)]
    return problems


def _column_problems(schema: Schema, column: Mapping[str, Any]) -> list[str]:
    expected = _PRINTER_TYPES.get(column.get("type", ""))
    if expected is None:
        return [f"type {column.get('type')!r} is not a printer column type"]
    node = _node_at(schema, column.get("jsonPath", ""))
    if node is None:
        return [f"jsonPath {column.get('jsonPath')!r} names no field of the schema"]
    if node.get("type") != expected:
        return [f"jsonPath {column['jsonPath']!r} is of type {node.get('type')}, the column of type {column['type']}"]
    return []


_JSON_PATH_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+|\*)\]")


def _node_at(schema: Schema, json_path: str) -> Schema | None:
    """The schema node a simple JSONPath (``.spec.a.b``, ``.status.list[0]``) points at."""
    node: Schema | None = schema
    position = 0
    while position < len(json_path) and node is not None:
        step = _JSON_PATH_STEP.match(json_path, position)
        if step is None:
            return None
        position = step.end()
        node = node.get("properties", {}).get(step.group(1)) if step.group(1) else node.get("items")
    return node if json_path else None
