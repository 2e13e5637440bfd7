#!/usr/bin/env bash
# Print the QEMU machine's default U-Boot environment, normalised (one name=value per line):
# qemu/machine/env/machine.env (the machine's part) followed by the boot policy part,
# $ZBOT_POLICY_ENV or qemu/machine/env/placeholder-policy.env.
# The same text is compiled into U-Boot (build-uboot.sh qemu-x86_64, CONFIG_DEFAULT_ENV_FILE),
# stored in the fresh image's /uboot.env (with next_boot=rootfs) and installed as
# /etc/u-boot-initial-env in each slot (qemu/make-image.sh).
# Normalising as U-Boot's Makefile does for CONFIG_DEFAULT_ENV_FILE: drop '#' lines and blank
# lines, join backslash-continued lines (leading blanks of the next line dropped).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
policy="${ZBOT_POLICY_ENV:-$here/machine/env/placeholder-policy.env}"
[ -f "$policy" ] || {
    echo "machine-env: policy env $policy does not exist" >&2
    exit 1
}
cat "$here/machine/env/machine.env" "$policy" | grep -v '^#' | grep -v '^$' |
    sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*//; ta'
