#!/usr/bin/env bash
# Build the host tools the board scripts use (partctl, uboot-scripts, fw-env) from the
# workspace this tree lives in, with the build host's Rust toolchain (the same one
# `cargo xtask dist` uses), and print their directory. Cached: a second run only checks.
#
#   host-tools.sh [TARGET_DIR_FOR_CARGO]    default: $BUILD_DIR/zbot-host-tools, else target/
#
# ZBOT_HOST_TOOLS=DIR uses the binaries already in DIR instead (scripts/test-buildroot.sh).
set -euo pipefail
if [ -n "${ZBOT_HOST_TOOLS:-}" ]; then
    for b in partctl uboot-scripts fw-env; do
        [ -x "$ZBOT_HOST_TOOLS/$b" ] || { echo "zbot host-tools: ZBOT_HOST_TOOLS=$ZBOT_HOST_TOOLS has no $b" >&2; exit 1; }
    done
    echo "$ZBOT_HOST_TOOLS"
    exit 0
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
tdir="${1:-${BUILD_DIR:+$BUILD_DIR/zbot-host-tools}}"
tdir="${tdir:-$repo/target}"
command -v cargo >/dev/null || {
    echo "zbot host-tools: cargo not found: install Rust (rustup) on the build host; the ZBot board scripts need partctl, uboot-scripts and fw-env built from $repo" >&2
    exit 1
}
# Buildroot's environment (CC, CFLAGS, PKG_CONFIG_*...) is for the target: build for the host.
env -u CC -u CXX -u CFLAGS -u CXXFLAGS -u LDFLAGS -u PKG_CONFIG_PATH -u PKG_CONFIG_SYSROOT_DIR \
    -u PKG_CONFIG_LIBDIR -u AR -u LD -u RUSTFLAGS -u CARGO_BUILD_TARGET \
    cargo build --release --locked --manifest-path "$repo/Cargo.toml" --target-dir "$tdir" \
    -p partctl -p uboot-scripts -p fw-env >&2 ||
    { echo "zbot host-tools: cargo build of partctl, uboot-scripts, fw-env failed" >&2; exit 1; }
echo "$tdir/release"
