#!/bin/sh
# build-image.sh IMAGE CONTAINERFILE CONTEXT [podman build arguments...]: builds IMAGE unless it was
# built from the same inputs (the Containerfile and the files of its context that it copies, hashed
# into the image's label io.hybridlay.lab.inputs). Prints "changed" when it built, else "unchanged".
# HYBRIDLAY_IMAGE_INPUTS: the context's paths to hash (default: the whole context).
set -eu
podman="$(dirname "$(readlink -f "$0")")/podman"
image=$1 containerfile=$2 context=$3
shift 3
inputs=$(cd "$context" && find ${HYBRIDLAY_IMAGE_INPUTS:-.} -type f -not -name '*.pyc' -not -path '*/__pycache__/*' \
  -not -path '*/.mypy_cache/*' -not -path '*/.ruff_cache/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
want="$(sha256sum "$containerfile" | cut -c1-16)-$inputs-$(printf '%s ' "$@" | sha256sum | cut -c1-8)"
have=$("$podman" image inspect -f '{{ index .Labels "io.hybridlay.lab.inputs" }}' "$image" 2>/dev/null || true)
if [ "$have" = "$want" ]; then
  echo unchanged
  exit 0
fi
"$podman" build -q --label "io.hybridlay.lab.inputs=$want" -t "$image" -f "$containerfile" "$@" "$context" >/dev/null
echo changed
