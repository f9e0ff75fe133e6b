"""Run inside a network namespace (``ip netns exec NS python reconcile_in_netns.py``): reconcile the
pickled DesiredState read from stdin, print the result as JSON. Tests use it to drive the real
reconciler in a throwaway namespace without switching their own process's namespace."""

from __future__ import annotations

import json
import pickle
import sys

from hybridlay_agent.reconciler import Reconciler

if __name__ == "__main__":
    desired = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - written by the test itself
    reconciler = Reconciler()
    result = reconciler.reconcile(desired)
    print(json.dumps({"writes": result.writes, "pending": result.pending}))
