#!/usr/bin/env bash
# The base image of the runtime image, made here from Debian packages (no registry):
# debootstrap bookworm (minbase) with the packages in base-packages.txt, updated from
# bookworm-updates and bookworm-security, and a venv at /opt/venv first on PATH, so
# `python` and `pip` are the venv's (Debian's own pip refuses installs, PEP 668).
# Cached by a key of this script and the package list. Prints its reference and archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

key=$(cat "$here/base.sh" "$here/base-packages.txt" | key_of)
ref=localhost/agentnet/base:$key
archive=$images_dir/base-$key.oci.tar
if [ -f "$archive" ]; then
  load "$ref" "$archive"
  result "$ref" "$archive"
  exit 0
fi

need_root
command -v debootstrap >/dev/null || die "debootstrap is missing: bash scripts/host-packages.sh"
log "base image $ref: debootstrap bookworm"
ctr=$(bah from --quiet scratch)
trap 'bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
# debootstrap writes straight into the new container's root filesystem.
rootfs=$(bah mount "$ctr")
packages=$(sed 's/#.*//' "$here/base-packages.txt" | xargs | tr ' ' ,)
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" http://deb.debian.org/debian >&2
# Device nodes debootstrap made: a container runtime mounts its own /dev. And this host's
# name and DNS server, which debootstrap copied: a container runtime provides its own.
find "$rootfs/dev" -mindepth 1 -delete
: > "$rootfs/etc/resolv.conf"
: > "$rootfs/etc/hostname"
bah umount "$ctr" >/dev/null

log "base image: updates, venv, cleanup"
bah run --network host "$ctr" -- sh -euc '
  # Debian security fixes, from the same mirrors the build stage installs its compiler from.
  cat > /etc/apt/sources.list <<SOURCES
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get upgrade -y -qq >/dev/null
  # No documentation, manual pages or translations, now or in later apt installs.
  printf "%s\n" "path-exclude /usr/share/doc/*" "path-include /usr/share/doc/*/copyright" \
    "path-exclude /usr/share/man/*" "path-exclude /usr/share/info/*" "path-exclude /usr/share/locale/*" \
    > /etc/dpkg/dpkg.cfg.d/excludes
  find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf /usr/share/man/* /usr/share/info/* /usr/share/locale/*
  python3.11 -m venv /opt/venv
  apt-get clean
  find /var/log -type f -delete
  rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/lib/dpkg/*-old /tmp/* /root/.cache
' >&2
bah config --env PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env VIRTUAL_ENV=/opt/venv --env LANG=C.UTF-8 --cmd python \
  --label org.opencontainers.image.description="Debian bookworm minbase, python3.11 and a venv at /opt/venv" \
  "$ctr"
bah commit --quiet --squash "$ctr" "$ref" >/dev/null
save "$ref" "$archive"
result "$ref" "$archive"
