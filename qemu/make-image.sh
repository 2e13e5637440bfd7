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
#   otafs.ext4 rootfs.ext4               the slots as installed on the card (image v1, 1.0):
#                         otafs runs Debian's SWUpdate 2022.12 (updater/dist/S98swupdate), every
#                         main system `zbot-updater agent` (static, no OpenSSL)
#   keys/                 release.key/.crt (the robots' -k certificate), other.key/.crt (a key
#                         the robots do not trust), made here with openssl
#   swu/                  the packages, made by `zbot-updater pack` (see "packages" below)
#                         from root filesystems built here and not kept: good.swu (rootfs v2),
#                         unhealthy (its health check fails), hang (its init hangs), garbage
#                         (not a filesystem at all)
#   machine.env           shell assignments: paths, partition numbers and byte offsets, the
#                         host's zbot-updater (ZBOT_UPDATER)
#
# The card is qemu/machine/layout.toml (the board's card on a virtio disk, sizes scaled down;
# docs/partctl.md), made by `partctl create qemu/machine/layout.toml disk.img --input DIR`:
# hybrid GPT/MBR as on the board, the env filesystem made so U-Boot can write it. partctl is the
# only partitioner; the partition offsets in machine.env are read back with `partctl check --json`.
#
# Inputs (environment):
#   ZBOT_POLICY_ENV     the boot policy part of the default env (default: the script
#                       uboot-scripts generates from the layout; qemu/machine-env.sh)
#   ZBOT_STATIC_BIN_DIR directory with static x86_64 fw-env, bootcount, partctl and
#                       zbot-updater (its agent build: --no-default-features) binaries
#                       (default: built here with cargo into target/zbot-static, about a
#                       minute the first time)
#   ZBOT_UPDATER        the host's zbot-updater (pack, update) (default: built here with cargo
#                       into target/zbot-host, about a minute the first time)
#   ZBOT_CACHE          cache root (kernel download), default ~/.cache/zbot
# Needs (scripts/setup-debian.sh): busybox-static, cpio, kmod, dosfstools, mtools, e2fsprogs,
# jq, swupdate (its program and libraries go into otafs), openssl; the Rust toolchain (x86_64-unknown-linux-gnu, glibc's static libc.a from libc6-dev).
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
need swupdate swupdate
need openssl openssl

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
    log "building static fw-env, bootcount, partctl and the agent (cargo, target/zbot-static)"
    # A target dir of its own: `cargo test` may hold the lock of the normal one while a test
    # runs this script, and RUSTFLAGS differ.
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$repo/target/zbot-static" \
        cargo build --quiet --release --locked --target x86_64-unknown-linux-gnu -j"${ZBOT_JOBS:-2}" \
        -p fw-env -p bootcount -p partctl) >&2 || die "cargo build of the static binaries failed"
    # The robot's agent: no default features (no OpenSSL, zlib, zstd), as on the board.
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$repo/target/zbot-static" \
        cargo build --quiet --release --locked --target x86_64-unknown-linux-gnu -j"${ZBOT_JOBS:-2}" \
        -p zbot-updater --no-default-features) >&2 || die "cargo build of the static agent failed"
    bins="$repo/target/zbot-static/x86_64-unknown-linux-gnu/release"
fi
for b in fw-env bootcount partctl zbot-updater; do
    [ -x "$bins/$b" ] || die "$bins/$b missing"
    file -L "$bins/$b" | grep -q 'static' || die "$bins/$b is not statically linked"
done
# The host's zbot-updater (pack, update): the normal build, OpenSSL linked dynamically.
updater="${ZBOT_UPDATER:-}"
if [ -z "$updater" ]; then
    log "building the host's zbot-updater (cargo, target/zbot-host)"
    (cd "$repo" && CARGO_TARGET_DIR="$repo/target/zbot-host" \
        cargo build --quiet --release --locked -j"${ZBOT_JOBS:-2}" -p zbot-updater) >&2 ||
        die "cargo build of zbot-updater failed"
    updater="$repo/target/zbot-host/release/zbot-updater"
fi
[ -x "$updater" ] || die "$updater missing"

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
# virtio disk, ext4 (crc32c for its checksums), the i6300esb watchdog for scenarios that use it,
# virtio_net for the update's network (QEMU user networking, forwards on the host's 127.0.0.1).
for mod in virtio_pci virtio_blk crc32c_generic ext4 i6300esb virtio_net; do add_mod "$mod"; done
for rel in "${order[@]}"; do
    mkdir -p "$ird/lib/modules/$(dirname "$rel")"
    cp "$moddir/$rel" "$ird/lib/modules/$rel"
done
printf '%s\n' "${order[@]}" >"$ird/etc/modules.order"
(cd "$ird" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -1 -n >"$out/initrd.img"

# --- root filesystems --------------------------------------------------------------------------
# A slot's filesystem fills its partition: the size is the layout's (`size = "16M"` of the
# [[partition]] named so).
part_size() {
    awk -v want="$1" '/^\[\[partition\]\]/ { name = "" }
        /^name *=/ { gsub(/[" ]/, "", $0); sub(/^name=/, "", $0); name = $0 }
        /^size *=/ && name == want { gsub(/[" ]/, "", $0); sub(/^size=/, "", $0); print; exit }' "$m/layout.toml"
}
otafs_size="$(part_size otafs)"
rootfs_size="$(part_size rootfs)"
[ -n "$otafs_size" ] && [ -n "$rootfs_size" ] || die "no otafs/rootfs size in $m/layout.toml"
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
# SWUpdate in otafs as the board's recovery system runs it: Debian's 2022.12 (the board's
# version) with the shared libraries ldd lists (about 64 MB, ICU's data alone 30 MB; the
# otafs partition is sized for it in the layout), its configuration and start script as
# shipped in updater/dist, the release certificate, /etc/hwrevision.
sw_bin="$(command -v swupdate)"
sw_libs=()
while IFS= read -r lib; do sw_libs+=("$lib"); done < <(
    ldd "$sw_bin" | sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p'
)
[ "${#sw_libs[@]}" -ge 10 ] || die "ldd found no shared libraries for $sw_bin"
add_swupdate() { # add_swupdate SLOT_DIR
    local d="$1" lib
    cp -L "$sw_bin" "$d/usr/bin/swupdate"
    for lib in "${sw_libs[@]}"; do
        mkdir -p "$d$(dirname "$lib")"
        cp -L "$lib" "$d$lib"
    done
    mkdir -p "$d/etc/swupdate" "$d/var/www/swupdate"
    cp "$repo/updater/dist/swupdate.cfg" "$d/etc/swupdate/swupdate.cfg"
    cp "$repo/updater/dist/S98swupdate" "$d/etc/init.d/S98swupdate"
    cp "$repo/updater/dist/S97zbot-status" "$d/etc/init.d/S97zbot-status"
    cp "$keys/release.crt" "$d/etc/swupdate/zbot-release.pem"
    echo "zbot $hw_rev" >"$d/etc/hwrevision"
}
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
# stage DIR ROLE IMAGE-NAME HEALTH HANG VERSION
stage() {
    local d="$1" role="$2" name="$3" health="$4" hang="$5" version="$6"
    mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,var/log,var/lock,bootenv,data,staging}
    mkdir -p "$d/etc/bootcount"
    # /var/run on the tmpfs /run, as Buildroot has it (pid files of the agent and SWUpdate).
    ln -s ../run "$d/var/run"
    cp "$busybox_bin" "$d/bin/busybox"
    local app
    while IFS= read -r app; do
        [ "$app" != bin/busybox ] || continue
        [ -e "$d/$app" ] || ln -s /bin/busybox "$d/$app"
    done < <("$busybox_bin" --list-full)
    cp -a "$m/rootfs/." "$d/"
    if [ "$role" = otafs ]; then
        add_swupdate "$d"
    else
        # The main system: the agent (static, no OpenSSL; updater/dist/S98zbot-agent, as the
        # board's Buildroot package installs it), its secret on /data (per robot).
        cp "$repo/updater/dist/S98zbot-agent" "$d/etc/init.d/S98zbot-agent"
        cp "$bins/zbot-updater" "$d/usr/bin/zbot-updater"
    fi
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
    echo "$version" >"$d/etc/zbot-version"
    printf 'ZBOT_TEST_HEALTH=%s\nZBOT_TEST_HANG=%s\n' "$health" "$hang" >"$d/etc/zbot-test.conf"
}
mkext4() { # mkext4 IMAGE LABEL SIZE [DIR]
    rm -f "$1"
    mke2fs -q -F -t ext4 -L "$2" ${4:+-d "$4"} "$1" "$3" >/dev/null || die "mke2fs of $1 failed"
}
mkslot() { # mkslot OUT ROLE NAME HEALTH HANG VERSION
    local d size="$rootfs_size"
    [ "$2" != otafs ] || size="$otafs_size"
    d="$work/stage-$(basename "$1")"
    stage "$d" "$2" "$3" "$4" "$5" "$6"
    mkext4 "$1" "$2" "$size" "$d"
}
# --- keys: the release key the robots trust, and one they do not ------------------------------
hw_rev=1.1
keys="$out/keys"
rm -rf "$keys"
mkdir -p "$keys"
for k in release other; do
    openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=zbot-$k-test" -days 3650 \
        -keyout "$keys/$k.key" -out "$keys/$k.crt" 2>/dev/null || die "openssl req ($k) failed"
done
mkslot "$out/otafs.ext4" otafs "otafs v1" pass 0 1.0
mkslot "$out/rootfs.ext4" rootfs "rootfs v1" pass 0 1.0
mkslot "$work/update-good.ext4" rootfs "rootfs v2" pass 0 2.0
mkslot "$work/update-unhealthy.ext4" rootfs "rootfs v2-unhealthy" fail 0 2.1
mkslot "$work/update-hang.ext4" rootfs "rootfs v2-hang" pass 1 2.2
# Not a filesystem: the kernel (initramfs) cannot mount root and panics -> reboot.
head -c 1048576 /dev/urandom >"$work/update-garbage.img"

# --- packages: `zbot-updater pack`, signed with the release key --------------------------------
#   good.swu (2.0) unhealthy.swu (2.1) hang.swu (2.2) garbage.swu (2.3)   installed by SWUpdate
#   tampered.swu      good.swu with one byte of its image changed (hash mismatch)
#   other-key.swu     signed with a key the robots do not trust
#   unsigned.swu      good.swu's members without sw-description.sig (`zbot-updater create`)
#   wrong-hw.swu      for hardware revision 9.9 (the robots are 1.1)
#   downgrade.swu     version 0.9 (the robots run 1.0)
swu="$out/swu"
rm -rf "$swu"
mkdir -p "$swu"
pack() { # pack OUT IMAGE VERSION [KEY-NAME [HARDWARE]]
    local o="$1" i="$2" v="$3" k="${4:-release}" hw="${5:-$hw_rev}"
    "$updater" pack "$i" --version "$v" --layout "$m/layout.toml" --key "$keys/$k.key" \
        --cert "$keys/$k.crt" --hardware "$hw" --threads 2 -o "$o" >/dev/null 2>&1 ||
        die "zbot-updater pack $o failed"
}
pack "$swu/good.swu" "$work/update-good.ext4" 2.0
pack "$swu/unhealthy.swu" "$work/update-unhealthy.ext4" 2.1
pack "$swu/hang.swu" "$work/update-hang.ext4" 2.2
pack "$swu/garbage.swu" "$work/update-garbage.img" 2.3
pack "$swu/other-key.swu" "$work/update-good.ext4" 2.0 other
pack "$swu/downgrade.swu" "$work/update-good.ext4" 0.9
pack "$swu/wrong-hw.swu" "$work/update-good.ext4" 2.0 release 9.9
cp "$swu/good.swu" "$swu/tampered.swu"
size="$(stat -c %s "$swu/tampered.swu")"
# Three quarters into the file: inside the image, by far the largest member.
printf '\x5a' | dd of="$swu/tampered.swu" bs=1 seek=$((size * 3 / 4)) conv=notrunc status=none
cmp -s "$swu/good.swu" "$swu/tampered.swu" && printf '\xa5' |
    dd of="$swu/tampered.swu" bs=1 seek=$((size * 3 / 4)) conv=notrunc status=none
un="$work/unsigned"
mkdir -p "$un"
(cd "$un" && cpio -i --quiet <"$swu/good.swu") || die "unpacking good.swu failed"
rm -f "$un/sw-description.sig"
"$updater" create "$un" -o "$swu/unsigned.swu" >/dev/null 2>&1 || die "zbot-updater create unsigned.swu failed"

# --- the card ----------------------------------------------------------------------------------
img="$out/disk.img"
rm -f "$img"
partition_with_partctl() {
    local input="$work/partctl-input"
    mkdir -p "$input"
    cp "$out/vmlinuz" "$out/initrd.img" "$out/uboot.env" "$out/otafs.ext4" "$out/rootfs.ext4" "$input/"
    mkdir -p "$input/staging"
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
    echo "ZBOT_UPDATER='$updater'"
    jq -r '.partitions[] | "ZBOT_P\(.[0])_OFFSET=\(.[1].first_lba * 512)"' <<<"$report"
} >"$out/machine.env"
rm -rf "$work"
log "image ready: $img"
