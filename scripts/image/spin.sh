#!/usr/bin/env bash
# The Spin app image (`make spin-image`): FROM scratch, /spin.toml (manifest version 2, from
# agentnet_operator/spin.py) and beside it the Spin components' wasm files from `make wasm`
# (build/wasm/<component>.wasm), which is the layout SpinKube's containerd-shim-spin reads from
# a container image: the manifest at the root, each component's `source` relative to it.
# No registry: the image goes to an OCI archive as the other images do. Cached by a key of
# this script, the manifest and the wasm files.
# Usage: spin.sh [WASM_DIR] (default build/wasm). Prints its reference and archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/lib.sh"

wasm_dir=${1:-$repo/build/wasm}
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || die "no Python at $python (make setup, or set PYTHON)"
spin_app() { PYTHONPATH="$repo/operator:$repo/runtime" "$python" -m agentnet_operator.spin "$@"; }
ref=$(spin_app image)
mapfile -t components < <(spin_app components)
work=$(mktemp -d)
ctr=""
trap 'rm -rf "$work"; [ -z "$ctr" ] || bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
spin_app manifest > "$work/spin.toml"
for component in "${components[@]}"; do
  [ -f "$wasm_dir/$component.wasm" ] || die "no $wasm_dir/$component.wasm: build the Spin components first (make wasm)"
done
key=$( { cat "$here/spin.sh" "$work/spin.toml"; for c in "${components[@]}"; do sha256sum < "$wasm_dir/$c.wasm"; done; } | key_of)
archive=$images_dir/agentnet-spin-${ref##*:}-$key.oci.tar
cached "$ref" "$archive"

need_root
log "Spin app image $ref (${components[*]})"
ctr=$(bah from --quiet scratch)
bah copy --chmod 0644 "$ctr" "$work/spin.toml" /spin.toml >/dev/null
for component in "${components[@]}"; do
  bah copy --chmod 0644 "$ctr" "$wasm_dir/$component.wasm" "/$component.wasm" >/dev/null
done
bah config --label org.opencontainers.image.version="${ref##*:}" \
  --label org.opencontainers.image.title="agentnet Spin app" "$ctr"
bah commit --quiet "$ctr" "$ref" >/dev/null
save "$ref" "$archive"
result "$ref" "$archive"
