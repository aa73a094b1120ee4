#!/usr/bin/env bash
# Kubernetes' pause image (the sandbox container of every pod), built here instead of pulled
# from registry.k8s.io: pause.c from the k8s.io/kubernetes Go module at KUBERNETES_VERSION
# (tests/controlplane/versions.env), compiled statically with gcc as upstream's Makefile
# does, alone in a FROM scratch image. Prints its reference and archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/../../tests/controlplane/versions.env"

# pause.c is fixed by the Kubernetes version (the module's checksum pins it), so the key
# needs no download; gcc's version is in it too, as it makes the binary.
key=$( { cat "$here/pause.sh"; echo "$KUBERNETES_VERSION"; gcc --version 2>/dev/null | sed -n 1p; } | key_of)
ref=localhost/agentnet/pause:$KUBERNETES_VERSION
archive=$images_dir/pause-$KUBERNETES_VERSION-$key.oci.tar
if [ -f "$archive" ]; then
  result "$ref" "$archive"
  exit 0
fi

need_root
log "pause image $ref"
work=$(mktemp -d)
ctr=""
trap 'rm -rf "$work"; [ -z "$ctr" ] || bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
# Outside any module, so the download is just the module (cached in GOMODCACHE).
module=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
  sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -f "$module/build/pause/linux/pause.c" ] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@$KUBERNETES_VERSION"
tag=$(sed -n 's/^TAG ?= //p' "$module/build/pause/Makefile")   # pause's own version, e.g. 3.10.2
gcc -Os -Wall -Werror -static -DVERSION="v$tag-kubernetes-$KUBERNETES_VERSION" \
  -o "$work/pause" "$module/build/pause/linux/pause.c"
strip "$work/pause"

ctr=$(bah from --quiet scratch)
bah copy --chmod 0755 "$ctr" "$work/pause" /pause >/dev/null
# As upstream's image: an unprivileged user, pause as the entry point.
bah config --user 65535:65535 --entrypoint '["/pause"]' \
  --label org.opencontainers.image.version="$tag" "$ctr"
bah commit --quiet "$ctr" "$ref" >/dev/null
save "$ref" "$archive"
result "$ref" "$archive"
