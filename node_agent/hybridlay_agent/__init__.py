"""hybridlay-agent: programs the node data plane and serves the CNI plugin."""
