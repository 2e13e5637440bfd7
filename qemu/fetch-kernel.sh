#!/usr/bin/env bash
# Fetch Debian bookworm's amd64 Linux kernel for the lifecycle machine (docs/qemu.md), without
# installing it on the host: `apt-get download` of the package that linux-image-amd64 depends
# on, unpacked with `dpkg-deb -x` into the cache.
#
# Usage: qemu/fetch-kernel.sh            prints the shell assignments below (and writes them
#                                        to $ZBOT_CACHE/kernel/paths.env)
#
#   ZBOT_KERNEL_VERSION  e.g. 6.1.0-56-amd64 (the modules directory name)
#   ZBOT_KERNEL_IMAGE    .../boot/vmlinuz-<version> (an x86 bzImage, booted by U-Boot's zboot)
#   ZBOT_KERNEL_MODULES  .../lib/modules/<version> (with modules.dep; the initramfs takes
#                        virtio, ext4 and the watchdog from here)
#
# Cached under $ZBOT_CACHE/kernel/<package>_<package version>/; a second run only prints the
# paths. ZBOT_KERNEL_PACKAGE=linux-image-6.1.0-NN-amd64 pins a package instead of following
# linux-image-amd64 (useful when the archive moved on and an old cache should be reused).
# Needs: apt-get, dpkg-deb (Debian base system), a configured bookworm apt source.
set -euo pipefail

cache="${ZBOT_CACHE:-$HOME/.cache/zbot}/kernel"
die() {
    echo "fetch-kernel: error: $*" >&2
    exit 1
}
log() { echo "fetch-kernel: $*" >&2; }
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

pkg="${ZBOT_KERNEL_PACKAGE:-}"
if [ -z "$pkg" ]; then
    # linux-image-amd64 (the meta package) depends on exactly one linux-image-<abi>-amd64.
    pkg="$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)"
    if [ -z "$pkg" ]; then
        # No apt lists (fresh container): reuse whatever is cached.
        cached="$(find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'linux-image-*' | sort -V | tail -n1)"
        [ -n "$cached" ] || die "apt-cache does not know linux-image-amd64 and nothing is cached in $cache; run: apt-get update"
        pkg="$(basename "$cached")"
        pkg="${pkg%%_*}"
        log "apt-cache knows no linux-image-amd64; using the cached $pkg"
    fi
fi
ver="$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n1 || true)"
if [ -z "$ver" ]; then
    dir="$(find "$cache" -mindepth 1 -maxdepth 1 -type d -name "${pkg}_*" | sort -V | tail -n1)"
    [ -n "$dir" ] || die "no version of $pkg known to apt-cache and none cached in $cache"
else
    dir="$cache/${pkg}_$ver"
fi

if [ ! -f "$dir/.zbot-done" ]; then
    log "downloading $pkg $ver (about 70 MB) into $cache"
    tmp="$(mktemp -d "$cache/tmp.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    # apt drops privileges to _apt for downloads; a root-owned temp dir makes it warn only.
    (cd "$tmp" && apt-get download "$pkg=$ver" >&2) ||
        die "apt-get download $pkg=$ver failed (is deb.debian.org reachable? run apt-get update)"
    deb="$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n1)"
    [ -n "$deb" ] || die "apt-get download produced no .deb"
    mkdir -p "$tmp/x"
    dpkg-deb -x "$deb" "$tmp/x"
    rm -rf "$dir"
    mkdir -p "$dir"
    mv "$tmp/x/boot" "$tmp/x/lib" "$dir/"
    touch "$dir/.zbot-done"
    log "unpacked into $dir"
fi

kver="$(find "$dir/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | head -n1)"
[ -n "$kver" ] || die "$dir/lib/modules is empty"
image="$dir/boot/vmlinuz-$kver"
[ -f "$image" ] || die "$image missing"
if [ ! -f "$dir/lib/modules/$kver/modules.dep" ]; then
    # Debian generates modules.dep in postinst; we never install, so generate it here.
    command -v depmod >/dev/null || die "depmod not found (Debian package kmod)"
    depmod -b "$dir" "$kver"
fi
{
    echo "ZBOT_KERNEL_VERSION='$kver'"
    echo "ZBOT_KERNEL_IMAGE='$image'"
    echo "ZBOT_KERNEL_MODULES='$dir/lib/modules/$kver'"
} >"$cache/paths.env.tmp"
mv "$cache/paths.env.tmp" "$cache/paths.env"
cat "$cache/paths.env"
