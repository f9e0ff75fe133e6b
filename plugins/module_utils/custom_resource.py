# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the network and subnet modules share: read the object, validate with the core, then change it.

The admission rules are the core's (``hybridlay.validation``, the webhooks' code), checked before
any write so a refused change never reaches the API half-done. Check mode sends the write as a
server-side dry run (``dryRun=All``): the API server validates and answers, and stores nothing.
"""

from __future__ import annotations

import traceback

try:
    from hybridlay import model, names, validation

    HYBRIDLAY_IMPORT_ERROR = None
except ImportError:
    HYBRIDLAY_IMPORT_ERROR = traceback.format_exc()

try:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    KUBERNETES_IMPORT_ERROR = None
except ImportError:
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

from ansible.module_utils.basic import missing_required_lib

CONNECTION_ARGS = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
}
# Fields of the object the API server owns: never compared, never sent back.
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "deletionTimestamp")


def check_libraries(module):
    for name, error in (("hybridlay", HYBRIDLAY_IMPORT_ERROR), ("kubernetes", KUBERNETES_IMPORT_ERROR)):
        if error:
            module.fail_json(msg=missing_required_lib(name), exception=error)


class Cluster:
    """The custom resources of our API group, through the official client."""

    def __init__(self, module):
        self.module = module
        api_client = config.new_client_from_config(
            config_file=module.params["kubeconfig"], context=module.params["context"]
        )
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def _call(self, what, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404 and what.startswith("get"):
                return None
            self.module.fail_json(msg=f"{what} failed: {exc.status} {exc.reason}: {exc.body}")

    def get(self, plural, name):
        return self._call(
            f"get {plural}/{name}", self.custom.get_cluster_custom_object, names.GROUP, names.VERSION, plural, name
        )

    def list(self, plural):
        found = self._call(f"list {plural}", self.custom.list_cluster_custom_object, names.GROUP, names.VERSION, plural)
        return found.get("items", [])

    def node_labels(self):
        nodes = self._call("list nodes", self.core.list_node)
        return {n.metadata.name: dict(n.metadata.labels or {}) for n in nodes.items}

    def write(self, plural, body, existing):
        """Create or replace ``body``; a dry run in check mode. Returns what the server answered."""
        dry_run = "All" if self.module.check_mode else None
        name = body["metadata"]["name"]
        if existing is None:
            return self._call(
                f"create {plural}/{name}",
                self.custom.create_cluster_custom_object,
                names.GROUP,
                names.VERSION,
                plural,
                body,
                dry_run=dry_run,
            )
        # A replace sets the whole object: the metadata others keep there (labels, annotations,
        # finalizers, owners) goes back with it, else it would be dropped.
        theirs = {k: v for k, v in existing["metadata"].items() if k not in SERVER_FIELDS}
        metadata = dict(theirs, **body["metadata"], resourceVersion=existing["metadata"]["resourceVersion"])
        body = dict(body, metadata=metadata)
        return self._call(
            f"replace {plural}/{name}",
            self.custom.replace_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            plural,
            name,
            body,
            dry_run=dry_run,
        )

    def delete(self, plural, name):
        dry_run = "All" if self.module.check_mode else None
        return self._call(
            f"delete {plural}/{name}",
            self.custom.delete_cluster_custom_object,
            names.GROUP,
            names.VERSION,
            plural,
            name,
            dry_run=dry_run,
        )


def spec_of(kind, obj):
    """The spec the modules manage, normalized through the core's model so that the API server's
    defaults (type Underlay, gracefulRestartSeconds 300, an empty config) do not read as changes."""
    if obj is None:
        return {}
    to_resource = {names.KIND_NETWORK: model.network_to_resource, names.KIND_SUBNET: model.subnet_to_resource}[kind]
    return {"spec": to_resource(obj)["spec"]}


def fail_on_violations(module, kind, name, violations):
    if violations:
        messages = [str(v) for v in violations]
        module.fail_json(msg=f"{kind} {name} refused: " + "; ".join(messages), violations=messages)


def ensure(module, kind, plural, desired, rules):
    """The modules' main flow. ``rules`` is (create, update, delete), each returning violations."""
    check_libraries(module)
    cluster = Cluster(module)
    name = module.params["name"]
    existing = cluster.get(plural, name)
    current = None
    if existing is not None:
        current, violations = validation.validate_resource(kind, existing)
        fail_on_violations(module, kind, name, violations)
    create_rules, update_rules, delete_rules = rules
    if module.params["state"] == "absent":
        if current is None:
            module.exit_json(changed=False, result={})
        fail_on_violations(module, kind, name, delete_rules(cluster, current))
        cluster.delete(plural, name)
        module.exit_json(changed=True, result={}, diff={"before": spec_of(kind, current), "after": {}})
    wanted, violations = validation.validate_resource(kind, desired)
    fail_on_violations(module, kind, name, violations)
    if current is not None and spec_of(kind, current) == spec_of(kind, wanted):
        module.exit_json(changed=False, result=existing)
    violations = create_rules(cluster, wanted) if current is None else update_rules(cluster, current, wanted)
    fail_on_violations(module, kind, name, violations)
    answer = cluster.write(plural, desired, existing)
    module.exit_json(
        changed=True, result=answer, diff={"before": spec_of(kind, current), "after": spec_of(kind, wanted)}
    )


def networks_by_name(cluster):
    return {n.name: n for n in (model.network_from_resource(o) for o in cluster.list(names.PLURAL_NETWORK))}


def subnets(cluster):
    return [model.subnet_from_resource(o) for o in cluster.list(names.PLURAL_SUBNET)]


def instances(cluster):
    return [model.ipinstance_from_resource(o) for o in cluster.list(names.PLURAL_IPINSTANCE)]
