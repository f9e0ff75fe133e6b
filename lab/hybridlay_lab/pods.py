"""What the lab kubelet does about one pod: pure decisions on the Pod object and the node's sandbox.

A pod's sandbox is a network namespace named from its UID plus the CNI result of ADD; the kubelet
keeps a :class:`SandboxRecord` per sandbox (the libcni result cache: DEL gets it as prevResult).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hybridlay_lab.cni import Attachment, result_ips

IFNAME = "eth0"
# Interface names are limited to 15 characters (IFNAMSIZ - 1); netns names are not, but the lab
# keeps them as short so that a name can also serve as a device name in a pinch.
MAX_NETNS_NAME = 15
MIN_HASH = 6
FINISHED_PHASES = ("Succeeded", "Failed")


class Action(enum.Enum):
    TEARDOWN = "teardown"  # DEL through the chain, remove the namespace and the record
    SETUP = "setup"  # namespace, ADD through the chain, pod status
    REPORT = "report"  # the sandbox is fine, the pod's status does not show its addresses yet
    FINISH = "finish"  # a deleted pod with no sandbox left: phase Succeeded, delete with grace period 0


@dataclass(frozen=True)
class SandboxRecord:
    uid: str
    namespace: str
    name: str
    container_id: str
    netns: str
    network: Mapping[str, Any]  # the configuration list ADD ran with: DEL runs with the same one
    result: Mapping[str, Any] | None = None  # None: ADD did not finish

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "namespace": self.namespace,
            "name": self.name,
            "containerID": self.container_id,
            "netns": self.netns,
            "network": dict(self.network),
            "result": None if self.result is None else dict(self.result),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SandboxRecord:
        return cls(
            uid=data["uid"],
            namespace=data["namespace"],
            name=data["name"],
            container_id=data["containerID"],
            netns=data["netns"],
            network=data["network"],
            result=data.get("result"),
        )

    def attachment(self, netns_dir: str) -> Attachment:
        """The runtime's side of every CNI call for this sandbox (the CNI_ARGS a CRI runtime sends)."""
        args = (
            ("K8S_POD_NAMESPACE", self.namespace),
            ("K8S_POD_NAME", self.name),
            ("K8S_POD_INFRA_CONTAINER_ID", self.container_id),
            ("K8S_POD_UID", self.uid),
        )
        return Attachment(self.container_id, f"{netns_dir}/{self.netns}", IFNAME, args)


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = pod.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def uid_of(pod: Mapping[str, Any]) -> str:
    return str(_meta(pod).get("uid") or "")


def pod_key(pod: Mapping[str, Any]) -> str:
    return f"{_meta(pod).get('namespace', '')}/{_meta(pod).get('name', '')}"


def netns_name(prefix: str, container_id: str) -> str:
    """``prefix`` and as much of the container id as fits in 15 characters."""
    room = MAX_NETNS_NAME - len(prefix)
    if room < MIN_HASH:
        raise ValueError(f"netns prefix {prefix!r}: at most {MAX_NETNS_NAME - MIN_HASH} characters")
    return prefix + container_id[:room]


def new_record(pod: Mapping[str, Any], prefix: str, network: Mapping[str, Any]) -> SandboxRecord:
    """The sandbox a pod gets; its container id (64 hex digits, as a runtime's) derives from the pod UID."""
    meta = _meta(pod)
    container_id = hashlib.sha256(uid_of(pod).encode()).hexdigest()
    return SandboxRecord(
        uid=uid_of(pod),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        container_id=container_id,
        netns=netns_name(prefix, container_id),
        network=network,
    )


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return _meta(pod).get("deletionTimestamp") is not None


def phase_of(pod: Mapping[str, Any]) -> str | None:
    status = pod.get("status")
    return status.get("phase") if isinstance(status, Mapping) else None


def wants_network(pod: Mapping[str, Any], node: str) -> bool:
    """Bound to this node, not being deleted, not finished."""
    spec = pod.get("spec")
    bound = isinstance(spec, Mapping) and spec.get("nodeName") == node
    return bound and not is_terminating(pod) and phase_of(pod) not in FINISHED_PHASES


def reported_ips(pod: Mapping[str, Any]) -> list[str]:
    status = pod.get("status")
    entries = status.get("podIPs") if isinstance(status, Mapping) else None
    return [str(e.get("ip")) for e in entries or [] if isinstance(e, Mapping)]


def actions(pod: Mapping[str, Any], node: str, record: SandboxRecord | None, netns_present: bool) -> list[Action]:
    """What to do, in order, so that the node matches the pod."""
    if wants_network(pod, node):
        if record is not None and record.result is not None and netns_present:
            healthy = phase_of(pod) == "Running" and reported_ips(pod) == result_ips(record.result)
            return [] if healthy else [Action.REPORT]
        # No sandbox, or one half made (ADD unfinished, namespace gone): rebuild it from scratch.
        return [Action.TEARDOWN, Action.SETUP] if record is not None else [Action.SETUP]
    steps = [Action.TEARDOWN] if record is not None else []
    if is_terminating(pod) and phase_of(pod) != "Succeeded":
        steps.append(Action.FINISH)
    return steps


def running_status(result: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The status patch once the sandbox is up (the lab's pods have no containers to wait for)."""
    ips = result_ips(result)
    status: dict[str, Any] = {
        "phase": "Running",
        "podIPs": [{"ip": ip} for ip in ips],
        "startTime": now,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }
    if ips:
        status["podIP"] = ips[0]
    return {"status": status}


def finished_status(now: str) -> dict[str, Any]:
    """What a kubelet reports once a deleted pod's containers and sandbox are gone."""
    return {
        "status": {
            "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}],
        }
    }


def failure_event(record: SandboxRecord, node: str, message: str, now: str, name: str) -> dict[str, Any]:
    """The Warning a kubelet records when the sandbox's network cannot be set up."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": record.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": record.namespace,
            "name": record.name,
            "uid": record.uid,
        },
        "reason": "FailedCreatePodSandBox",
        "message": f"Failed to create pod sandbox: failed to set up network for sandbox "
        f"{record.container_id[:12]}: {message}",
        "type": "Warning",
        "source": {"component": "hybridlay-lab-kubelet", "host": node},
        "reportingComponent": "hybridlay-lab-kubelet",
        "reportingInstance": node,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
