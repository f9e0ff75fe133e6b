"""API names: group, kinds, annotations, labels, finalizers. One place, used by every edge."""

from __future__ import annotations

GROUP = "networking.hybridlay.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

KIND_NETWORK = "Network"
KIND_SUBNET = "Subnet"
KIND_IPINSTANCE = "IPInstance"
KIND_NODEINFO = "NodeInfo"

PLURAL_NETWORK = "networks"
PLURAL_SUBNET = "subnets"
PLURAL_IPINSTANCE = "ipinstances"
PLURAL_NODEINFO = "nodeinfos"


def key(name: str) -> str:
    """``networking.hybridlay.io/<name>``: the form of every annotation and label we own."""
    return f"{GROUP}/{name}"


# Hybridnet's group: its pod and namespace annotations and labels are read as aliases of ours.
HYBRIDNET_GROUP = "networking.alibaba.com"


def hybridnet_alias(our_key: str) -> str:
    """``networking.alibaba.com/<name>`` for our ``networking.hybridlay.io/<name>``."""
    return f"{HYBRIDNET_GROUP}/{our_key.removeprefix(GROUP + '/')}"


# Pod and namespace annotations (or labels; the annotation wins), reference §2.
ANNOTATION_SPECIFIED_NETWORK = key("specified-network")
ANNOTATION_SPECIFIED_SUBNET = key("specified-subnet")
ANNOTATION_NETWORK_TYPE = key("network-type")
ANNOTATION_IP_FAMILY = key("ip-family")
ANNOTATION_IP_RETAIN = key("ip-retain")
ANNOTATION_IP_POOL = key("ip-pool")
ANNOTATION_MAC_POOL = key("mac-pool")

# IPInstance labels.
LABEL_NETWORK = key("network")
LABEL_SUBNET = key("subnet")
LABEL_NODE = key("node")
LABEL_POD = key("pod")
LABEL_POD_NAMESPACE = key("pod-namespace")
LABEL_POD_UID = key("pod-uid")

# Node labels kept by the operator.
LABEL_UNDERLAY_ATTACHMENT = key("underlay-network-attachment")
LABEL_OVERLAY_ATTACHMENT = key("overlay-network-attachment")
LABEL_BGP_ATTACHMENT = key("bgp-network-attachment")
LABEL_IPV4_QUOTA = key("ipv4-address-quota")
LABEL_IPV6_QUOTA = key("ipv6-address-quota")
LABEL_DUALSTACK_QUOTA = key("dualstack-address-quota")
QUOTA_NONEMPTY = "nonempty"
QUOTA_EMPTY = "empty"

FINALIZER_POD = key("ip-retain")

# Link-local next hop every pod routes through (reference §5).
POD_GATEWAY_V4 = "169.254.1.1"
POD_GATEWAY_V6 = "fe80::1"
# Host side of every pod veth answers with this MAC (reference §5).
HOST_VETH_MAC = "ee:ee:ee:ee:ee:ee"
# Prefix of the MACs generated for pods (reference §1).
POD_MAC_PREFIX = "02:12:34"
