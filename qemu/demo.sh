#!/usr/bin/env bash
# The lifecycle demo on real U-Boot and Linux under QEMU (docs/qemu.md): a robot's healthy boot,
# a good update through otafs (install, trial, commit), then three bad updates, each rolled back
# to the recovery system (otafs), where `bootcount status` shows the reason and `bootcount ack`
# clears it: one that fails its health check (1 attempt, "health: ..."), one whose init hangs
# (the harness's watchdog power-cycles each of the 3 attempts, "bootlimit"), one whose root
# filesystem is unusable (kernel panic, 3 attempts, "bootlimit"); then the good update installed
# again from recovery, ending healthy in rootfs v2. Every boot with the env before it, the slot
# U-Boot chose, the health verdict, how it ended and how the environment changed, then a
# one-screen summary per update; it fails, like the test it is, if a bad update does not end in
# otafs after exactly its attempts with its reason.
#
# Usage: qemu/demo.sh     (installs what is missing on Debian 12, builds, plays; 21 boots,
#                          ~3 min on an idle 2-core host, ~5 min shared with another QEMU)
# Needs the generated boot script: automatic once uboot-scripts' generator is in the workspace,
# else set ZBOT_POLICY_ENV to its output (`uboot-scripts --layout qemu/machine/layout.toml
# --board qemu default-env`). The log of every boot: target/zbot-machine/logs/demo.log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" = 0 ]; then bash "$root/scripts/setup-debian.sh"; else sudo bash "$root/scripts/setup-debian.sh"; fi
cd "$root"
exec cargo test -q --locked -p zbot-tests --test lifecycle_policy demo -- --ignored --exact --nocapture
