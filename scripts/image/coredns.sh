#!/usr/bin/env bash
# A CoreDNS image around a static coredns binary (the control plane build makes one:
# `bash tests/controlplane/build.sh` prints its bin directory), laid out as upstream's
# image: FROM scratch, /coredns as the entry point, user 65532 (nonroot). Unlike upstream
# the binary carries no file capability (cap_net_bind_service): with one, exec fails with
# EPERM in a pod that drops ALL capabilities, as the rig's does; so CoreDNS listens on an
# unprivileged port (the rig's Corefile says :1053; its Service maps 53 to it). No CA
# bundle: the rig's CoreDNS forwards nothing. Cached by a key of this script and the binary.
# Usage: coredns.sh BINARY. Prints its reference and archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

binary=${1:?usage: coredns.sh BINARY}
[ -x "$binary" ] || die "no executable coredns binary at $binary"
# FROM scratch has no libc, no loader: refuse a dynamically linked binary up front.
if readelf -l "$binary" | grep INTERP >/dev/null; then
  die "$binary is dynamically linked (build it with CGO_ENABLED=0)"
fi
version=$("$binary" -version | sed -n 's/^CoreDNS-//p')
[ -n "$version" ] || die "$binary -version does not say CoreDNS-<version>"
key=$( { cat "$here/coredns.sh"; sha256sum < "$binary"; } | key_of)
ref=localhost/agentnet/coredns:v$version
archive=$images_dir/coredns-v$version-$key.oci.tar
if [ -f "$archive" ]; then
  result "$ref" "$archive"
  exit 0
fi

need_root
log "coredns image $ref"
ctr=""
trap '[ -z "$ctr" ] || bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
ctr=$(bah from --quiet scratch)
bah copy --chmod 0755 "$ctr" "$binary" /coredns >/dev/null
bah config --user 65532:65532 --workingdir / --entrypoint '["/coredns"]' \
  --label org.opencontainers.image.version="$version" "$ctr"
bah commit --quiet "$ctr" "$ref" >/dev/null
save "$ref" "$archive"
result "$ref" "$archive"
