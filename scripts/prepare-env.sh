# Sourced by scripts/test.sh and scripts/lab.sh (from the repository root): installs the Debian
# packages of every requirements/apt-*.txt, builds the project virtualenv from the system interpreter
# with the pinned requirements/*.txt, and puts it first on PATH. Sets `venv`.

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
venv="${HYBRIDLAY_VENV:-$(pwd)/.venv}"
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
