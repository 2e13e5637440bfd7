#!/usr/bin/env bash
# Build the static riscv64 binaries of everything that runs on the robot (Milk-V Duo S, C906,
# 64-bit Linux; its rootfs is musl, and a static binary does not care):
#
#   fw-env (+ the symlinks fw_printenv, fw_setenv), bootcount, partctl, zbot-migrate-env (run
#   from otafs to move a field card to the raw env),
#   zbot-updater without its host features (the robot's agent: no OpenSSL, no C libraries)
#
# Rust target riscv64gc-unknown-linux-gnu (rustup), Debian's gcc-riscv64-linux-gnu as linker,
# -C target-feature=+crt-static with libc6-dev-riscv64-cross. Release profile, stripped.
#
#   scripts/build-riscv64.sh [OUT]     OUT defaults to $ZBOT_RISCV64_OUT or target/riscv64/bin
#
# Prints the stripped sizes. Exit codes: 0 built; 1 the build failed; 3 the toolchain cannot
# be had on this machine (rust target not downloadable, no cross gcc): the caller
# (scripts/test-riscv64.sh, scripts/test.sh) reports that loudly as "not run".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

TARGET=riscv64gc-unknown-linux-gnu
CROSS=riscv64-linux-gnu
out="${1:-${ZBOT_RISCV64_OUT:-$root/target/riscv64/bin}}"
unavailable() { echo "build-riscv64: $*" >&2; exit 3; }
die() { echo "build-riscv64: $*" >&2; exit 1; }

# Debian packages: the cross gcc (linker), the static cross libc, strip.
if ! command -v "$CROSS-gcc" >/dev/null || [ ! -f "/usr/$CROSS/lib/libc.a" ]; then
    if [ "$(id -u)" = 0 ]; then
        bash scripts/setup-debian.sh >&2 || unavailable "scripts/setup-debian.sh failed: install gcc-riscv64-linux-gnu and libc6-dev-riscv64-cross by hand"
    else
        unavailable "$CROSS-gcc or /usr/$CROSS/lib/libc.a is missing: run scripts/setup-debian.sh as root (gcc-riscv64-linux-gnu, libc6-dev-riscv64-cross)"
    fi
fi
command -v "$CROSS-gcc" >/dev/null || unavailable "$CROSS-gcc not found after setup (Debian package gcc-riscv64-linux-gnu)"
[ -f "/usr/$CROSS/lib/libc.a" ] || unavailable "/usr/$CROSS/lib/libc.a not found after setup (Debian package libc6-dev-riscv64-cross)"

# The Rust target (a download of about 2 minutes the first time).
command -v rustup >/dev/null || unavailable "rustup not found: the $TARGET standard library comes from rustup"
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    echo "build-riscv64: installing the Rust target $TARGET (rustup target add)" >&2
    rustup target add "$TARGET" >&2 ||
        unavailable "rustup target add $TARGET failed (offline, or no such target for this toolchain): the riscv64 binaries cannot be built on this machine"
fi

upper="$(echo "$TARGET" | tr 'a-z-' 'A-Z_')"
export "CARGO_TARGET_${upper}_LINKER=$CROSS-gcc"
export "CARGO_TARGET_${upper}_RUSTFLAGS=-C target-feature=+crt-static"
build() { cargo build --release --locked --target "$TARGET" "$@" >&2 || die "cargo build $* for $TARGET failed"; }
# Two invocations: features are unified within one, and the agent must not get `pack`.
build -p fw-env -p bootcount -p partctl -p zbot-migrate-env
build -p zbot-updater --no-default-features

tdir="${CARGO_TARGET_DIR:-$root/target}/$TARGET/release"
mkdir -p "$out"
for b in fw-env bootcount partctl zbot-migrate-env zbot-updater; do
    [ -f "$tdir/$b" ] || die "$tdir/$b was not built"
    "$CROSS-strip" -o "$out/$b.tmp" "$tdir/$b"
    mv "$out/$b.tmp" "$out/$b"
    desc="$(file -b "$out/$b")"
    case "$desc" in
        *RISC-V*"statically linked"*) ;;
        *) die "$out/$b is not a static RISC-V executable: $desc" ;;
    esac
done
ln -sf fw-env "$out/fw_printenv"
ln -sf fw-env "$out/fw_setenv"
echo "build-riscv64: static $TARGET binaries in $out (stripped sizes in bytes):" >&2
for b in fw-env bootcount partctl zbot-migrate-env zbot-updater; do
    printf '  %-17s %9d\n' "$b" "$(stat -c %s "$out/$b")" >&2
done
echo "$out"
