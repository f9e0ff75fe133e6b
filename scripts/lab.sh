#!/usr/bin/env bash
# The lab in one command, on a fresh Debian 12 machine (root): installs what it needs (the same
# Debian packages and virtualenv as the test command), then runs playbooks/lab.yml against
# inventories/lab. Usage: bash scripts/lab.sh [PLAYBOOK] [ansible-playbook arguments]
#   bash scripts/lab.sh -e lab_state=absent                      # remove the lab
#   bash scripts/lab.sh playbooks/uninstall.yml -e seed_force=true  # a day-2 playbook on the lab
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
. scripts/prepare-env.sh

# The repository is the collection hybridlay.fabric: Ansible finds it through an
# ansible_collections/hybridlay/fabric link (the pip `ansible` bundle serves the others).
collections="${TMPDIR:-/tmp}/hybridlay-collections-$(printf '%s' "$here" | sha256sum | cut -c1-10)"
mkdir -p "$collections/ansible_collections/hybridlay"
ln -sfn "$here" "$collections/ansible_collections/hybridlay/fabric"
export ANSIBLE_COLLECTIONS_PATH="$collections"
export ANSIBLE_RETRY_FILES_ENABLED=0
# The lab's seven hosts at once.
export ANSIBLE_FORKS="${ANSIBLE_FORKS:-10}"
# Multi-line results (the connectivity matrix, hybridlay status) shown as they are, not as JSON strings.
export ANSIBLE_CALLBACK_RESULT_FORMAT="${ANSIBLE_CALLBACK_RESULT_FORMAT:-yaml}"

playbook=playbooks/lab.yml
case "${1:-}" in *.yml) playbook=$1; shift ;; esac
start=$(date +%s)
ansible-playbook -i inventories/lab "$playbook" -e lab_venv="$venv" "$@"
echo "$(basename "$playbook") took $(( $(date +%s) - start )) s"
