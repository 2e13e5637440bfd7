#!/usr/bin/env bash
# Run every cargo-fuzz target of the workspace briefly (a smoke run: no panics on what the
# fuzzer reaches in that time), or one target for longer.
#
# Usage: scripts/fuzz-smoke.sh [SECONDS]            every target, SECONDS each (default 10)
#        scripts/fuzz-smoke.sh SECONDS CRATE TARGET  one target
#
# cargo-fuzz needs nightly-only rustc flags; the project's toolchain is stable, so the runs
# set RUSTC_BOOTSTRAP=1 (the same compiler, its unstable flags unlocked). cargo-fuzz itself
# is installed from crates.io when missing. Crashes are kept in CRATE/fuzz/artifacts/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-10}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz from crates.io" >&2
    cargo install --locked -q cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
run_target() { # crate target
    local dir="$root/$1/fuzz"
    mkdir -p "$dir/corpus/$2"
    # Seed the corpus with the committed fixtures where there are some.
    if [ -d "$root/$1/tests/fixtures" ]; then
        find "$root/$1/tests/fixtures" -maxdepth 1 -type f -size -300k -exec cp -n {} "$dir/corpus/$2/" \;
    fi
    echo "fuzz-smoke: $1/$2 for ${seconds}s" >&2
    local log="$dir/artifacts/$2.log"
    mkdir -p "$dir/artifacts"
    # libFuzzer exits non-zero on a crash, and cargo-fuzz passes that through.
    if ! (cd "$root/$1" && cargo fuzz run --sanitizer none "$2" -- -max_total_time="$seconds" -max_len=20000 >"$log" 2>&1); then
        grep -E "panicked|ERROR|SUMMARY|Test unit written|Base64" "$log" >&2 || tail -20 "$log" >&2
        echo "fuzz-smoke: $1/$2 FAILED (log: $log)" >&2
        exit 1
    fi
    grep -E "^Done" "$log" >&2 || true
}
if [ $# -ge 3 ]; then
    run_target "$2" "$3"
    exit 0
fi
for fuzzdir in "$root"/*/fuzz; do
    [ -f "$fuzzdir/Cargo.toml" ] || continue
    crate="$(basename "$(dirname "$fuzzdir")")"
    for t in "$fuzzdir"/fuzz_targets/*.rs; do
        run_target "$crate" "$(basename "$t" .rs)"
    done
done
echo "fuzz-smoke: all targets ran without a crash"
