"""hybridlay's pure core: model, validation, IPAM and data-plane planning.

Nothing in this package performs I/O or imports kopf, kubernetes, pyroute2 or aiohttp; the
import-linter contract in pyproject.toml enforces it.
"""
