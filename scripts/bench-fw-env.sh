#!/usr/bin/env bash
# Benchmark fw-env's fw_printenv/fw_setenv against libubootenv's on 16 KiB and 128 KiB
# environments (env files, single copy; and two copies in an image, written in place).
# A measurement for docs/fw-env.md, not a test: it prints a Markdown table of mean times
# per call and the ratio ours/theirs, all measured in this one run.
#
# Usage: scripts/bench-fw-env.sh [RUNS]   (default 200 calls per cell)
set -euo pipefail
runs="${1:-200}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo build --release -q -p fw-env --manifest-path "$root/Cargo.toml"
ours="$root/target/release/fw-env"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ln -s "$ours" "$work/fw_printenv"
ln -s "$ours" "$work/fw_setenv"

# mean seconds per call of "$@", over $runs calls
timeit() {
    local start end
    start=$(date +%s%N)
    for ((i = 0; i < runs; i++)); do "$@" >/dev/null 2>&1; done
    end=$(date +%s%N)
    echo "scale=6; ($end - $start) / $runs / 1000000" | bc
}

make_env() { # size file: an env with ~half the data area used
    local size=$1 file=$2 n=$(( $1 / 64 ))
    { for ((i = 0; i < n; i++)); do printf 'var%05d=value-%05d-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n' "$i" "$i"; done; } > "$work/in.txt"
    mkenvimage -s "$size" -o "$file" "$work/in.txt"
}

echo "| env | operation | fw-env (ms) | libubootenv (ms) | ratio |"
echo "|---|---|---|---|---|"
for size in 0x4000 0x20000; do
    label=$([ "$size" = 0x4000 ] && echo "16 KiB file" || echo "128 KiB file")
    make_env "$size" "$work/uboot.env"
    echo "$work/uboot.env 0x0 $size" > "$work/fw_env.config"
    for op in print set; do
        if [ "$op" = print ]; then
            a=$(timeit "$work/fw_printenv" -c "$work/fw_env.config")
            b=$(timeit /usr/bin/fw_printenv -c "$work/fw_env.config")
        else
            # alternate values so every call really writes
            a=$(timeit bash -c "\"$work/fw_setenv\" -c \"$work/fw_env.config\" bench \$RANDOM")
            b=$(timeit bash -c "/usr/bin/fw_setenv -c \"$work/fw_env.config\" bench \$RANDOM")
        fi
        printf '| %s | %s | %.3f | %.3f | %.2f |\n' "$label" "$op" "$a" "$b" "$(echo "scale=4; $a / $b" | bc)"
    done
done
echo
echo "($runs calls per cell; set runs through bash -c in both columns; $(nproc) cores; $(date -u +%Y-%m-%d))"
