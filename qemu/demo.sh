#!/usr/bin/env bash
# The lifecycle demo on real U-Boot and Linux under QEMU (docs/qemu.md): a robot's healthy boot,
# a good update through otafs, a bad update rolled back after the boot limit with its reason,
# and the good update installed again from recovery; every boot with the slot U-Boot chose,
# the health verdict and how the environment changed, then a one-screen summary.
#
# Usage: qemu/demo.sh     (installs what is missing on Debian 12, builds, plays; ~3 min)
# Needs the generated boot script: automatic once uboot-scripts' generator is in the workspace,
# else set ZBOT_POLICY_ENV to its output (`uboot-scripts --slots qemu/machine/slots.toml
# --board qemu default-env`). The log of every boot: target/zbot-machine/logs/demo.log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" = 0 ]; then bash "$root/scripts/setup-debian.sh"; else sudo bash "$root/scripts/setup-debian.sh"; fi
cd "$root"
exec cargo test -q --locked -p zbot-tests --test lifecycle_policy demo -- --ignored --exact --nocapture
