"""hybridlay-operator: runtime IPAM, status, node labels and admission webhooks (kopf)."""
