#!/usr/bin/env bash
# A tiny image with a shell, mkdir and rm: the local-path provisioner's helper pod, which
# makes and removes volume directories on the node. Debian's busybox-static (one static
# binary) alone in a FROM scratch image, with links for the applets a helper script uses.
# Cached by a key of this script and the package's version. Prints its reference and archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

package=busybox-static
candidate() { apt-cache policy "$package" | sed -n 's/^  Candidate: //p'; }
version=$(candidate)
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  apt-get update -qq >&2
  version=$(candidate)
fi
[ -n "$version" ] && [ "$version" != "(none)" ] || die "apt knows no $package"
key=$( { cat "$here/busybox.sh"; echo "$version"; } | key_of)
tag=${version#*:}   # no epoch: a tag has no colon
ref=localhost/agentnet/busybox:${tag//+/_}
archive=$images_dir/busybox-$key.oci.tar
cached "$ref" "$archive"

need_root
log "busybox image $ref"
work=$(mktemp -d)
ctr=""
trap 'rm -rf "$work"; [ -z "$ctr" ] || bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$package=$version" >&2)
dpkg-deb -x "$work"/"$package"_*.deb "$work/root"
[ -x "$work/root/bin/busybox" ] || die "no /bin/busybox in $package $version"

ctr=$(bah from --quiet scratch)
rootfs=$(bah mount "$ctr")
mkdir -p "$rootfs/bin" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
install -m 0755 "$work/root/bin/busybox" "$rootfs/bin/busybox"
for applet in sh mkdir rm rmdir ls cat chmod; do ln -s busybox "$rootfs/bin/$applet"; done
bah umount "$ctr" >/dev/null
bah config --env PATH=/bin --cmd '["/bin/sh"]' --label org.opencontainers.image.version="$version" "$ctr"
bah commit --quiet "$ctr" "$ref" >/dev/null
save "$ref" "$archive"
result "$ref" "$archive"
