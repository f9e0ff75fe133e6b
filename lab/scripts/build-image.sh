#!/bin/sh
# build-image.sh REPOSITORY CONTAINERFILE CONTEXT [podman build arguments...]: the image REPOSITORY:<inputs>
# where <inputs> hashes the Containerfile, the files of its context it copies and the arguments. Built
# unless it exists: labs of other checkouts (other sources) keep their own images side by side.
# Prints "changed REF" when it built, else "unchanged REF".
# HYBRIDLAY_IMAGE_INPUTS: the context's paths to hash (default: the whole context).
set -eu
podman="$(dirname "$(readlink -f "$0")")/podman"
repository=$1 containerfile=$2 context=$3
shift 3
inputs=$(cd "$context" && find ${HYBRIDLAY_IMAGE_INPUTS:-.} -type f -not -name '*.pyc' -not -path '*/__pycache__/*' \
  -not -path '*/.mypy_cache/*' -not -path '*/.ruff_cache/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
tag=$( (sha256sum <"$containerfile"; echo "$inputs"; printf '%s ' "$@") | sha256sum | cut -c1-12)
ref="$repository:$tag"
if "$podman" image exists "$ref"; then
  echo "unchanged $ref"
  exit 0
fi
"$podman" build -q -t "$ref" -f "$containerfile" "$@" "$context" >/dev/null
echo "changed $ref"
