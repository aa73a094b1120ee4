#!/usr/bin/env bash
# The runtime image, ghcr.io/agentnet/agentnet-runtime:<agentnet_runtime.__version__>: the
# project's Dockerfile built with buildah on the base image from base.sh. Cached by a key
# of the base, this script and the build context (context_hash.py: the Dockerfile and
# every file .dockerignore lets through), so an unchanged tree reuses the archive at once.
# Prints its reference and archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/lib.sh"

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/runtime/agentnet_runtime/__init__.py")
[ -n "$version" ] || die "no __version__ in runtime/agentnet_runtime/__init__.py"
ref=ghcr.io/agentnet/agentnet-runtime:$version   # what the chart and examples/network.yaml name
base=$(bash "$here/base.sh" | sed -n 1p)            # builds the base once; loads it into the store
# Debian's python3.11 keeps its headers in python3.11-dev (python:3.11-slim has them built in).
build_packages="gcc libc6-dev python3.11-dev"
key=$( { echo "$base $version $build_packages"; cat "$here/runtime.sh"; python3 "$here/context_hash.py" "$repo"; } | key_of)
archive=$images_dir/agentnet-runtime-$version-$key.oci.tar
if [ -f "$archive" ]; then
  result "$ref" "$archive"
  exit 0
fi

need_root
# pip in the build stage goes out through this host's proxy, if any: the host's pip
# configuration and CA bundle are mounted as build secrets for that one RUN (Dockerfile).
secrets=()
pip_conf=${PIP_CONFIG_FILE:-/etc/pip.conf}
ca_bundle=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$pip_conf" ] && secrets+=(--secret "id=pip.conf,src=$pip_conf")
[ -f "$ca_bundle" ] && secrets+=(--secret "id=ca-certificates.crt,src=$ca_bundle")

log "runtime image $ref (on $base)"
# --pull=never: every FROM is in the local store, there is no registry to ask.
# No --layers: buildah 1.28 reuses a cached `RUN --mount=type=bind,from=build` layer even
# when the build stage's wheels changed (buildah issues #4522, #6609), so a cached build
# could ship the old agentnet; the archive's key above is the cache instead.
bah build --pull=never --network host --file "$repo/Dockerfile" \
  --build-arg PYTHON_IMAGE="$base" --build-arg VERSION="$version" \
  --build-arg BUILD_PACKAGES="$build_packages" "${secrets[@]}" \
  --tag "$ref" "$repo" >&2
save "$ref" "$archive"
result "$ref" "$archive"
