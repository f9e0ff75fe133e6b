#!/bin/sh
# import-image.sh ARCHIVE NAME DIGEST: imports an OCI archive into containerd's k8s.io namespace (the
# kubelet's) unless NAME already is that image (manifest DIGEST). Prints "changed" or "unchanged".
set -eu
archive=$1 name=$2 digest=$3
if ctr -n k8s.io images ls "name==$name" 2>/dev/null | grep -q "$digest"; then
  echo unchanged
  exit 0
fi
ctr -n k8s.io images import "$archive" >/dev/null
ctr -n k8s.io images ls "name==$name" | grep -q "$digest" || { echo "$archive: no image $name@$digest after the import" >&2; exit 1; }
echo changed
