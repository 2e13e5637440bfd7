#!/usr/bin/env bash
# The board's architecture end to end, under QEMU: qemu-system-riscv64 `virt` with Debian's
# OpenSBI, the ext4-env qemu-riscv64 U-Boot of qemu/build-uboot.sh running the generated
# policy, Debian trixie's riscv64 kernel, and an initramfs holding BusyBox and the robot's
# static riscv64 binaries (cargo xtask dist). Two stories, one QEMU run per boot:
#
#   healthy   next_boot=rootfs: U-Boot boots rootfs without writing, Linux's
#             `bootcount health run` passes and commits nothing
#   rollback  the rootfs sends the robot to otafs once (`bootcount boot-once otafs`); otafs
#             "installs" a broken rootfs and starts its trial (`bootcount trial rootfs`); U-Boot
#             counts the trial attempt and boots rootfs, whose health check fails: `bootcount`
#             marks rootfs bad and reboots; U-Boot then boots otafs, whose `bootcount status`
#             shows the rollback
#
# The kernel and BusyBox are fetched with `apt-get download` from trixie (riscv64), through a
# private apt configuration in the cache (the system's sources are not touched).
#
#   scripts/riscv64-machine.sh      prints each boot and `test result:` lines; exit 1 on failure
#
# Cache: ${ZBOT_CACHE:-~/.cache/zbot}/riscv64-linux. Not part of scripts/test.sh (a manual,
# longer check: docs/riscv64.md has its measured run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
die() { echo "riscv64-machine: $*" >&2; echo "test result: FAILED. 0 passed; 1 failed (riscv64 machine: $*)"; exit 1; }
cache="${ZBOT_CACHE:-$HOME/.cache/zbot}/riscv64-linux"
mkdir -p "$cache"

# 1. Binaries and tools.
bins="$(cargo run -q --locked -p xtask -- dist)" || die "cargo xtask dist failed"
cargo build -q --locked -p partctl -p fw-env -p uboot-scripts || die "host tools"
host="${CARGO_TARGET_DIR:-$root/target}/debug"
eval "$(bash qemu/build-uboot.sh qemu-riscv64)"
uboot="${ZBOT_UBOOT_QEMU_RISCV:?qemu/build-uboot.sh printed no ZBOT_UBOOT_QEMU_RISCV}"
opensbi=/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin
[ -f "$opensbi" ] || die "$opensbi missing (Debian package opensbi)"
command -v qemu-system-riscv64 >/dev/null || die "qemu-system-riscv64 missing (qemu-system-misc)"

# 2. Debian trixie's riscv64 kernel and BusyBox.
apt="$cache/apt"
if [ ! -f "$cache/extracted.stamp" ]; then
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$cache/debs"
    echo "deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$apt/sources.list"
    O=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
       -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Architectures::=riscv64
       -o APT::Architecture=riscv64 -o Debug::NoLocking=1)
    apt-get "${O[@]}" update -qq || die "apt-get update of trixie riscv64 failed"
    kpkg="$(apt-cache "${O[@]}" depends linux-image-riscv64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
    [ -n "$kpkg" ] || die "trixie has no linux-image-riscv64 dependency to download"
    (cd "$cache/debs" && apt-get "${O[@]}" download "$kpkg:riscv64" busybox-static:riscv64 2>/dev/null) ||
        die "apt-get download $kpkg busybox-static failed"
    rm -rf "$cache/x" && mkdir -p "$cache/x"
    for d in "$cache"/debs/*.deb; do dpkg-deb -x "$d" "$cache/x"; done
    touch "$cache/extracted.stamp"
fi
kernel="$(ls "$cache"/x/boot/vmlinux-*)"
kver="${kernel##*/vmlinux-}"
mods="$cache/x/usr/lib/modules/$kver/kernel"

# 3. The initramfs: BusyBox, the modules for virtio-blk and ext4, our binaries, the init.
work="$(mktemp -d)"
if [ "${ZBOT_KEEP:-0}" = 1 ]; then echo "riscv64-machine: keeping $work" >&2; else trap 'rm -rf "$work"' EXIT; fi
layout="$work/layout.toml"
sed -e 's/files = \["vmlinuz", "initrd.img"\]/files = ["Image", "initrd"]/' \
    -e 's/, dir = "staging"//' -e 's/^size = "34M"/size = "96M"/' qemu/machine/layout.toml >"$layout"
ir="$work/initramfs"
mkdir -p "$ir"/{bin,dev,proc,sys,slot,bootenv,etc/bootcount,lib/modules,tmp,run,var/lock}
cp "$cache/x/usr/bin/busybox" "$ir/bin/busybox"
for b in fw-env bootcount; do cp "$bins/$b" "$ir/bin/$b"; done
for m in lib/crc16 fs/mbcache fs/jbd2/jbd2 crypto/crc32c_generic fs/ext4/ext4 drivers/virtio/virtio_mmio drivers/block/virtio_blk; do
    xz -dc "$mods/$m.ko.xz" >"$ir/lib/modules/${m##*/}.ko" || die "module $m missing in $kver"
done
"$host/partctl" emit slots "$layout" >"$ir/etc/bootcount/slots.toml"
"$host/partctl" emit fw_env.config "$layout" >"$ir/etc/fw_env.config"
size="$(awk '!/^#/ && NF >= 3 { print $3 }' "$ir/etc/fw_env.config")"
mkdir -p "$ir/etc/bootcount/health.d/required.d"
cat >"$ir/etc/bootcount/health.d/required.d/10-slot-works" <<'EOF'
#!/bin/sh
# The slot is broken when its root filesystem says so (the "bad update" of the rollback story).
[ ! -e /slot/broken ]
EOF
chmod +x "$ir/etc/bootcount/health.d/required.d/10-slot-works"
cat >"$ir/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in crc16 mbcache jbd2 crc32c_generic ext4 virtio_mmio virtio_blk; do insmod /lib/modules/$m.ko; done
for i in $(seq 50); do [ -b /dev/vda4 ] && break; sleep 0.2; done
root="$(sed -n 's/.*root=\([^ ]*\).*/\1/p' /proc/cmdline)"
mount -t ext4 /dev/vda2 /bootenv
mount -t ext4 "$root" /slot
echo "@@linux slot=$(sed -n 's/.*zbot\.slot=\([^ ]*\).*/\1/p' /proc/cmdline) root=$root arch=$(uname -m)"
echo "@@cmdline $(cat /proc/cmdline)"
export BOOTCOUNT_REBOOT_CMD="echo @@reboot"
B="bootcount -c /etc/fw_env.config --slots /etc/bootcount/slots.toml"
$B health run --dir /etc/bootcount/health.d --timeout 20
echo "@@health exit=$?"
if [ -x /slot/on-boot ]; then
    echo "@@on-boot: $(cat /slot/on-boot | tail -1)"
    /slot/on-boot
    rm -f /slot/on-boot
fi
$B status --json | tr -d '\n'; echo
echo "@@status $($B status | tr '\n' ' ')"
sync; umount /slot; umount /bootenv
echo "@@poweroff"
poweroff -f
EOF
chmod +x "$ir/init"

# 4. The card: the generated policy with a zbot-bootm that boots the kernel.
mkdir -p "$work/in" "$work/slot"
cp "$kernel" "$work/in/Image"
"$host/uboot-scripts" --layout "$layout" --board qemu default-env |
    grep -v -e '^zbot-bootm=' -e '^next_boot=' >"$work/env.txt"
cat >>"$work/env.txt" <<'EOF'
next_boot=rootfs
bootargs_base=console=ttyS0 earlycon=sbi
kernel_addr_r=0x84000000
ramdisk_addr_r=0x88300000
zbot-bootm=load virtio 0:1 ${kernel_addr_r} Image && load virtio 0:1 ${ramdisk_addr_r} initrd && booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}
EOF
"$host/fw-env" mkimage --size "$size" "$work/env.txt" "$work/in/uboot.env" || die "fw-env mkimage"
cp "$work/env.txt" "$ir/etc/u-boot-initial-env"
(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/in/initrd" || die "cpio"
BC="bootcount -c /etc/fw_env.config --slots /etc/bootcount/slots.toml"
for s in otafs rootfs; do
    echo "$s" >"$work/slot/name"
    if [ "$s" = rootfs ]; then
        # The main system sends the robot to its updater once (what the agent does).
        printf '#!/bin/sh\n%s boot-once otafs\n' "$BC" >"$work/slot/on-boot"
    else
        # The updater installs a bad main system and starts its trial.
        printf '#!/bin/sh\nmkdir -p /tmp/r && mount -t ext4 /dev/vda4 /tmp/r && touch /tmp/r/broken && umount /tmp/r && %s trial rootfs\n' "$BC" >"$work/slot/on-boot"
    fi
    chmod +x "$work/slot/on-boot"
    mkfs.ext4 -q -F -L "$s" -d "$work/slot" "$work/in/$s.ext4" 8M >/dev/null 2>&1 || die "mkfs.ext4 $s"
done
img="$work/card.img"
"$host/partctl" create --input "$work/in" "$layout" "$img" >/dev/null || die "partctl create"

# 5. Boot, one QEMU run per boot (`poweroff` or bootcount's reboot ends it).
boot() {
    timeout "${ZBOT_BOOT_TIMEOUT:-180}" qemu-system-riscv64 -M virt -m 512M -smp 1 -nographic -no-reboot \
        -bios "$opensbi" -kernel "$uboot" \
        -drive "file=$img,format=raw,if=none,id=hd0" -device virtio-blk-device,drive=hd0 \
        2>&1 | tr -d '\r' >"$work/boot$1.log" || true
    grep -E "^@@" "$work/boot$1.log" | sed "s/^/  boot $1: /" >&2 || true
    grep -q "^@@poweroff" "$work/boot$1.log" || { tail -30 "$work/boot$1.log" >&2; die "boot $1 did not reach the end of the init"; }
}
t0=$(date +%s)
boot 1
grep -q "^@@linux slot=rootfs root=/dev/vda4 arch=riscv64" "$work/boot1.log" || die "boot 1 did not boot rootfs on riscv64"
grep -q "^@@health exit=0" "$work/boot1.log" || die "boot 1: rootfs not healthy"
grep -q "rootfs is healthy: nothing to commit" "$work/boot1.log" || die "boot 1: the health check wrote or judged otherwise"
grep -q "Saving Environment" "$work/boot1.log" && die "boot 1: U-Boot wrote the environment on a healthy boot"
echo "test result: ok. 1 passed; 0 failed (riscv64 machine: healthy boot of rootfs)"
boot 2
grep -q "^@@linux slot=otafs root=/dev/vda3" "$work/boot2.log" || die "boot 2 (boot-once) did not boot otafs"
boot 3
grep -q "^@@linux slot=rootfs" "$work/boot3.log" || die "boot 3 (the trial) did not boot rootfs"
grep -q "Saving Environment" "$work/boot3.log" || die "boot 3: U-Boot did not count the trial attempt"
grep -q "^@@health exit=1" "$work/boot3.log" || die "boot 3: the broken rootfs was not found unhealthy"
grep -q "^@@reboot" "$work/boot3.log" || die "boot 3: bootcount did not reboot after marking rootfs bad"
boot 4
grep -q "^@@linux slot=otafs root=/dev/vda3" "$work/boot4.log" || die "boot 4 did not roll back to otafs"
grep -q "^@@status .*last rollback: rootfs (health: required check 10-slot-works failed" "$work/boot4.log" ||
    die "boot 4: bootcount status does not show the rollback"
echo "test result: ok. 1 passed; 0 failed (riscv64 machine: boot-once to otafs, bad update's trial rolled back to otafs)"
echo "riscv64-machine: 4 boots in $(( $(date +%s) - t0 )) s; kernel $kver" >&2
