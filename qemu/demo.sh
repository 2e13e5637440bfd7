#!/usr/bin/env bash
# The update demo on real U-Boot, Linux and SWUpdate under QEMU (docs/qemu.md, "The update over
# the network"): a robot's healthy boot; a good package (made by `zbot-updater pack`, signed)
# pushed with `zbot-updater update 127.0.0.1 FILE.swu --port PORT` while it runs rootfs (the
# agent reboots it into recovery for a client holding its secret, SWUpdate 2022.12 installs,
# the trial commits); three bad packages, each rolled back to the recovery system with its
# reason (unhealthy: 1 attempt; hanging init and unusable root: 3 attempts, the hang
# power-cycled by the harness's watchdog); then the good package again, pushed to recovery.
# Every boot with the env before it, the slot U-Boot chose, the health verdict, how it ended and
# how the environment changed; the client's lines; then a summary per update: exit code and
# outcome, the push's time by stage, boots, trial boots, U-Boot's saves, env writes. It fails,
# like the test it is, when any exit code, outcome or number of trial boots is not the expected
# one.
#
# Usage: qemu/demo.sh     (installs what is missing on Debian 12, builds, plays)
# The log of every boot and of the client: target/zbot-machine/logs/demo.log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" = 0 ]; then bash "$root/scripts/setup-debian.sh"; else sudo bash "$root/scripts/setup-debian.sh"; fi
cd "$root"
exec cargo test -q --locked -p zbot-tests --test lifecycle_network demo -- --ignored --exact --nocapture
