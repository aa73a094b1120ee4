# shellcheck shell=bash
# Sourced by the image recipes: where buildah's storage and the images live (under the
# cache, never /var/lib/containers), and the helpers every recipe uses.

cache=${AGENTNET_CACHE:-$HOME/.cache/agentnet}
images_dir=$cache/images      # the OCI archives, one per image, named by their recipe's key
storage=$cache/buildah        # buildah's image store and run state
# buildah stages archives and keeps RUN --mount=type=cache directories in $TMPDIR:
# keep those in the cache too (the pip cache mount then survives a reboot).
export TMPDIR=$storage/tmp
mkdir -p "$images_dir" "$TMPDIR"
# RUN steps run chrooted, not in runc: runc would keep its state in /run/runc on the host,
# and the steps need nothing a container adds (pip goes out through the host's network).
export BUILDAH_ISOLATION=chroot
# buildah also creates its CNI configuration directory (default /etc/cni/net.d) whenever it
# runs a step: keep that in the storage too.
export CONTAINERS_CONF=$storage/containers.conf
printf '[network]\nnetwork_config_dir = "%s"\n' "$storage/cni" > "$CONTAINERS_CONF"

log() { echo "[image] $*" >&2; }
die() { log "$*"; exit 1; }

# buildah on the project's own storage.
bah() { buildah --root "$storage/root" --runroot "$storage/runroot" --storage-driver overlay "$@"; }

# A short key of stdin: recipe files, versions, source hashes.
key_of() { sha256sum | cut -c1-16; }

need_root() {  # debootstrap, chroot and buildah's overlay storage all need it
  [ "$(id -u)" -eq 0 ] || die "building images needs root (run as root, or after \`make host-packages\`)"
  command -v buildah >/dev/null || die "buildah is missing: bash scripts/host-packages.sh"
}

# save REF ARCHIVE: write the image REF to ARCHIVE as an OCI archive whose index names it
# REF (org.opencontainers.image.ref.name, the full reference, which `ctr images import`
# keeps as the image name). Then drop what older builds left: archives of the same image
# with other keys, other tags of REF's repository and untagged images in the store.
save() {
  local ref=$1 archive=$2 stem=${2%-*}   # .../agentnet-runtime-0.1.0-<key>.oci.tar -> .../agentnet-runtime-0.1.0
  rm -f "$archive.tmp"
  bah push --quiet "$ref" "oci-archive:$archive.tmp:$ref" >&2
  mv "$archive.tmp" "$archive"
  for old in "$stem"-*.oci.tar; do
    [ "$old" = "$archive" ] || rm -f "$old"
  done
  for old in $(bah images --noheading --format '{{.Name}}:{{.Tag}}' --filter reference="${ref%:*}"); do
    [ "$old" = "$ref" ] || bah rmi "$old" >/dev/null 2>&1 || true
  done
  bah rmi --prune >/dev/null 2>&1 || true
}

# load REF ARCHIVE: make sure REF is in the store (a FROM with --pull=never needs it),
# restoring it from its archive after the store was cleared.
load() {
  bah inspect --type image "$1" >/dev/null 2>&1 || bah pull --quiet "oci-archive:$2" >&2
}

# The recipes' output: the reference, then the archive path.
result() { printf '%s\n%s\n' "$1" "$2"; }

# cached REF ARCHIVE: when ARCHIVE was built already, that is the recipe's output, and its end.
cached() { if [ -f "$2" ]; then result "$1" "$2"; exit 0; fi; }
