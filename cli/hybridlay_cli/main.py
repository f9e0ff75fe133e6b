"""``hybridlay``: networks, subnets and addresses of a cluster, read from the Kubernetes API.

    hybridlay status [-o json]
    hybridlay ipinstances [--network N] [--subnet S] [--node X] [-o wide|json]
    hybridlay migrate [--apply] [--secret-namespace NS]
    hybridlay doctor [--namespace NS] [--grace SECONDS] [-o json]

Errors (API unreachable, CRDs missing, an object the model refuses) print one line on stderr and
exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import kubernetes

from hybridlay import migration, names
from hybridlay.errors import InvalidValue
from hybridlay.model import ipinstance_from_resource, network_from_resource, subnet_from_resource
from hybridlay_cli import doctor, migrate, views
from hybridlay_cli.kube import KubeError, api_client, list_cluster_objects

T = TypeVar("T")
SYSTEM_NAMESPACE = "hybridlay-system"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hybridlay", description="Networks, subnets and addresses of hybridlay.")
    top.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster)")
    commands = top.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="networks and subnets with their address usage")
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")
    instances = commands.add_parser("ipinstances", help="addresses with their pod and node")
    instances.add_argument("--network", help="only addresses of this network")
    instances.add_argument("--subnet", help="only addresses of this subnet")
    instances.add_argument("--node", help="only addresses bound to this node")
    instances.add_argument("-o", "--output", choices=("table", "wide", "json"), default="table")
    migrate = commands.add_parser(
        "migrate", help="plan (and with --apply create) hybridlay objects for a cluster's Hybridnet objects"
    )
    migrate.add_argument("--apply", action="store_true", help="create what the plan lists (default: only print it)")
    migrate.add_argument(
        "--secret-namespace",
        default=SYSTEM_NAMESPACE,
        help=f"where BGP peer passwords go, in Secrets (default {SYSTEM_NAMESPACE}: the node agents read them there)",
    )
    check = commands.add_parser(
        "doctor", help="check addresses, pods and counts against each other; exit 1 on any finding"
    )
    check.add_argument(
        "--namespace", help="only the pods and addresses of this namespace (counts are then not checked)"
    )
    check.add_argument(
        "--grace", type=float, default=30.0, help="seconds a new pod may take to get its addresses (default 30)"
    )
    check.add_argument("-o", "--output", choices=("text", "json"), default="text")
    return top


def _without_status(objects: list[dict[str, Any]], field: str) -> set[str]:
    """Names of the objects whose status lacks ``field``.

    The model defaults absent counts to 0: only the raw object tells "no status" from "nothing used".
    """
    return {
        obj["metadata"]["name"]
        for obj in objects
        if not isinstance(obj.get("status"), dict) or field not in obj["status"]
    }


def _convert(kind: str, objects: list[dict[str, Any]], convert: Callable[[Mapping[str, Any]], T]) -> list[T]:
    """Model objects; a refused object names itself in the error."""
    result = []
    for obj in objects:
        try:
            result.append(convert(obj))
        except InvalidValue as e:
            name = (obj.get("metadata") or {}).get("name", "?")
            raise KubeError(f"{kind} {name}: {e}") from None
    return result


def status(client: kubernetes.client.ApiClient, output: str) -> str:
    raw_networks = list_cluster_objects(client, names.PLURAL_NETWORK)
    raw_subnets = list_cluster_objects(client, names.PLURAL_SUBNET)
    networks = _convert(names.KIND_NETWORK, raw_networks, network_from_resource)
    subnets = _convert(names.KIND_SUBNET, raw_subnets, subnet_from_resource)
    networks_without = _without_status(raw_networks, "statistics")
    subnets_without = _without_status(raw_subnets, "total")
    raw_instances = list_cluster_objects(client, names.PLURAL_IPINSTANCE)
    instances = _convert(names.KIND_IPINSTANCE, raw_instances, ipinstance_from_resource)
    computed = views.computed_usage(networks, subnets, instances) if networks_without or subnets_without else None
    records = views.status_records(
        networks, subnets, instances, computed=computed, networks_without_status=networks_without,
        subnets_without_status=subnets_without,
    )  # fmt: skip
    return json.dumps(records, indent=2) if output == "json" else views.render_status(records)


def ipinstances(client: kubernetes.client.ApiClient, args: argparse.Namespace) -> str:
    # A misspelt name would otherwise show an empty table, as if the network held no address.
    for option, plural in (("network", names.PLURAL_NETWORK), ("subnet", names.PLURAL_SUBNET)):
        wanted = getattr(args, option)
        if wanted is not None and wanted not in {o["metadata"]["name"] for o in list_cluster_objects(client, plural)}:
            raise KubeError(f"--{option} {wanted}: no such {option}")
    raw = list_cluster_objects(client, names.PLURAL_IPINSTANCE)
    instances = _convert(names.KIND_IPINSTANCE, raw, ipinstance_from_resource)
    chosen = views.select_instances(instances, args.network, args.subnet, args.node)
    records = [views.ipinstance_record(i) for i in chosen]
    if args.output == "json":
        return json.dumps(records, indent=2)
    columns = views.IPINSTANCE_WIDE_COLUMNS if args.output == "wide" else views.IPINSTANCE_COLUMNS
    return views.render_table(columns, records)


def migrate_command(client: kubernetes.client.ApiClient, args: argparse.Namespace) -> tuple[int, str]:
    plan = migration.plan_migration(migrate.read_cluster(client, args.secret_namespace))
    lines = plan.lines() or ["nothing to migrate: no Hybridnet objects"]
    if plan.refused:
        lines.append(
            f"{len(plan.refused)} object(s) refused: nothing {'created' if args.apply else 'would be created'}"
        )
        return 1, "\n".join(lines)
    if args.apply:
        lines += migrate.apply(client, plan)
    elif plan.create:
        lines.append(f"dry run: {len(plan.create)} object(s) to create; --apply creates them")
    return 0, "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code = 0
    try:
        client = api_client(args.kubeconfig)
        with client:
            if args.command == "status":
                text = status(client, args.output)
            elif args.command == "ipinstances":
                text = ipinstances(client, args)
            elif args.command == "doctor":
                found = doctor.findings(client, args.namespace, args.grace)
                code, text = int(bool(found)), doctor.render(found, args.output)
            else:
                code, text = migrate_command(client, args)
    except KubeError as e:
        print(f"hybridlay: error: {e}", file=sys.stderr)
        return 1
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error of ours. Python would report the pipe
        # again when it flushes stdout at exit, so stdout goes to /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code


if __name__ == "__main__":
    sys.exit(main())
