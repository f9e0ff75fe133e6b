# Copyright: hybridlay maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of hybridlay.fabric.plan_check: runs on the controller, where the core is installed."""

from __future__ import annotations

import json

from ansible.plugins.action import ActionBase
from ansible_collections.hybridlay.fabric.plugins.plugin_utils import plan

ARGUMENT_SPEC = {
    "networks": {"type": "list", "elements": "raw", "required": True},
    "subnets": {"type": "list", "elements": "raw", "required": True},
    "check_interfaces": {"type": "bool", "default": True},
}
HOST_VARIABLES = ("hybridlay_node", "hybridlay_switch", "ansible_facts")


def _plain(value):
    """Templated inventory data as plain JSON types (what jsonschema and the core expect)."""
    return json.loads(json.dumps(value))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        task_vars = task_vars or {}
        groups = {name: list(members) for name, members in task_vars.get("groups", {}).items()}
        hostvars = task_vars.get("hostvars", {})
        hosts = set(groups.get(plan.NODES_GROUP, [])) | set(groups.get(plan.SWITCHES_GROUP, []))
        inventory = plan.Inventory(
            groups=groups,
            hostvars={h: {k: _plain(hostvars[h][k]) for k in HOST_VARIABLES if k in hostvars[h]} for h in hosts},
        )
        errors = plan.check_plan(_plain(args["networks"]), _plain(args["subnets"]), inventory, args["check_interfaces"])
        result["changed"] = False
        result["errors"] = [str(e) for e in errors]
        if errors:
            result["failed"] = True
            result["msg"] = f"the network plan has {len(errors)} error(s):\n" + "\n".join(result["errors"])
        else:
            result["msg"] = "the network plan is valid"
        return result
