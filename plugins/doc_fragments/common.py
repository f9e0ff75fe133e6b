# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by the collection's modules."""

from __future__ import annotations


class ModuleDocFragment:
    # Every module that changes something: check mode and diff mode, on POSIX hosts.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    support: full
    description: Returns details on what has changed (or would change in check mode), in diff mode.
  platform:
    support: full
    platforms: posix
    description: Target OS/families that can be operated against.
"""

    # Modules that talk to the cluster (run on the controller).
    CLUSTER = r"""
options:
  kubeconfig:
    description: Path of the kubeconfig; the client's default when omitted.
    type: path
  context:
    description: Context of the kubeconfig to use.
    type: str
requirements:
  - hybridlay (the project's Python package, for the admission rules)
  - kubernetes
"""
