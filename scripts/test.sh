#!/usr/bin/env bash
# The whole test suite: what the README calls "the test command", and what CI runs.
#
#   scripts/test.sh     the Debian packages (needs root; CI and dev machines are root, else
#                       sudo), then `cargo xtask test`: the U-Boot peers, cargo test, the
#                       robot's riscv64 binaries, the Buildroot board scripts, the fuzz smoke
#                       runs and the README's main command on an empty cache (xtask/src/suite.rs,
#                       xtask/README.md). Logs: target/zbot-test/.
#
# Bash only for what must come before cargo can be trusted to have its system packages.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
printf '\n== Debian packages\n' >&2
if [ "$(id -u)" = 0 ]; then
    bash scripts/setup-debian.sh
else
    sudo bash scripts/setup-debian.sh
fi
exec cargo run -q --locked -p xtask -- test
