#!/usr/bin/env bash
# Install every Debian 12 package the project's builds and tests need. Idempotent: a second
# run installs nothing and takes a second. Run as root (CI and the dev machines are root).
#
# What and why (see ../shared/HOST-NOTES.md):
# - bookworm-backports: QEMU 10 (plain bookworm's 7.2 conflicts with the base image's
#   backports qemu-utils).
# - deb-src for bookworm: Debian's u-boot source package, from which we build the sandbox
#   U-Boot, the ext4-env qemu-riscv64 U-Boot and U-Boot's own fw_printenv (tools/env).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "setup-debian: run as root (apt-get install needs it)" >&2
    exit 2
fi

PACKAGES=(
    # peers for fw-env; rauc (1.8) runs its U-Boot backend on our fw_printenv/fw_setenv and
    # on libubootenv's (fw-env/tests/rauc.rs), over a private dbus-daemon; unshare (util-linux)
    # gives it a private /etc/fw_env.config
    libubootenv-tool u-boot-tools rauc dbus-daemon util-linux
    # U-Boot build dependencies
    build-essential bison flex libssl-dev bc swig python3-dev python3-setuptools
    libgnutls28-dev uuid-dev device-tree-compiler dpkg-dev
    gcc-riscv64-linux-gnu
    # static riscv64 binaries for the robot (cargo xtask dist): the cross libc for
    # -C target-feature=+crt-static (gcc-riscv64-linux-gnu only recommends it)
    libc6-dev-riscv64-cross
    # partition and filesystem peers
    gdisk fdisk parted genimage dosfstools mtools e2fsprogs
    # QEMU boot tests
    opensbi
    # Linux lifecycle machine (qemu/): BusyBox for the slots' root filesystems, cpio for the
    # initramfs, seabios for qemu-system-x86, kmod (depmod) for the kernel's modules.dep (the
    # kernel is fetched by qemu/fetch-kernel.sh with `apt-get download`, never installed)
    busybox-static cpio seabios kmod
    # misc
    xxd file jq
    # zbot-updater: the real SWUpdate (2022.12) its packages are proven against, openssl for test keys
    swupdate openssl
    # lint for the project's shell scripts (qemu/, scripts/, fixtures)
    shellcheck
)
# qemu-user-static: qemu-riscv64-static runs the robot's static binaries in the CLI tests
BACKPORT_PACKAGES=(qemu-system-misc qemu-system-x86 qemu-user-static)

stamp=/var/lib/zbot-setup.stamp
want="$(printf '%s\n' "${PACKAGES[@]}" "${BACKPORT_PACKAGES[@]}" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
changed=0
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > /etc/apt/sources.list.d/zbot-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    changed=1
fi
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    cat > /etc/apt/sources.list.d/zbot-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    changed=1
fi
if [ "$changed" = 1 ] || [ ! -f "$stamp" ]; then
    apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORT_PACKAGES[@]}" >/dev/null
echo "$want" > "$stamp"
echo "setup-debian: packages installed"
