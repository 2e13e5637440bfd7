#!/usr/bin/env bash
# The whole test suite: what the README calls "the test command", and what CI runs.
#
#   scripts/test.sh          everything: setup, U-Boot peers, cargo tests, fuzz smoke runs
#
# Steps (each idempotent and cached, so a second run is quick):
#   1. scripts/setup-debian.sh   Debian packages (needs root; CI and dev machines are root)
#   2. qemu/build-uboot.sh       U-Boot tools/env, sandbox and qemu-riscv64 from Debian's source
#   3. cargo test --workspace    unit, property, CLI, power-cut and real-peer tests
#   4. scripts/fuzz-smoke.sh     every fuzz target for FUZZ_SECONDS (default 10) each
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n== %s\n' "$*" >&2; }

step "Debian packages"
if [ "$(id -u)" = 0 ]; then
    bash scripts/setup-debian.sh
else
    sudo bash scripts/setup-debian.sh
fi

step "U-Boot peers (cached in ${ZBOT_CACHE:-$HOME/.cache/zbot})"
# Export the paths this run built: the tests read these variables before the shared
# paths.env, so a concurrent build elsewhere cannot change what this run tests.
set -a
eval "$(bash qemu/build-uboot.sh)"
set +a

step "cargo test --workspace"
cargo test --workspace --locked 2>&1 | tee /tmp/zbot-cargo-test.log | grep -E "^(test result|running|error|failures|---- )|panicked" || true
if ! grep -q "^test result" /tmp/zbot-cargo-test.log || grep -qE "^test result: FAILED|^error(\[|:)" /tmp/zbot-cargo-test.log; then
    tail -60 /tmp/zbot-cargo-test.log >&2
    echo "test: cargo test failed" >&2
    exit 1
fi

step "fuzz smoke runs"
bash scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-10}"

passed=$(grep -E "^test result" /tmp/zbot-cargo-test.log | sed -E 's/.* ([0-9]+) passed.*/\1/' | paste -sd+ | bc)
failed=$(grep -E "^test result" /tmp/zbot-cargo-test.log | sed -E 's/.* ([0-9]+) failed.*/\1/' | paste -sd+ | bc)
echo
echo "$passed passed, $failed failed"
