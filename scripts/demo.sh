#!/usr/bin/env bash
# The project's main job, as a story a person can follow: a robot's update, a bad update and
# its rollback, step by step, with the environment before and after each step and the writes
# counted.
#
# The quick host version: the bootloader's decision is played by `bootcount bootloader-step`
# (the Rust engine the U-Boot script is proven equal to, docs/uboot-scripts.md) on the board's
# env file. The real thing, U-Boot and Linux under QEMU, is qemu/demo.sh.
#
# Usage: scripts/demo.sh   (installs what is missing on Debian 12, builds, plays the story)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" = 0 ]; then bash "$root/scripts/setup-debian.sh"; else sudo bash "$root/scripts/setup-debian.sh"; fi
cargo build -q --release -p fw-env -p bootcount -p partctl --manifest-path "$root/Cargo.toml"
bin="$root/target/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
export FW_ENV_LOCK_FILE="$work/lock"

# The board today: a robot in the field carries only the seed's variables.
printf 'next_boot=rootfs\nrootfs=root=/dev/mmcblk0p4 rootwait rw\notafs=root=/dev/mmcblk0p3 rootwait rw\nroot=root=/dev/mmcblk0p4 rootwait rw\nfirst_boot=1\n' > field-env.txt
sed 's/^next_boot=.*/next_boot=otafs/' field-env.txt > u-boot-initial-env
# The field's env size (192 KiB, BOARD.md), from the card's layout as the robot's fw_env.config.
size="$("$bin/partctl" emit fw_env.config "$root/partctl/layouts/zbot-duos.toml" | awk '!/^#/ { print $3 }')"
[ -n "$size" ] || { echo "demo: no env size from partctl emit fw_env.config partctl/layouts/zbot-duos.toml" >&2; exit 1; }
"$bin/fw-env" mkimage -s "$size" -p 0 field-env.txt uboot.env
echo "$work/uboot.env 0x0000 $size" > fw_env.config
writes=0
fp() { sha256sum uboot.env | cut -c1-16; }
bcount() { "$bin/bootcount" -c fw_env.config -f u-boot-initial-env --cmdline cmdline "$@"; }
# A userspace command, its env writes measured (the file is replaced on every write).
op() {
    local before
    before=$(fp)
    bcount "$@"
    [ "$(fp)" = "$before" ] || writes=$((writes + 1))
}
zbot_env() { "$bin/fw-env" -c fw_env.config print | grep -E '^(next_boot|zbot_)' | tr '\n' ' '; }

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
boot() { # one power-on: the bootloader step, then what the booted system does
    local before after slot
    before=$(fp)
    slot=$(bcount bootloader-step --json | tee step.json | jq -r .slot)
    jq -r .kernel_args step.json > cmdline
    after=$(fp)
    local w=0; [ "$before" != "$after" ] && w=1 && writes=$((writes + 1))
    printf '  boot -> %-7s env writes by the bootloader: %d   env: %s\n' "$slot" "$w" "$(zbot_env)"
}

echo "root=/dev/mmcblk0p4 rootwait rw zbot.slot=rootfs" > cmdline
say "1. A robot in the field, today's environment (no boot counting yet)"
"$bin/fw-env" -c fw_env.config print | sed 's/^/  /'
say "2. Healthy boots write nothing"
boot; boot
say "3. The user asks for an update: boot once into the updater (otafs)"
op boot-once otafs; boot
say "4. In otafs: the updater asks where to write (never the running slot), writes, starts the trial"
op install-target > target.txt; echo "  install target: $(cat target.txt)"
op trial rootfs --limit 3; echo "  trial of rootfs armed: $(zbot_env)"
say "5. The new rootfs boots, its health check passes, bootcount mark-good commits it"
boot
op mark-good; echo "  committed: $(zbot_env)"
boot; boot
say "6. A bad update: the new rootfs never becomes healthy (it hangs before its health check)"
op boot-once otafs; boot
op install-target >/dev/null
op trial rootfs --limit 3
for _ in 1 2 3 4; do boot; done
say "7. Back in a working slot; the reason is visible to userspace"
bcount status | sed 's/^/  /'
op ack
say "Summary"
echo "  every boot chose a bootable slot; the bad rootfs was tried exactly 3 times, then given up"
echo "  environment writes in the whole story, measured: $writes (each boot's own count is shown above)"
