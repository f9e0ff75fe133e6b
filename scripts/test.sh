#!/usr/bin/env bash
# The test command: installs what the tests need on a fresh Debian 12 machine (apt packages,
# a virtualenv, pinned Python packages), then runs ruff, the import contract, mypy and pytest.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

# Debian packages: every requirements/apt-*.txt lists some (one file per area of the project).
apt_wanted=$(cat requirements/apt-*.txt | sed 's/#.*//' | tr -s ' \n' '\n' | sed '/^$/d' | sort -u)
apt_missing=$(for p in $apt_wanted; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$apt_missing" ]; then
  echo "== installing Debian packages: $(echo $apt_missing)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $apt_missing >/dev/null
fi

# Python: the system interpreter (never a version-manager shim), a project virtualenv, pins.
venv="${HYBRIDLAY_VENV:-$here/.venv}"
stamp="$venv/.requirements.sha256"
want=$(cat requirements/*.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== preparing virtualenv $venv"
  /usr/bin/python3 -m venv "$venv"
  # This machine's pip.conf names local mirrors that may be absent; their warnings are noise.
  quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
  quiet "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip==26.3 setuptools==84.2.1 wheel==0.48.0
  reqs=()
  for f in requirements/*.txt; do
    case "$f" in requirements/apt-*) ;; *) reqs+=(-r "$f") ;; esac
  done
  quiet "$venv/bin/pip" install -q --disable-pip-version-check "${reqs[@]}"
  quiet "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$want" >"$stamp"
fi
export PATH="$venv/bin:$PATH"

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
