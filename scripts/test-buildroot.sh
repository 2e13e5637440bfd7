#!/usr/bin/env bash
# The BR2_EXTERNAL tree's board scripts, run as Buildroot runs them, outside Buildroot:
# post-build.sh on an empty target directory with a minimal .config, then post-image.sh making
# a card from a scaled-down copy of the board's layout (the same partitions, contents and env,
# smaller sizes) with stand-in fip.bin/boot.sd and ext4 images; then the card is checked
# with partctl check, its /uboot.env read back with fw-env, and its FAT with mtools.
# The tree's static checks (every path named exists, every symbol is defined) are
# tests/tests/buildroot_tree.rs; Buildroot's utils/check-package results are in
# buildroot/README.md.
#
# Prints `test result:` lines (scripts/test.sh counts them). Exit 1 on a failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fail() { echo "test-buildroot: $*" >&2; echo "test result: FAILED. 0 passed; 1 failed (buildroot board scripts: $*)"; exit 1; }

cargo build -q --locked -p partctl -p uboot-scripts -p fw-env || fail "cargo build of the host tools failed"
export ZBOT_HOST_TOOLS="${CARGO_TARGET_DIR:-$root/target}/debug"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The board's layout, scaled down: same partitions, contents, GUIDs and env.
sed -e 's/^size = "128M"/size = "34M"/' -e 's/^size = "125M"/size = "4M"/' \
    -e 's/^size = "275M"/size = "4M"/' -e 's/^size = "50M"/size = "1M"/' \
    -e 's/^size = "300M"/size = "2M"/' partctl/layouts/zbot-duos.toml >"$work/layout.toml"
cat >"$work/.config" <<CFG
BR2_PACKAGE_ZBOT_LAYOUT="$work/layout.toml"
BR2_PACKAGE_ZBOT_VENDOR_ENV=""
CFG
mkdir -p "$work/target/etc" "$work/images"
printf '/dev/root\t/\text2\trw,noauto\t0\t1\n' >"$work/target/etc/fstab"
BR2_CONFIG="$work/.config" BR2_EXTERNAL_ZBOT_PATH="$root/buildroot" \
    bash buildroot/board/zbot-duos/post-build.sh "$work/target" >"$work/post-build.log" 2>&1 ||
    { cat "$work/post-build.log" >&2; fail "post-build.sh failed"; }
P="$ZBOT_HOST_TOOLS/partctl"
cmp -s <("$P" emit fw_env.config "$work/layout.toml") "$work/target/etc/fw_env.config" || fail "fw_env.config is not the layout's"
cmp -s <("$P" emit slots "$work/layout.toml") "$work/target/etc/bootcount/slots.toml" || fail "slots.toml is not the layout's"
grep -q '^sdboot=run zbot-policy$' "$work/target/etc/u-boot-initial-env" || fail "u-boot-initial-env lacks the board's sdboot"
grep -q '^othbootargs=' "$work/target/etc/u-boot-initial-env" || fail "u-boot-initial-env lacks the vendor's othbootargs"
for m in /boot /bootenv /data /staging; do
    awk -v m="$m" '$2 == m { f = 1 } END { exit !f }' "$work/target/etc/fstab" || fail "fstab has no $m line"
done
grep -q '^/dev/root' "$work/target/etc/fstab" || fail "post-build dropped the existing fstab line"
echo "test result: ok. 1 passed; 0 failed (buildroot post-build.sh: fw_env.config, slots.toml, u-boot-initial-env, fstab)"

head -c 4096 /dev/urandom >"$work/fip.bin"
head -c 8192 /dev/urandom >"$work/boot.sd"
for fs in otafs rootfs; do
    mkfs.ext4 -q -F -L "$fs" "$work/$fs.ext4" 3M >/dev/null 2>&1 || fail "mkfs.ext4 for the stand-in $fs image"
done
cp "$work/rootfs.ext4" "$work/images/rootfs.ext4"
# Without the recovery system's image: refused, naming the option.
if bash buildroot/board/zbot-duos/post-image.sh "$work/images" --fip "$work/fip.bin" \
    --boot-sd "$work/boot.sd" >"$work/post-image.log" 2>&1; then
    fail "post-image.sh without --otafs succeeded"
fi
grep -q -- "--otafs FILE is missing" "$work/post-image.log" ||
    { cat "$work/post-image.log" >&2; fail "post-image.sh did not name the missing --otafs"; }
[ ! -e "$work/images/zbot-sd.img" ] || fail "post-image.sh wrote a card without --otafs"
BR2_CONFIG="$work/.config" TARGET_DIR="$work/target" BR2_EXTERNAL_ZBOT_PATH="$root/buildroot" \
    bash buildroot/board/zbot-duos/post-image.sh "$work/images" --fip "$work/fip.bin" --boot-sd "$work/boot.sd" \
    --otafs "$work/otafs.ext4" >"$work/post-image.log" 2>&1 ||
    { cat "$work/post-image.log" >&2; fail "post-image.sh failed"; }
img="$work/images/zbot-sd.img"
"$P" check --layout "$work/layout.toml" "$img" >/dev/null || fail "partctl check of the card"
# The FAT holds fip.bin and boot.sd; MBR entry 1 mirrors it (partctl check verified that).
start="$(sfdisk --json "$img" | jq '.partitiontable.partitions[0].start')"
for f in fip.bin boot.sd; do
    mcopy -n -i "$img@@$((start * 512))" "::$f" "$work/got-$f" || fail "$f is not on the boot partition"
    cmp -s "$work/$f" "$work/got-$f" || fail "$f on the card differs"
done
# /uboot.env: the default env with next_boot=rootfs, at the layout's size, read by fw-env
# through the card's own fw_env.config (the env partition's filesystem extracted).
p2="$(sfdisk --json "$img" | jq '.partitiontable.partitions[1] | "\(.start) \(.size)"' -r)"
dd if="$img" of="$work/p2.img" bs=512 skip="${p2% *}" count="${p2#* }" status=none
debugfs -R "dump /uboot.env $work/uboot.env" "$work/p2.img" >/dev/null 2>&1 || fail "no /uboot.env on the env partition"
size="$(awk '!/^#/ && NF >= 3 { print $3 }' "$work/target/etc/fw_env.config")"
[ "$(stat -c %s "$work/uboot.env")" = "$((size))" ] || fail "/uboot.env is not $size bytes (the layout's env size)"
printf '%s 0x0000 %s\n' "$work/uboot.env" "$size" >"$work/fw_env.config"
[ "$("$ZBOT_HOST_TOOLS/fw-env" -c "$work/fw_env.config" get next_boot 2>&1)" = rootfs ] ||
    fail "the card's env does not boot rootfs: $("$ZBOT_HOST_TOOLS/fw-env" -c "$work/fw_env.config" get next_boot 2>&1)"
[ "$("$ZBOT_HOST_TOOLS/fw-env" -c "$work/fw_env.config" get sdboot 2>&1)" = "run zbot-policy" ] ||
    fail "the card's env has not the board's sdboot"
echo "test result: ok. 1 passed; 0 failed (buildroot post-image.sh: card from the layout, checked; /uboot.env next_boot=rootfs)"
