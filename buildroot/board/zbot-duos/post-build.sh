#!/usr/bin/env bash
# BR2_ROOTFS_POST_BUILD_SCRIPT of a ZBot system (rootfs and otafs alike). Buildroot calls it
# with TARGET_DIR as $1, after the packages and the rootfs overlays.
#
# Derives from the card layout (BR2_PACKAGE_ZBOT_LAYOUT), with the workspace's own tools:
#   /etc/fw_env.config            partctl emit fw_env.config
#   /etc/u-boot-initial-env       uboot-scripts --layout --vendor-env ... default-env
#                                 (the environment U-Boot has compiled in; fw-env, bootcount
#                                 and libubootenv use it when the env file is unusable)
#   /etc/bootcount/slots.toml     partctl emit slots
#   /etc/fstab                    the layout's lines (boot, /bootenv, /data, /staging) added
#                                 where a mount point has no line yet
# and checks that no rootfs overlay replaced a file the ZBot packages installed.
set -euo pipefail
target="${1:?usage: post-build.sh TARGET_DIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
ext="${BR2_EXTERNAL_ZBOT_PATH:-$repo/buildroot}"
die() { echo "zbot post-build: $*" >&2; exit 1; }

# A string option of the Buildroot configuration, with $(BR2_EXTERNAL_ZBOT_PATH) expanded.
option() {
    local v=""
    if [ -n "${BR2_CONFIG:-}" ] && [ -f "$BR2_CONFIG" ]; then
        v="$(sed -n "s/^$1=\"\(.*\)\"$/\1/p" "$BR2_CONFIG")"
    fi
    printf '%s' "${v//\$(BR2_EXTERNAL_ZBOT_PATH)/$ext}"
}
enabled() { [ -n "${BR2_CONFIG:-}" ] && grep -qx "$1=y" "$BR2_CONFIG"; }

layout="$(option BR2_PACKAGE_ZBOT_LAYOUT)"
layout="${layout:-$repo/partctl/layouts/zbot-duos.toml}"
[ -f "$layout" ] || die "the card layout $layout does not exist: set BR2_PACKAGE_ZBOT_LAYOUT (ZBot boot manager menu)"
vendor="$(option BR2_PACKAGE_ZBOT_VENDOR_ENV)"
vendor_args=()
if [ -n "$vendor" ]; then
    [ -f "$vendor" ] || die "BR2_PACKAGE_ZBOT_VENDOR_ENV=$vendor does not exist: make it with 'make u-boot-initial-env' in the vendor U-Boot tree"
    vendor_args=(--vendor-env "$vendor")
else
    echo "zbot post-build: BR2_PACKAGE_ZBOT_VENDOR_ENV is empty: /etc/u-boot-initial-env uses uboot-scripts' transcription of BOARD.md (placeholders for uImage_addr, mtdparts, riscv.fwsz)" >&2
fi

bin="$(bash "$here/host-tools.sh")"
mkdir -p "$target/etc/bootcount"
"$bin/partctl" emit fw_env.config "$layout" >"$target/etc/fw_env.config" ||
    die "partctl emit fw_env.config $layout failed"
"$bin/partctl" emit slots "$layout" >"$target/etc/bootcount/slots.toml" ||
    die "partctl emit slots $layout failed"
"$bin/uboot-scripts" --layout "$layout" "${vendor_args[@]}" default-env >"$target/etc/u-boot-initial-env" ||
    die "uboot-scripts default-env for $layout failed"

touch "$target/etc/fstab"
"$bin/partctl" emit fstab "$layout" | while read -r dev mnt rest; do
    case "$dev" in ''|'#'*) continue ;; esac
    if ! awk -v m="$mnt" '$1 !~ /^#/ && $2 == m { found = 1 } END { exit !found }' "$target/etc/fstab"; then
        printf '%s\t%s\t%s\n' "$dev" "$mnt" "$rest" >>"$target/etc/fstab"
        mkdir -p "$target$mnt"
    fi
done

# Overlays are copied after the packages: one that still carries the seed's files would
# silently replace ours.
same() {
    cmp -s "$repo/$1" "$target/$2" ||
        die "$2 in the target is not $1 of the workspace: a rootfs overlay (the SDK's?) replaced it; delete it from the overlay"
}
if enabled BR2_PACKAGE_ZBOT_BOOTCOUNT; then
    same bootcount/dist/S95bootcount etc/init.d/S95bootcount
fi
if enabled BR2_PACKAGE_ZBOT_UPDATER_SWUPDATE_CONFIG; then
    same updater/dist/swupdate.cfg etc/swupdate/swupdate.cfg
    same updater/dist/S98swupdate etc/init.d/S98swupdate
    same updater/dist/S97zbot-status etc/init.d/S97zbot-status
fi
if enabled BR2_PACKAGE_ZBOT_UPDATER_AGENT_INIT; then
    same updater/dist/S98zbot-agent etc/init.d/S98zbot-agent
fi
# fw_printenv/fw_setenv: ours (links to fw-env) or libubootenv's/uboot-tools', never a mix.
if enabled BR2_PACKAGE_ZBOT_FW_ENV_DROPIN; then
    for t in fw_printenv fw_setenv; do
        [ "$(readlink "$target/usr/bin/$t" 2>/dev/null)" = fw-env ] ||
            die "/usr/bin/$t is not fw-env's link: another package or overlay installed its own"
    done
fi
echo "zbot post-build: fw_env.config, u-boot-initial-env, bootcount/slots.toml and fstab from $layout"
