#!/bin/sh
# import-images.sh FOLDER ARCHIVE@DIGEST=NAME...: each OCI archive of FOLDER in containerd's k8s.io
# namespace (the kubelet's) as image NAME, unless NAME already is that image (manifest DIGEST): imported,
# then tagged NAME when the archive names it otherwise. Prints "imported NAME" (new) or "replaced NAME"
# (NAME was another image) for each, then "changed", or "unchanged".
set -eu
folder=$1
shift
changed=
for spec in "$@"; do
  name=${spec#*=} source=${spec%%=*}
  archive=${source%@*} digest=${source##*@}
  present=$(ctr -n k8s.io images ls -q "name==$name" 2>/dev/null || true)
  if [ -n "$present" ] && ctr -n k8s.io images ls "name==$name" | grep -q "$digest"; then
    continue
  fi
  imported=$(ctr -n k8s.io images import "$folder/$archive" | sed -n 's/^unpacking \([^ ]*\) (.*/\1/p' | head -n1)
  if [ "$imported" != "$name" ]; then
    ctr -n k8s.io images tag --force "$imported" "$name" >/dev/null
    ctr -n k8s.io images rm "$imported" >/dev/null
  fi
  ctr -n k8s.io images ls "name==$name" | grep -q "$digest" || { echo "$archive: no image $name@$digest after the import" >&2; exit 1; }
  if [ -n "$present" ]; then echo "replaced $name"; else echo "imported $name"; fi
  changed=1
done
[ -n "$changed" ] && echo changed || echo unchanged
