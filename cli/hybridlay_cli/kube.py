"""The CLI's only contact with the Kubernetes API: a client, and lists of hybridlay objects as dicts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import kubernetes
import urllib3

from hybridlay import names

# (connect, read) seconds: an unreachable API must fail the command, not hang it.
REQUEST_TIMEOUT = (5, 60)


class KubeError(Exception):
    """A problem with the API or with what it returned, worded for the one line the CLI prints."""


def api_client(kubeconfig: str | None) -> kubernetes.client.ApiClient:
    """From ``kubeconfig``, else ``KUBECONFIG`` / ``~/.kube/config``, else the in-cluster service account."""
    configuration = kubernetes.client.Configuration()
    configuration.retries = 0  # the urllib3 default retries a refused connection three times
    default = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
    try:
        if kubeconfig is None and not Path(default).expanduser().exists() and "KUBERNETES_SERVICE_HOST" in os.environ:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
    except (kubernetes.config.ConfigException, OSError) as e:
        raise KubeError(f"cannot load the kubeconfig ({kubeconfig or default}): {e}") from None
    return kubernetes.client.ApiClient(configuration)


def list_cluster_objects(client: kubernetes.client.ApiClient, plural: str) -> list[dict[str, Any]]:
    """Every object of one of our cluster-scoped kinds."""
    return list_objects(client, names.GROUP, names.VERSION, plural, "the hybridlay CRDs")


def list_objects(
    client: kubernetes.client.ApiClient, group: str, version: str, plural: str, crds: str
) -> list[dict[str, Any]]:
    """Every object of a custom resource, of all namespaces; ``crds`` names what serves it, for the
    error when the API does not."""
    api = kubernetes.client.CustomObjectsApi(client)
    try:
        listing = api.list_cluster_custom_object(group, version, plural, _request_timeout=REQUEST_TIMEOUT)
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            raise KubeError(f"the API serves no {plural}.{group}/{version}: are {crds} installed?") from None
        raise KubeError(f"listing {plural}.{group} failed: {e.status} {e.reason}") from None
    except kubernetes.client.exceptions.OpenApiException as e:
        raise KubeError(f"listing {plural}.{group} failed: {e}") from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise KubeError(f"cannot reach the Kubernetes API at {client.configuration.host}: {_reason(e)}") from None
    return cast(list[dict[str, Any]], cast(dict[str, Any], listing).get("items", []))


def _reason(error: Exception) -> str:
    """The innermost cause of a urllib3 error (``MaxRetryError(... NewConnectionError(...))``)."""
    reason = getattr(error, "reason", None)
    return _reason(reason) if isinstance(reason, Exception) else str(error).split(": ", 1)[-1]
