#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian 12 machine (apt packages,
# a virtualenv, pinned Python packages), then runs ruff, the import contract, mypy and pytest.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/prepare-env.sh

echo "== ruff"
ruff check .
echo "== import contract (pure core)"
lint-imports
echo "== mypy"
mypy -p hybridlay -p hybridlay_operator -p hybridlay_agent -p hybridlay_cni -p hybridlay_cli -p hybridlay_lab

echo "== pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
