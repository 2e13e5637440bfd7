#!/usr/bin/env bash
# Build the real U-Boot peers the tests run against, from Debian's `u-boot` source package.
#
# Usage: qemu/build-uboot.sh [--selftest] [tools|sandbox|sandbox-redund|qemu-riscv64|qemu-x86|qemu-x86-mmc|qemu-x86-mmc-field|qemu-x86-mmc-migrated|qemu-riscv64-zbot|qemu-x86-mmc-zbot ...]
#        (default: tools sandbox sandbox-redund qemu-riscv64 qemu-x86 qemu-x86-mmc qemu-x86-mmc-field
#         qemu-x86-mmc-migrated; qemu-riscv64-zbot and qemu-x86-mmc-zbot need $ZBOT_DEFAULT_ENV)
#
# Builds, each out of tree into its own cache directory keyed by the Debian source version,
# the target and a hash of (defconfig, config fragment, make variables, recipe version):
#   tools         tools-only_defconfig + `make envtools`: U-Boot's own tools/env/fw_printenv
#                 (fw_setenv is a symlink to it; the program dispatches on argv[0]).
#   sandbox       sandbox_defconfig + qemu/configs/sandbox-env-ext4.config, `make NO_SDL=1`:
#                 ./u-boot runs as a Linux program; env is the ext4 file /uboot.env on
#                 `host 0:2`. Use:  u-boot -c 'host bind 0 disk.img; env select EXT4;
#                 env load; ...; saveenv'   (see docs/peers.md, "Sandbox U-Boot").
#   sandbox-redund  sandbox_defconfig + qemu/configs/sandbox-redund-fat.config: a *redundant*
#                 env (FAT files uboot.env + uboot-redund.env on host 0:1), to test U-Boot's
#                 own choice between two copies. Use: env select FAT; env load.
#   qemu-riscv64  qemu-riscv64_smode_defconfig + qemu/configs/qemu-riscv64-env-ext4.config,
#                 CROSS_COMPILE=riscv64-linux-gnu-: u-boot.bin for qemu-system-riscv64 -M virt
#                 with OpenSBI; env is the ext4 file /uboot.env on `virtio 0:2`, loaded at boot.
#   qemu-riscv64-zbot  the same, with the compiled-in default environment taken from the file
#                 $ZBOT_DEFAULT_ENV (u-boot-initial-env text, e.g. `uboot-scripts --board qemu
#                 default-env`; CONFIG_USE_DEFAULT_ENV_FILE), as the board's U-Boot carries
#                 the generated ZBOT_ENV_SETTINGS: what U-Boot boots when /uboot.env is lost.
#                 Keyed by the file's content; prints ZBOT_UBOOT_QEMU_RISCV_ZBOT=<u-boot.bin>
#                 (not stored in paths.env: it depends on the env file).
#   qemu-x86      qemu-x86_defconfig + qemu/configs/qemu-x86-env-ext4.config (host gcc):
#                 32-bit u-boot.rom for qemu-system-x86_64 -bios, the Linux lifecycle machine
#                 (docs/qemu.md; 64-bit U-Boot 2023.01 cannot boot a kernel, see
#                 arch/x86/lib/bootm.c); env is the ext4 file /uboot.env on `virtio 0:2`, loaded before
#                 bootcmd; compiled-in default env: qemu/machine-env.sh's output, or the file
#                 $ZBOT_QEMU_DEFAULT_ENV (normalised name=value lines). Keyed by the env's
#                 content; prints ZBOT_UBOOT_QEMU_X86=<u-boot.rom>.
#   qemu-x86-mmc  qemu-x86_defconfig + qemu/configs/qemu-x86-env-mmc-redund.config: U-Boot's
#                 redundant raw env (ENV_IS_IN_MMC) on an SD card behind QEMU's sdhci-pci, for
#                 the backend measurement (docs/env-backend.md). ZBOT_UBOOT_QEMU_X86_MMC=<u-boot.rom>.
#   qemu-x86-mmc-field, qemu-x86-mmc-migrated  qemu-x86_defconfig + qemu/configs/
#                 qemu-x86-env-mmc-field.config (the field's ext4 env on mmc 0:2) / -migrated.config
#                 (raw redundant env at the migration's target offsets): the two U-Boots of the env
#                 migration's boot-ROM model (migrate/tests/migrate_qemu.rs).
#                 ZBOT_UBOOT_QEMU_X86_MMC_FIELD / ZBOT_UBOOT_QEMU_X86_MMC_MIGRATED=<u-boot.rom>.
#   qemu-x86-mmc-zbot  qemu-x86_defconfig + qemu/configs/qemu-x86-env-mmc-zbot.config (the raw
#                 redundant env at the test kit's raw card's offsets) + the default environment
#                 of $ZBOT_DEFAULT_ENV compiled in (as qemu-riscv64-zbot): the policy's boot loops
#                 on the raw backend (tests/src/bootloop.rs, tests/tests/uboot_raw_*.rs). Keyed by
#                 the file's content; prints ZBOT_UBOOT_QEMU_X86_MMC_ZBOT=<u-boot.rom> (not stored).
# A second run finds the finished builds and only prints the paths (well under a second).
#
# Output: the artefact paths, as shell assignments, on stdout and in $ZBOT_CACHE/uboot/paths.env:
#   ZBOT_UBOOT_FW_PRINTENV  ZBOT_UBOOT_SANDBOX  ZBOT_UBOOT_SANDBOX_REDUND  ZBOT_UBOOT_QEMU_RISCV
#   ZBOT_UBOOT_QEMU_X86_MMC
# ZBOT_UBOOT_QEMU_X86 is printed on stdout only (not stored in paths.env): it depends on the
# default env compiled in.
# Tests read those variables, or that file (tests/src/lib.rs does both).
#
# Source: the newest u-boot_*.dsc in $ZBOT_CACHE/src (fetched there with
# `apt-get source --download-only u-boot` when none is present; needs the deb-src entry that
# scripts/setup-debian.sh adds), unpacked with `dpkg-source -x`, which applies Debian's patch
# series. We want those patches: they are what Debian ships as "U-Boot 2023.01" (the same
# source as the u-boot-tools mkenvimage we compare against), they include fixes in code the
# tests exercise (ext4 symlink overflow CVE-2024-57256, dlmalloc overflows CVE-2024-57258 used
# by sandbox) and `tools-disable-video-logo`, which touches tools-only_defconfig. None of them
# touches env/, lib/hashtable.c or tools/env, so the env format is upstream 2023.01's.
#
# Environment:
#   ZBOT_CACHE   cache root (default: $HOME/.cache/zbot); never inside the repository.
#   ZBOT_JOBS    make -j value (default 2; this host's builds must not use more).
#   ZBOT_UBOOT_DSC  use this .dsc instead of the newest one in $ZBOT_CACHE/src.
# Needs: scripts/setup-debian.sh (dpkg-dev, build deps, gcc-riscv64-linux-gnu; e2fsprogs,
# dosfstools and cargo for --selftest).  --selftest: after building, prove the sandbox U-Boot
# saves and loads /uboot.env on partition 2 of the test kit's card (tests/src/test-card.toml,
# made by partctl like every card; a few seconds, plus partctl's build the first time).
set -euo pipefail

RECIPE=1 # bump when the build steps change in a way that must invalidate the cache
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${ZBOT_CACHE:-$HOME/.cache/zbot}"
jobs="${ZBOT_JOBS:-2}"
selftest=0
targets=()

die() {
    echo "build-uboot: error: $*" >&2
    exit 1
}
log() { echo "build-uboot: $*" >&2; }

for arg in "$@"; do
    case "$arg" in
    --selftest) selftest=1 ;;
    tools | sandbox | sandbox-redund | qemu-riscv64 | qemu-riscv64-zbot | qemu-x86 | qemu-x86-mmc | qemu-x86-mmc-field | qemu-x86-mmc-migrated | qemu-x86-mmc-zbot) targets+=("$arg") ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$arg' (expected --selftest, tools, sandbox, sandbox-redund, qemu-riscv64, qemu-riscv64-zbot qemu-x86, qemu-x86-mmc, qemu-x86-mmc-field, qemu-x86-mmc-migrated or qemu-x86-mmc-zbot)" ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(tools sandbox sandbox-redund qemu-riscv64 qemu-x86 qemu-x86-mmc qemu-x86-mmc-field qemu-x86-mmc-migrated)

need() {
    local cmd="$1" pkg="$2"
    command -v "$cmd" >/dev/null 2>&1 ||
        die "'$cmd' not found (Debian package $pkg); run: sudo scripts/setup-debian.sh"
}
need make build-essential
need gcc build-essential
need dpkg-source dpkg-dev
need bison bison
need flex flex
need dtc device-tree-compiler
need sha256sum coreutils
need flock util-linux

mkdir -p "$cache/src" "$cache/uboot"
# One builder at a time: parallel test binaries may all call this script.
exec 9>"$cache/uboot/.lock"
flock 9

# --- source ---------------------------------------------------------------------------------
dsc="${ZBOT_UBOOT_DSC:-}"
if [ -z "$dsc" ]; then
    dsc="$(find "$cache/src" -maxdepth 1 -name 'u-boot_*.dsc' | sort -V | tail -n1)"
fi
if [ -z "$dsc" ]; then
    need apt-get apt
    log "no u-boot source package in $cache/src; fetching with apt-get source --download-only u-boot"
    (cd "$cache/src" && apt-get source --download-only u-boot >&2) ||
        die "apt-get source --download-only u-boot failed in $cache/src: is there a deb-src entry? run: sudo scripts/setup-debian.sh && apt-get update"
    dsc="$(find "$cache/src" -maxdepth 1 -name 'u-boot_*.dsc' | sort -V | tail -n1)"
    [ -n "$dsc" ] || die "apt-get source produced no u-boot_*.dsc in $cache/src"
fi
[ -f "$dsc" ] || die "source package description $dsc does not exist"
version="$(sed -n 's/^Version: *//p' "$dsc" | head -n1)"
[ -n "$version" ] || die "no Version: line in $dsc"
src="$cache/uboot/src/u-boot-$version"
if [ ! -f "$src/.zbot-extracted" ]; then
    log "extracting $dsc (with Debian's patches) into $src"
    rm -rf "$src" "$src.tmp"
    mkdir -p "$cache/uboot/src"
    dpkg-source --no-check -x "$dsc" "$src.tmp" >&2 ||
        die "dpkg-source -x $dsc failed: are the .orig.tar.xz and .debian.tar.xz beside it? delete $cache/src/u-boot_* to re-download"
    if [ ! -f "$src.tmp/Makefile" ] || [ ! -f "$src.tmp/scripts/kconfig/merge_config.sh" ]; then
        die "$src.tmp does not look like a U-Boot tree"
    fi
    touch "$src.tmp/.zbot-extracted"
    mv "$src.tmp" "$src"
fi

# --- one build ------------------------------------------------------------------------------
# build <target> <defconfig> <fragment or ""> <artefact relative to build dir> [make vars...]
# Prints the build directory.
build() {
    local target="$1" defconfig="$2" fragment="$3" artefact="$4"
    shift 4
    local makevars=("$@") key out
    key="$(
        printf 'recipe=%s\ndefconfig=%s\nmakevars=%s\n' "$RECIPE" "$defconfig" "${makevars[*]}"
        [ -z "$fragment" ] || cat "$fragment"
    )"
    out="$cache/uboot/$version-$target-$(printf '%s' "$key" | sha256sum | cut -c1-12)"
    if [ -f "$out/.zbot-done" ] && [ -e "$out/$artefact" ]; then
        log "$target: cached in $out"
        echo "$out"
        return
    fi
    log "$target: building $defconfig${fragment:+ + $(basename "$fragment")} in $out (make -j$jobs)"
    rm -rf "$out"
    mkdir -p "$out"
    local logf="$out/build.log"
    {
        make -C "$src" O="$out" "${makevars[@]}" "$defconfig" &&
            if [ -n "$fragment" ]; then
                (cd "$src" && scripts/kconfig/merge_config.sh -m -O "$out" "$out/.config" "$fragment") &&
                    make -C "$src" O="$out" "${makevars[@]}" olddefconfig
            fi
    } >"$logf" 2>&1 || die "$target: configuring $defconfig failed; see $logf"
    if [ -n "$fragment" ]; then
        # merge_config only warns when Kconfig drops a value (unmet dependency): make it fatal.
        local line name
        while IFS= read -r line; do
            case "$line" in
            CONFIG_*=*) grep -qxF "$line" "$out/.config" ||
                die "$target: '$line' from $fragment did not survive olddefconfig (got: $(grep "^${line%%=*}=" "$out/.config" || echo unset)); see $logf" ;;
            "# CONFIG_"*" is not set")
                name="${line#\# }"
                name="${name%% *}"
                ! grep -q "^$name=" "$out/.config" ||
                    die "$target: $fragment wants $name unset but it is $(grep "^$name=" "$out/.config")"
                ;;
            esac
        done <"$fragment"
    fi
    local goal=()
    [ "$target" != tools ] || goal=(envtools)
    make -C "$src" O="$out" -j"$jobs" "${makevars[@]}" "${goal[@]}" >>"$logf" 2>&1 ||
        die "$target: make failed (last lines below; full log $logf)$(printf '\n'; tail -n 20 "$logf")"
    [ -e "$out/$artefact" ] || die "$target: make succeeded but $out/$artefact is missing; see $logf"
    touch "$out/.zbot-done"
    log "$target: done"
    echo "$out"
}

fw_printenv="" sandbox="" sandbox_redund="" qemu_riscv="" qemu_zbot="" qemu_x86="" qemu_x86_mmc="" qemu_x86_mmc_field="" qemu_x86_mmc_migrated="" qemu_x86_mmc_zbot=""
for t in "${targets[@]}"; do
    case "$t" in
    tools)
        d="$(build tools tools-only_defconfig "" tools/env/fw_printenv)"
        ln -sfn fw_printenv "$d/tools/env/fw_setenv"
        fw_printenv="$d/tools/env/fw_printenv"
        ;;
    sandbox)
        d="$(build sandbox sandbox_defconfig "$here/configs/sandbox-env-ext4.config" u-boot NO_SDL=1)"
        sandbox="$d/u-boot"
        ;;
    sandbox-redund)
        d="$(build sandbox-redund sandbox_defconfig "$here/configs/sandbox-redund-fat.config" u-boot NO_SDL=1)"
        sandbox_redund="$d/u-boot"
        ;;
    qemu-riscv64)
        need riscv64-linux-gnu-gcc gcc-riscv64-linux-gnu
        d="$(build qemu-riscv64 qemu-riscv64_smode_defconfig "$here/configs/qemu-riscv64-env-ext4.config" \
            u-boot.bin CROSS_COMPILE=riscv64-linux-gnu-)"
        qemu_riscv="$d/u-boot.bin"
        ;;
    qemu-riscv64-zbot)
        need riscv64-linux-gnu-gcc gcc-riscv64-linux-gnu
        [ -n "${ZBOT_DEFAULT_ENV:-}" ] && [ -f "$ZBOT_DEFAULT_ENV" ] ||
            die "qemu-riscv64-zbot needs ZBOT_DEFAULT_ENV=<file> with the default environment (run: cargo run -p uboot-scripts -- --board qemu default-env > env.txt)"
        envsha="$(sha256sum <"$ZBOT_DEFAULT_ENV" | cut -c1-12)"
        mkdir -p "$cache/uboot/env"
        envfile="$cache/uboot/env/default-env-$envsha.txt"
        [ -f "$envfile" ] || cp "$ZBOT_DEFAULT_ENV" "$envfile"
        frag="$cache/uboot/env/qemu-riscv64-zbot-$envsha.config"
        {
            cat "$here/configs/qemu-riscv64-env-ext4.config"
            echo "CONFIG_USE_DEFAULT_ENV_FILE=y"
            echo "CONFIG_DEFAULT_ENV_FILE=\"$envfile\""
        } >"$frag"
        d="$(build qemu-riscv64-zbot qemu-riscv64_smode_defconfig "$frag" \
            u-boot.bin CROSS_COMPILE=riscv64-linux-gnu-)"
        qemu_zbot="$d/u-boot.bin"
        ;;
    qemu-x86)
        # The machine's default env (qemu/machine-env.sh: machine part + boot policy part, or
        # $ZBOT_QEMU_DEFAULT_ENV) is compiled in, as on the board: it is what U-Boot boots when
        # /uboot.env is missing or corrupt. A fragment derived from the base one names a copy
        # of it by content hash, so another env is another cached build.
        envd="$cache/uboot/default-env"
        mkdir -p "$envd"
        if [ -n "${ZBOT_QEMU_DEFAULT_ENV:-}" ]; then
            cp "$ZBOT_QEMU_DEFAULT_ENV" "$envd/tmp.txt"
        else
            bash "$here/machine-env.sh" >"$envd/tmp.txt"
        fi
        envf="$envd/$(sha256sum <"$envd/tmp.txt" | cut -c1-16).txt"
        mv "$envd/tmp.txt" "$envf"
        frag="$envd/$(basename "$envf" .txt).config"
        {
            cat "$here/configs/qemu-x86-env-ext4.config"
            echo "CONFIG_USE_DEFAULT_ENV_FILE=y"
            echo "CONFIG_DEFAULT_ENV_FILE=\"$envf\""
        } >"$frag"
        d="$(build qemu-x86 qemu-x86_defconfig "$frag" u-boot.rom)"
        qemu_x86="$d/u-boot.rom"
        ;;
    qemu-x86-mmc)
        d="$(build qemu-x86-mmc qemu-x86_defconfig "$here/configs/qemu-x86-env-mmc-redund.config" u-boot.rom)"
        qemu_x86_mmc="$d/u-boot.rom"
        ;;
    qemu-x86-mmc-field)
        d="$(build qemu-x86-mmc-field qemu-x86_defconfig "$here/configs/qemu-x86-env-mmc-field.config" u-boot.rom)"
        qemu_x86_mmc_field="$d/u-boot.rom"
        ;;
    qemu-x86-mmc-zbot)
        # The policy's boot loops on the raw backend: the raw redundant env at the test kit's
        # raw card's offsets, the generated default env ($ZBOT_DEFAULT_ENV) compiled in, as
        # qemu-riscv64-zbot does for the ext4 backend. Keyed by the env's content; printed only.
        [ -n "${ZBOT_DEFAULT_ENV:-}" ] && [ -f "$ZBOT_DEFAULT_ENV" ] ||
            die "qemu-x86-mmc-zbot needs ZBOT_DEFAULT_ENV=<file> with the default environment (tests/src/bootloop.rs writes it)"
        envsha="$(sha256sum <"$ZBOT_DEFAULT_ENV" | cut -c1-12)"
        mkdir -p "$cache/uboot/env"
        envfile="$cache/uboot/env/default-env-$envsha.txt"
        [ -f "$envfile" ] || cp "$ZBOT_DEFAULT_ENV" "$envfile"
        frag="$cache/uboot/env/qemu-x86-mmc-zbot-$envsha.config"
        {
            cat "$here/configs/qemu-x86-env-mmc-zbot.config"
            echo "CONFIG_USE_DEFAULT_ENV_FILE=y"
            echo "CONFIG_DEFAULT_ENV_FILE=\"$envfile\""
        } >"$frag"
        d="$(build qemu-x86-mmc-zbot qemu-x86_defconfig "$frag" u-boot.rom)"
        qemu_x86_mmc_zbot="$d/u-boot.rom"
        ;;
    qemu-x86-mmc-migrated)
        d="$(build qemu-x86-mmc-migrated qemu-x86_defconfig "$here/configs/qemu-x86-env-mmc-migrated.config" u-boot.rom)"
        qemu_x86_mmc_migrated="$d/u-boot.rom"
        ;;
    esac
done

# --- paths.env: keep entries of targets not built in this run -------------------------------
# Several callers may finish at once (parallel test runs, other branches' versions of this
# script with other targets): merge under a lock, keep every ZBOT_ entry we do not set
# ourselves (whichever script version wrote it), and replace the file atomically.
paths="$cache/uboot/paths.env"
exec 9>"$cache/uboot/.paths.lock"
flock 9
old() { if [ -f "$paths" ]; then sed -n "s/^$1=//p" "$paths" | tr -d "'"; fi; }
[ -n "$fw_printenv" ] || fw_printenv="$(old ZBOT_UBOOT_FW_PRINTENV)"
[ -n "$sandbox" ] || sandbox="$(old ZBOT_UBOOT_SANDBOX)"
[ -n "$sandbox_redund" ] || sandbox_redund="$(old ZBOT_UBOOT_SANDBOX_REDUND)"
[ -n "$qemu_riscv" ] || qemu_riscv="$(old ZBOT_UBOOT_QEMU_RISCV)"
[ -n "$qemu_x86_mmc" ] || qemu_x86_mmc="$(old ZBOT_UBOOT_QEMU_X86_MMC)"
[ -n "$qemu_x86_mmc_field" ] || qemu_x86_mmc_field="$(old ZBOT_UBOOT_QEMU_X86_MMC_FIELD)"
[ -n "$qemu_x86_mmc_migrated" ] || qemu_x86_mmc_migrated="$(old ZBOT_UBOOT_QEMU_X86_MMC_MIGRATED)"
tmp_paths="$(mktemp "$paths.XXXXXX")"
{
    echo "# written by qemu/build-uboot.sh for u-boot $version; source it or read it line by line"
    [ -z "$fw_printenv" ] || echo "ZBOT_UBOOT_FW_PRINTENV='$fw_printenv'"
    [ -z "$sandbox" ] || echo "ZBOT_UBOOT_SANDBOX='$sandbox'"
    [ -z "$sandbox_redund" ] || echo "ZBOT_UBOOT_SANDBOX_REDUND='$sandbox_redund'"
    [ -z "$qemu_riscv" ] || echo "ZBOT_UBOOT_QEMU_RISCV='$qemu_riscv'"
    [ -z "$qemu_x86_mmc" ] || echo "ZBOT_UBOOT_QEMU_X86_MMC='$qemu_x86_mmc'"
    [ -z "$qemu_x86_mmc_field" ] || echo "ZBOT_UBOOT_QEMU_X86_MMC_FIELD='$qemu_x86_mmc_field'"
    [ -z "$qemu_x86_mmc_migrated" ] || echo "ZBOT_UBOOT_QEMU_X86_MMC_MIGRATED='$qemu_x86_mmc_migrated'"
    if [ -f "$paths" ]; then
        grep -E '^ZBOT_[A-Z0-9_]+=' "$paths" |
            grep -vE '^ZBOT_UBOOT_(FW_PRINTENV|SANDBOX|SANDBOX_REDUND|QEMU_RISCV|QEMU_X86|QEMU_X86_MMC|QEMU_X86_MMC_FIELD|QEMU_X86_MMC_MIGRATED|QEMU_RISCV_ZBOT|QEMU_X86_MMC_ZBOT)=' || true
    fi
} >"$tmp_paths"
mv "$tmp_paths" "$paths"
exec 9>&-
# sed, not `grep -v`: on a fresh cache whose first build is a target that is never stored
# (qemu-x86 alone, as qemu/demo.sh does) the file holds only its comment, and grep would
# exit 1 after a successful build (issue 10).
sed '/^#/d' "$paths"
# Builds keyed by a default env's content are printed, never stored: another env means
# another build, and a stored one would be stale for the next caller.
[ -z "$qemu_zbot" ] || echo "ZBOT_UBOOT_QEMU_RISCV_ZBOT='$qemu_zbot'"
[ -z "$qemu_x86" ] || echo "ZBOT_UBOOT_QEMU_X86='$qemu_x86'"
[ -z "$qemu_x86_mmc_zbot" ] || echo "ZBOT_UBOOT_QEMU_X86_MMC_ZBOT='$qemu_x86_mmc_zbot'"

# --- optional self test ---------------------------------------------------------------------
if [ "$selftest" = 1 ]; then
    [ -n "$sandbox" ] || die "--selftest needs the sandbox target"
    need mke2fs e2fsprogs
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    img="$tmp/disk.img"
    repo="$(cd "$here/.." && pwd)"
    (cd "$repo" && PATH="$PATH:/usr/sbin:/sbin" CARGO_TARGET_DIR="$repo/target/zbot-static" \
        cargo run -q --locked -p partctl -- create "$repo/tests/src/test-card.toml" "$img") >/dev/null ||
        die "selftest: partctl create of tests/src/test-card.toml failed"
    "$sandbox" -c "host bind 0 $img; env select EXT4; env load; setenv zbot_selftest ok; saveenv" \
        >"$tmp/out" 2>&1 || die "selftest: sandbox saveenv failed:$(printf '\n'; cat "$tmp/out")"
    out="$("$sandbox" -c "host bind 0 $img; env select EXT4; env load; printenv zbot_selftest" 2>&1 | tr -d '\r')" ||
        die "selftest: sandbox env load failed:$(printf '\n%s' "$out")"
    grep -qx 'zbot_selftest=ok' <<<"$out" || die "selftest: saved variable not read back:$(printf '\n%s' "$out")"
    log "selftest: sandbox saveenv/env load on host 0:2 /uboot.env works"
fi
