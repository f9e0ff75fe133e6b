#!/bin/sh
# import-images.sh FOLDER NAME=ARCHIVE@DIGEST...: imports each OCI archive of FOLDER into containerd's
# k8s.io namespace (the kubelet's) unless NAME already is that image (manifest DIGEST). Prints
# "imported NAME" (new) or "replaced NAME" (NAME was another image) for each, then "changed", or
# "unchanged".
set -eu
folder=$1
shift
changed=
for spec in "$@"; do
  name=${spec%%=*} rest=${spec#*=}
  archive=${rest%@*} digest=${rest##*@}
  present=$(ctr -n k8s.io images ls -q "name==$name" 2>/dev/null || true)
  if [ -n "$present" ] && ctr -n k8s.io images ls "name==$name" | grep -q "$digest"; then
    continue
  fi
  ctr -n k8s.io images import "$folder/$archive" >/dev/null
  ctr -n k8s.io images ls "name==$name" | grep -q "$digest" || { echo "$archive: no image $name@$digest after the import" >&2; exit 1; }
  if [ -n "$present" ]; then echo "replaced $name"; else echo "imported $name"; fi
  changed=1
done
[ -n "$changed" ] && echo changed || echo unchanged
