#!/usr/bin/env bash
# Builds agentnet's container images with buildah: no Docker engine and no registry.
# Every image is cached under ${AGENTNET_CACHE:-~/.cache/agentnet}/images/ as an OCI
# archive named by a key of its recipe and inputs, and reused while the key matches;
# buildah's own storage is ${AGENTNET_CACHE:-~/.cache/agentnet}/buildah/.
#
#   build.sh                   the runtime image, ghcr.io/agentnet/agentnet-runtime:<version>
#                              (`make image`): the project's Dockerfile on the base image
#   build.sh base              that base: Debian bookworm, python3.11, a venv at /opt/venv
#   build.sh pause             Kubernetes' pause image, compiled from its pause.c
#   build.sh coredns BINARY    a CoreDNS image around a static coredns binary
#   build.sh local-path        the local-path provisioner, built from its Go module
#   build.sh busybox           a shell, mkdir and rm (Debian's busybox-static): its helper pods
#   build.sh spin [WASM_DIR]   the Spin app image (`make spin-image`): /spin.toml and the wasm files
#   build.sh buildah ARGS...   buildah itself on that storage (to look around: images, inspect)
#
# The last line of stdout is the image reference (progress goes to stderr). With
# --archive first (`build.sh --archive pause`), stdout's last two lines are the reference
# and then the archive's path: an OCI archive whose index names the full reference, so
# `ctr -n k8s.io images import ARCHIVE` keeps that name.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

with_archive=false
if [ "${1:-}" = --archive ]; then with_archive=true; shift; fi
what=${1:-runtime}
[ $# -eq 0 ] || shift
case "$what" in
  buildah) ;;
  runtime | base | pause | local-path | busybox) [ $# -eq 0 ] || die "build.sh $what takes no arguments" ;;
  coredns) [ $# -eq 1 ] || die "usage: build.sh [--archive] coredns BINARY" ;;
  spin) [ $# -le 1 ] || die "usage: build.sh [--archive] spin [WASM_DIR]" ;;
  *) die "usage: build.sh [--archive] [runtime|base|pause|local-path|busybox|coredns BINARY|spin [WASM_DIR]]  or  build.sh buildah ARGS..." ;;
esac

# One build at a time per cache: parallel test workers may all ask for the same image,
# and the second must find the first one's archive rather than build it again.
exec 9>"$images_dir/.lock"
flock 9
# Whatever --root says, buildah (as root) keeps its blob-info cache, a small database of
# layer digests, in /var/lib/containers/cache (a fixed path in containers/image; buildah
# issue #3388). It is only an optimisation: if this run creates it, this run removes it.
if [ ! -e /var/lib/containers ]; then trap 'rm -rf /var/lib/containers' EXIT; fi

if [ "$what" = buildah ]; then
  bah "$@"
  exit
fi
out=$(bash "$here/$what.sh" "$@")
ref=$(sed -n 1p <<<"$out")
archive=$(sed -n 2p <<<"$out")
if [ -z "$ref" ] || [ ! -f "$archive" ]; then die "$what.sh printed no image: $out"; fi
echo "$ref"
if $with_archive; then echo "$archive"; fi
