#!/usr/bin/env bash
# The rancher local-path provisioner (dynamic PersistentVolumes in a directory of the node),
# built from its Go module at LOCAL_PATH_VERSION as a static binary, alone in a FROM scratch
# image under upstream's name for it, /local-path-provisioner, run as user 65532 (nonroot):
# it only talks to the API server. Pinned here rather than in tests/controlplane/versions.env,
# whose every change rebuilds the whole control plane. Cached by a key of this script, the
# version and the Go version. Prints its reference and archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

LOCAL_PATH_VERSION=v0.0.33
module=github.com/rancher/local-path-provisioner
key=$( { cat "$here/local-path.sh"; go env GOVERSION; } | key_of)
ref=localhost/agentnet/local-path-provisioner:$LOCAL_PATH_VERSION
archive=$images_dir/local-path-provisioner-$LOCAL_PATH_VERSION-$key.oci.tar
cached "$ref" "$archive"

need_root
command -v go >/dev/null || die "Go is needed to build the local-path provisioner (https://go.dev/dl)"
log "local-path provisioner image $ref"
work=$(mktemp -d)
ctr=""
trap 'rm -rf "$work"; [ -z "$ctr" ] || bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
# The module has no replace directives, so `go install module@version` builds it as released.
(cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$work/bin" \
  go install -trimpath -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_VERSION" "$module@$LOCAL_PATH_VERSION" >&2)

ctr=$(bah from --quiet scratch)
bah copy --chmod 0755 "$ctr" "$work/bin/local-path-provisioner" /local-path-provisioner >/dev/null
bah config --user 65532:65532 --entrypoint '["/local-path-provisioner"]' \
  --label org.opencontainers.image.version="$LOCAL_PATH_VERSION" "$ctr"
bah commit --quiet "$ctr" "$ref" >/dev/null
save "$ref" "$archive"
result "$ref" "$archive"
