#!/usr/bin/env bash
# Build the QEMU lifecycle machine's SD card image and everything around it (docs/qemu.md).
#
# Usage: qemu/make-image.sh OUT_DIR
#
# OUT_DIR receives:
#   disk.img              the card: GPT, the board's six partitions scaled down (below)
#   u-boot-initial-env    U-Boot's compiled-in default env (normalised text; also installed
#                         as /etc/u-boot-initial-env in every slot, for fw-env/bootcount)
#   image-env.txt         the env the fresh image holds in /uboot.env (defaults + next_boot=rootfs)
#   uboot.env             that env as an image of the layout's env size (fw-env mkimage)
#   vmlinuz initrd.img    the shared kernel (Debian amd64) and initramfs, also on p1
#   otafs.ext4 rootfs.ext4               the slots as installed on the card (image v1)
#   update-good.ext4 update-unhealthy.ext4 update-hang.ext4 update-garbage.img
#                         update packages for the scenarios (a good v2; one whose health check
#                         fails; one whose init hangs; one that is not a filesystem at all)
#   machine.env           shell assignments: paths, partition numbers and byte offsets
#
# The card is qemu/machine/layout.toml (the board's card on a virtio disk, sizes scaled down;
# docs/partctl.md), made by `partctl create qemu/machine/layout.toml disk.img --input DIR`:
# hybrid GPT/MBR as on the board, the env filesystem made so U-Boot can write it. partctl is the
# only partitioner; the partition offsets in machine.env are read back with `partctl check --json`.
#
# Inputs (environment):
#   ZBOT_POLICY_ENV     the boot policy part of the default env (default:
#                       qemu/machine/env/placeholder-policy.env; the drop-in point for the
#                       generated script of uboot-scripts, see docs/qemu.md)
#   ZBOT_STATIC_BIN_DIR directory with static x86_64 fw-env, bootcount and partctl binaries
#                       (default: built here with cargo into target/zbot-static, about a
#                       minute the first time)
#   ZBOT_CACHE          cache root (kernel download), default ~/.cache/zbot
# Needs (scripts/setup-debian.sh): busybox-static, cpio, kmod, dosfstools, mtools, e2fsprogs,
# jq; the Rust toolchain (x86_64-unknown-linux-gnu, glibc's static libc.a from libc6-dev).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
m="$here/machine"
die() {
    echo "make-image: error: $*" >&2
    exit 1
}
log() { [ "${ZBOT_QUIET:-0}" = 1 ] || echo "make-image: $*" >&2; }
need() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ||
        die "'$1' not found (Debian package $2); run: sudo scripts/setup-debian.sh"
}
export PATH="$PATH:/usr/sbin:/sbin"
need busybox busybox-static
need cpio cpio
need mkfs.vfat dosfstools
need mcopy mtools
need mke2fs e2fsprogs
need resize2fs e2fsprogs
need ldd libc-bin
need jq jq
need gzip gzip

[ $# -eq 1 ] || die "usage: qemu/make-image.sh OUT_DIR"
out="$1"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$out/.work"
rm -rf "$work"
mkdir -p "$work"

busybox_bin="$(command -v busybox)"
file -L "$busybox_bin" 2>/dev/null | grep -q 'statically linked' ||
    die "$busybox_bin is not statically linked: install busybox-static (scripts/setup-debian.sh)"

# --- our static binaries ---------------------------------------------------------------------
bins="${ZBOT_STATIC_BIN_DIR:-}"
if [ -z "$bins" ]; then
    log "building static fw-env and bootcount (cargo, target/zbot-static)"
    # A target dir of its own: `cargo test` may hold the lock of the normal one while a test
    # runs this script, and RUSTFLAGS differ.
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$repo/target/zbot-static" \
        cargo build --quiet --release --locked --target x86_64-unknown-linux-gnu -j"${ZBOT_JOBS:-2}" \
        -p fw-env -p bootcount -p partctl) >&2 || die "cargo build of the static binaries failed"
    bins="$repo/target/zbot-static/x86_64-unknown-linux-gnu/release"
fi
for b in fw-env bootcount partctl; do
    [ -x "$bins/$b" ] || die "$bins/$b missing"
    file -L "$bins/$b" | grep -q 'static' || die "$bins/$b is not statically linked"
done

# --- kernel ------------------------------------------------------------------------------------
eval "$(bash "$here/fetch-kernel.sh")"
: "${ZBOT_KERNEL_IMAGE:?}" "${ZBOT_KERNEL_MODULES:?}"
cp "$ZBOT_KERNEL_IMAGE" "$out/vmlinuz"

# --- environment -------------------------------------------------------------------------------
bash "$here/machine-env.sh" >"$out/u-boot-initial-env" || die "composing the default env failed"
grep -q '^bootcmd=' "$out/u-boot-initial-env" || die "no bootcmd in the default env (ZBOT_POLICY_ENV?)"
# The fresh image boots the main system: /uboot.env = defaults with next_boot=rootfs.
sed 's/^next_boot=.*/next_boot=rootfs/' "$out/u-boot-initial-env" >"$out/image-env.txt"
grep -qx 'next_boot=rootfs' "$out/image-env.txt" || echo 'next_boot=rootfs' >>"$out/image-env.txt"
# CONFIG_ENV_SIZE as the layout says it (the data line of its fw_env.config: file offset size).
env_size="$("$bins/partctl" emit fw_env.config "$m/layout.toml" | awk '!/^#/ { print $3 }')"
[ -n "$env_size" ] || die "the layout $m/layout.toml has no env partition"
"$bins/fw-env" mkimage --size "$env_size" "$out/image-env.txt" "$out/uboot.env" ||
    die "fw-env mkimage failed"

# --- initramfs ---------------------------------------------------------------------------------
ird="$work/initramfs"
mkdir -p "$ird"/{bin,sbin,dev,proc,sys,etc,newroot,lib/modules}
cp "$busybox_bin" "$ird/bin/busybox"
for a in sh mount umount mkdir sleep cat insmod switch_root echo; do ln -s busybox "$ird/bin/$a"; done
ln -s ../bin/busybox "$ird/sbin/switch_root"
mknod -m 600 "$ird/dev/console" c 5 1
cp "$m/initramfs/init" "$ird/init"
# Modules and their dependencies, dependencies first (modules.dep lists a module's needs).
moddir="$ZBOT_KERNEL_MODULES"
declare -A seen=()
order=()
add_mod() {
    local name="$1" rel deps d
    rel="$(grep -E "(^|/)${name}\.ko:" "$moddir/modules.dep" | head -n1 | cut -d: -f1)"
    [ -n "$rel" ] || die "module $name not in $moddir/modules.dep"
    [ -z "${seen[$rel]:-}" ] || return 0
    seen[$rel]=1
    deps="$(grep -E "^${rel//./\\.}:" "$moddir/modules.dep" | cut -d: -f2)"
    for d in $deps; do
        d="$(basename "$d" .ko)"
        add_mod "$d"
    done
    order+=("$rel")
}
# virtio disk, ext4 (crc32c for its checksums), the i6300esb watchdog for scenarios that use it.
for mod in virtio_pci virtio_blk crc32c_generic ext4 i6300esb; do add_mod "$mod"; done
for rel in "${order[@]}"; do
    mkdir -p "$ird/lib/modules/$(dirname "$rel")"
    cp "$moddir/$rel" "$ird/lib/modules/$rel"
done
printf '%s\n' "${order[@]}" >"$ird/etc/modules.order"
(cd "$ird" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -1 -n >"$out/initrd.img"

# --- root filesystems --------------------------------------------------------------------------
slot_size=16M
# resize2fs and e2fsck as the board gets them: e2fsprogs' dynamically linked programs
# (Buildroot: BR2_PACKAGE_E2FSPROGS_RESIZE2FS, _E2FSCK) with their shared libraries, here
# Debian's, at the same paths (ld.so, libc, libext2fs, libe2p, libcom_err, libblkid, libuuid:
# about 3 MB). BusyBox has neither: resize2fs grows the mounted /staging online after `partctl
# grow staging` (scenario 7); e2fsck checks the env partition before it is mounted
# (bootcount/dist/fsck-bootenv).
e2fs_bins=()
e2fs_libs=()
for prog in resize2fs e2fsck; do
    bin="$(command -v "$prog")" || die "$prog not found (e2fsprogs)"
    e2fs_bins+=("$bin")
    while IFS= read -r lib; do e2fs_libs+=("$lib"); done < <(
        ldd "$bin" | sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p'
    )
done
[ "${#e2fs_libs[@]}" -ge 4 ] || die "ldd found no shared libraries for ${e2fs_bins[*]}"
add_e2fsprogs() { # add_e2fsprogs SLOT_DIR
    local d="$1" bin lib
    for bin in "${e2fs_bins[@]}"; do
        rm -f "$d/usr/sbin/$(basename "$bin")"
        cp -L "$bin" "$d/usr/sbin/$(basename "$bin")"
    done
    for lib in "${e2fs_libs[@]}"; do
        mkdir -p "$d$(dirname "$lib")"
        cp -L "$lib" "$d$lib"
    done
}
# stage DIR ROLE IMAGE-NAME HEALTH HANG
stage() {
    local d="$1" role="$2" name="$3" health="$4" hang="$5"
    mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,var/log,var/lock,bootenv,data,staging}
    mkdir -p "$d/etc/bootcount"
    cp "$busybox_bin" "$d/bin/busybox"
    local app
    while IFS= read -r app; do
        [ "$app" != bin/busybox ] || continue
        [ -e "$d/$app" ] || ln -s /bin/busybox "$d/$app"
    done < <("$busybox_bin" --list-full)
    cp -a "$m/rootfs/." "$d/"
    [ "$role" != otafs ] || cp -a "$m/otafs/." "$d/"
    cp "$bins/fw-env" "$d/usr/bin/fw-env"
    ln -s fw-env "$d/usr/bin/fw_printenv"
    ln -s fw-env "$d/usr/bin/fw_setenv"
    cp "$bins/bootcount" "$d/usr/bin/bootcount"
    # partctl in every slot: `partctl check /dev/vda` on the running system (scenario 7).
    cp "$bins/partctl" "$d/usr/sbin/partctl"
    add_e2fsprogs "$d"
    cp "$m/layout.toml" "$d/etc/zbot-layout.toml"
    cp "$repo/bootcount/dist/S95bootcount" "$d/etc/init.d/S95bootcount"
    cp "$repo/bootcount/dist/fsck-bootenv" "$d/etc/init.d/fsck-bootenv"
    cp -a "$repo/bootcount/dist/health.d" "$d/etc/bootcount/"
    cp "$m/rootfs/etc/bootcount/health.d/required.d/90-zbot-test" "$d/etc/bootcount/health.d/required.d/"
    "$bins/partctl" emit slots "$m/layout.toml" >"$d/etc/bootcount/slots.toml" ||
        die "partctl emit slots $m/layout.toml failed"
    cp "$out/u-boot-initial-env" "$d/etc/u-boot-initial-env"
    echo "$name" >"$d/etc/zbot-image"
    printf 'ZBOT_TEST_HEALTH=%s\nZBOT_TEST_HANG=%s\n' "$health" "$hang" >"$d/etc/zbot-test.conf"
}
mkext4() { # mkext4 IMAGE LABEL SIZE [DIR]
    rm -f "$1"
    mke2fs -q -F -t ext4 -L "$2" ${4:+-d "$4"} "$1" "$3" >/dev/null || die "mke2fs of $1 failed"
}
mkslot() { # mkslot OUT ROLE NAME HEALTH HANG
    local d
    d="$work/stage-$(basename "$1")"
    stage "$d" "$2" "$3" "$4" "$5"
    mkext4 "$1" "$2" "$slot_size" "$d"
}
mkslot "$out/otafs.ext4" otafs "otafs v1" pass 0
mkslot "$out/rootfs.ext4" rootfs "rootfs v1" pass 0
mkslot "$out/update-good.ext4" rootfs "rootfs v2" pass 0
mkslot "$out/update-unhealthy.ext4" rootfs "rootfs v2-unhealthy" fail 0
mkslot "$out/update-hang.ext4" rootfs "rootfs v2-hang" pass 1
# Not a filesystem: the kernel (initramfs) cannot mount root and panics -> reboot.
head -c 1048576 /dev/urandom >"$out/update-garbage.img"

# --- the card ----------------------------------------------------------------------------------
img="$out/disk.img"
rm -f "$img"
partition_with_partctl() {
    local input="$work/partctl-input"
    mkdir -p "$input"
    cp "$out/vmlinuz" "$out/initrd.img" "$out/uboot.env" "$out/otafs.ext4" "$out/rootfs.ext4" "$input/"
    mkdir -p "$input/staging/pending"
    "$bins/partctl" create "$m/layout.toml" "$img" --input "$input" >/dev/null ||
        die "partctl create $m/layout.toml failed"
}
[ -x "$bins/partctl" ] || die "$bins/partctl missing"
partition_with_partctl
# The card as partctl reads it back (exit 0: sound): partition N's byte offset.
report="$("$bins/partctl" check "$img" --json)" || die "partctl check of the new card failed"
{
    echo "# written by qemu/make-image.sh"
    echo "ZBOT_DISK='$img'"
    echo "ZBOT_KERNEL_VERSION='$ZBOT_KERNEL_VERSION'"
    jq -r '.partitions[] | "ZBOT_P\(.[0])_OFFSET=\(.[1].first_lba * 512)"' <<<"$report"
} >"$out/machine.env"
rm -rf "$work"
log "image ready: $img"
