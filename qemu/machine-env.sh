#!/usr/bin/env bash
# Print the QEMU machine's default U-Boot environment, normalised (one name=value per line):
# the boot policy part, then qemu/machine/env/machine.env (the machine's part), whose variables
# win: a name defined twice keeps its first position and its last value.
# The policy part is $ZBOT_POLICY_ENV (a file, u-boot-initial-env text), else
# `uboot-scripts --layout qemu/machine/layout.toml --board qemu default-env` (the slots are the
# layout's, `partctl emit slots`; built with cargo into target/zbot-static).
# The same text is compiled into U-Boot (build-uboot.sh qemu-x86_64, CONFIG_DEFAULT_ENV_FILE),
# stored in the fresh image's /uboot.env (with next_boot=rootfs) and installed as
# /etc/u-boot-initial-env in each slot (qemu/make-image.sh).
# Normalising as U-Boot's Makefile does for CONFIG_DEFAULT_ENV_FILE: drop '#' lines and blank
# lines, join backslash-continued lines (leading blanks of the next line dropped).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
policy="${ZBOT_POLICY_ENV:-}"
tmp=""
if [ -z "$policy" ]; then
    tmp="$(mktemp)"
    trap 'rm -f "$tmp"' EXIT
    (cd "$repo" && CARGO_TARGET_DIR="$repo/target/zbot-static" cargo run -q --locked -p uboot-scripts -- \
        --layout "$here/machine/layout.toml" --board qemu default-env) >"$tmp" || {
        echo "machine-env: uboot-scripts default-env failed (set ZBOT_POLICY_ENV to override)" >&2
        exit 1
    }
    policy="$tmp"
fi
[ -f "$policy" ] || {
    echo "machine-env: policy env $policy does not exist" >&2
    exit 1
}
cat "$policy" "$here/machine/env/machine.env" | grep -v '^#' | grep -v '^$' |
    sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*//; ta' |
    awk '{ i = index($0, "="); n = (i ? substr($0, 1, i - 1) : $0)
           if (!(n in v)) order[++k] = n; v[n] = $0 }
         END { for (j = 1; j <= k; j++) print v[order[j]] }'
