################################################################################
#
# zbot
#
################################################################################

# Shared by the ZBot packages: the repository this tree lives in, and where the
# binaries come from (prebuilt static riscv64 binaries, or cargo-package from
# source).

# The workspace this external tree is part of: the init scripts, health checks and SWUpdate
# configuration are installed from it (bootcount/dist, updater/dist), never copied.
ZBOT_REPO = $(BR2_EXTERNAL_ZBOT_PATH)/..
ZBOT_VERSION = 0.1.0

ifeq ($(BR2_PACKAGE_ZBOT_FROM_SOURCE),y)
# Buildroot >= 2022.02: cargo-package downloads (and vendors) the workspace from git.
ZBOT_SOURCE_SITE = $(call qstrip,$(BR2_PACKAGE_ZBOT_GIT_URL))
ZBOT_SOURCE_VERSION = $(call qstrip,$(BR2_PACKAGE_ZBOT_GIT_VERSION))
else
# Buildroot 2021.05 (the SDK): the output directory of `cargo xtask dist`.
ZBOT_PREBUILT_DIR = $(call qstrip,$(BR2_PACKAGE_ZBOT_PREBUILT_DIR))
endif
