"""hybridlay: the administrator's command line (status, addresses)."""
