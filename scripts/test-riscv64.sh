#!/usr/bin/env bash
# The CLI stories on the bytes the robot runs: builds the static riscv64 binaries
# (cargo xtask dist) and runs the CLI tests on them under qemu-riscv64-static
# (Debian's qemu-user-static; no binfmt needed: the tests call `qemu-riscv64-static BIN`):
#
#   fw-env:    tests/dropin.rs   (the fw_printenv/fw_setenv drop-in cases, names by symlink)
#   bootcount: tests/stories.rs  (the robot's stories: update, failed update, health, ...)
#   partctl:   tests/cli.rs      (create, check, repair, restore, emit)
#
# The tests read ZBOT_TARGET_BIN_DIR and ZBOT_TARGET_RUNNER (target_bin/target_command in each
# crate's test helpers); without them they run the host build.
# One test needs fw-env's fault-injection build (the shipped binary has no crash points):
# bootcount's power_cut_inside_every_write_of_every_story runs on the host build only, and this
# script says so.
#
# Output: the `test result:` lines of the three runs (scripts/test.sh counts them), and a last
# line `riscv64: ...`. Exit codes: 0 passed; 1 a test or the build failed; 3 the toolchain or
# qemu-riscv64-static cannot be had on this machine (the caller reports "not run", loudly).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

rc=0
bin="$(cargo run -q --locked -p xtask -- dist)" || rc=$?
if [ "$rc" != 0 ]; then
    echo "riscv64: binaries NOT built (cargo xtask dist exit $rc)"
    exit "$rc"
fi
runner="$(command -v qemu-riscv64-static || true)"
if [ -z "$runner" ]; then
    echo "riscv64: qemu-riscv64-static not found (Debian package qemu-user-static, scripts/setup-debian.sh): the riscv64 binaries were built but NOT tested"
    exit 3
fi
"$runner" "$bin/fw-env" --version >/dev/null ||
    { echo "riscv64: $runner cannot run $bin/fw-env"; exit 1; }

export ZBOT_TARGET_BIN_DIR="$bin" ZBOT_TARGET_RUNNER="$runner"
log="$(mktemp)"
status=0
run() {
    echo "== riscv64: cargo test $*" >&2
    if ! cargo test --locked "$@" >"$log" 2>&1; then
        status=1
        grep -E "^---- |panicked|^failures" "$log" >&2 || tail -40 "$log" >&2
    fi
    grep -E "^test result" "$log" || echo "test result: FAILED. 0 passed; 1 failed (cargo test $* printed no result)"
}
run -p fw-env --test dropin
run -p bootcount --test stories -- --skip power_cut_inside_every_write_of_every_story
run -p partctl --test cli
rm -f "$log"
echo "riscv64: fw-env, bootcount, partctl tested as static riscv64 binaries under $runner" \
    "(bootcount's power_cut_inside_every_write_of_every_story needs the fault-injection build: host only)"
exit "$status"
