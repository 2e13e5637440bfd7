#!/usr/bin/env bash
# BR2_ROOTFS_POST_IMAGE_SCRIPT of the main system (rootfs): makes the SD card image with
# `partctl create` from the card layout. This ends both manual "FIXME" steps of the seed: the
# partition table comes from the layout (no partition_sd.xml/mkcvipart.py step for the card),
# and data and staging are made empty ext4 by partctl (no dd + mkfs.ext4 placeholders).
#
#   post-image.sh BINARIES_DIR --fip FILE --boot-sd FILE --otafs FILE
#                 [--rootfs FILE] [--wpa FILE] [--layout FILE] [--env FILE] [--out FILE]
#
# In Buildroot: BR2_ROOTFS_POST_SCRIPT_ARGS="--fip ... --boot-sd ... --otafs ...".
#   --fip, --boot-sd  the SDK's fip.bin (FSBL, OpenSBI, U-Boot) and boot.sd (FIT: kernel + dtb)
#   --otafs           the recovery system's ext4 image (the otafs Buildroot build)
#   --rootfs          default BINARIES_DIR/rootfs.ext4 (this build)
#   --env             the default environment text; default TARGET_DIR/etc/u-boot-initial-env
#                     (written by post-build.sh); the card's /uboot.env is it with
#                     next_boot=rootfs, at the layout's env size
#   --layout          default BR2_PACKAGE_ZBOT_LAYOUT, else partctl/layouts/zbot-duos.toml
#   --out             default BINARIES_DIR/zbot-sd.img
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
ext="${BR2_EXTERNAL_ZBOT_PATH:-$repo/buildroot}"
die() { echo "zbot post-image: $*" >&2; exit 1; }

bin_dir="${1:?usage: post-image.sh BINARIES_DIR --fip FILE --boot-sd FILE --otafs FILE [...]}"
shift
fip="" bootsd="" otafs="" rootfs="$bin_dir/rootfs.ext4" wpa="" layout="" envtext="" out="$bin_dir/zbot-sd.img"
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "$1 needs a value"
    case "$1" in
        --fip) fip="$2" ;;
        --boot-sd) bootsd="$2" ;;
        --otafs) otafs="$2" ;;
        --rootfs) rootfs="$2" ;;
        --wpa) wpa="$2" ;;
        --layout) layout="$2" ;;
        --env) envtext="$2" ;;
        --out) out="$2" ;;
        *) die "unknown option $1 (see the comment at the top of $0)" ;;
    esac
    shift 2
done
if [ -z "$layout" ] && [ -n "${BR2_CONFIG:-}" ] && [ -f "$BR2_CONFIG" ]; then
    layout="$(sed -n 's/^BR2_PACKAGE_ZBOT_LAYOUT="\(.*\)"$/\1/p' "$BR2_CONFIG")"
    layout="${layout//\$(BR2_EXTERNAL_ZBOT_PATH)/$ext}"
fi
layout="${layout:-$repo/partctl/layouts/zbot-duos.toml}"
envtext="${envtext:-${TARGET_DIR:-$bin_dir/../target}/etc/u-boot-initial-env}"
for pair in "fip:$fip" "boot-sd:$bootsd" "otafs:$otafs" "rootfs:$rootfs" "layout:$layout" "env:$envtext"; do
    name="${pair%%:*}" file="${pair#*:}"
    [ -n "$file" ] || die "--$name FILE is missing (BR2_ROOTFS_POST_SCRIPT_ARGS)"
    [ -f "$file" ] || die "--$name $file does not exist"
done

bin="$(bash "$here/host-tools.sh")"
input="$(mktemp -d)"
trap 'rm -rf "$input"' EXIT
cp "$fip" "$input/fip.bin"
cp "$bootsd" "$input/boot.sd"
cp "$otafs" "$input/otafs.ext4"
cp "$rootfs" "$input/rootfs.ext4"
[ -z "$wpa" ] || cp "$wpa" "$input/wpa_supplicant.conf"
# The fresh card boots the main system: the default environment with next_boot=rootfs, as an
# image of the layout's env size (the data line of its fw_env.config: file offset size).
size="$("$bin/partctl" emit fw_env.config "$layout" | awk '!/^#/ && NF >= 3 { print $3; exit }')"
[ -n "$size" ] || die "the layout $layout has no env partition"
grep -v '^next_boot=' "$envtext" >"$input/env.txt"
echo "next_boot=rootfs" >>"$input/env.txt"
"$bin/fw-env" mkimage --size "$size" "$input/env.txt" "$input/uboot.env" ||
    die "fw-env mkimage --size $size failed"
"$bin/partctl" create --input "$input" "$layout" "$out" ||
    die "partctl create $layout failed (its message above names the file)"
"$bin/partctl" check --layout "$layout" "$out" >&2 || die "partctl check of the new card $out failed"
echo "zbot post-image: $out (layout $layout, env $size bytes, next_boot=rootfs)"
