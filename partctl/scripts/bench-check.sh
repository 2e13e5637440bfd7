#!/bin/sh
# Benchmark: `partctl check` against `sgdisk -v` on a 64 GiB sparse image (both read the table
# areas only; the image occupies < 1 MiB on disk).
# Usage (from the repository root): partctl/scripts/bench-check.sh [RUNS]
set -eu
RUNS=${1:-50}
cargo build --release -q -p partctl
PARTCTL=$(pwd)/target/release/partctl
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
IMG=$DIR/card64g.img
"$PARTCTL" create partctl/layouts/zbot-duos-small.toml "$IMG" --size 64G >/dev/null
"$PARTCTL" check "$IMG" >/dev/null
sgdisk -v "$IMG" | grep -q "No problems found"

time_runs() { # command... -> total nanoseconds for RUNS runs
    start=$(date +%s%N)
    i=0
    while [ $i -lt "$RUNS" ]; do "$@" >/dev/null 2>&1 || true; i=$((i + 1)); done
    end=$(date +%s%N)
    echo $((end - start))
}
p=$(time_runs "$PARTCTL" check "$IMG")
s=$(time_runs sgdisk -v "$IMG")
echo "image: 64 GiB sparse ($(du -k "$IMG" | cut -f1) KiB allocated), $RUNS runs each"
echo "partctl check: $((p / RUNS / 1000)) us/run"
echo "sgdisk -v:     $((s / RUNS / 1000)) us/run"
echo "ratio sgdisk/partctl: $(awk "BEGIN { printf \"%.1f\", $s / $p }")"
