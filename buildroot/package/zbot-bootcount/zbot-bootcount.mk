################################################################################
#
# zbot-bootcount
#
################################################################################

ZBOT_BOOTCOUNT_LICENSE = MIT OR Apache-2.0

# The init scripts and health checks, from the workspace (bootcount/dist).
define ZBOT_BOOTCOUNT_INSTALL_DIST
	$(INSTALL) -D -m 0755 $(ZBOT_REPO)/bootcount/dist/S95bootcount \
		$(TARGET_DIR)/etc/init.d/S95bootcount
	$(INSTALL) -D -m 0755 $(ZBOT_REPO)/bootcount/dist/fsck-bootenv \
		$(TARGET_DIR)/etc/init.d/fsck-bootenv
	mkdir -p $(TARGET_DIR)/etc/bootcount/health.d
	cp -a $(ZBOT_REPO)/bootcount/dist/health.d/required.d \
		$(ZBOT_REPO)/bootcount/dist/health.d/wanted.d \
		$(TARGET_DIR)/etc/bootcount/health.d/
endef
ZBOT_BOOTCOUNT_POST_INSTALL_TARGET_HOOKS += ZBOT_BOOTCOUNT_INSTALL_DIST

ifeq ($(BR2_PACKAGE_ZBOT_FROM_SOURCE),y)
ZBOT_BOOTCOUNT_VERSION = $(ZBOT_SOURCE_VERSION)
ZBOT_BOOTCOUNT_SITE = $(ZBOT_SOURCE_SITE)
ZBOT_BOOTCOUNT_SITE_METHOD = git
ZBOT_BOOTCOUNT_SUBDIR = bootcount
$(eval $(cargo-package))
else
ZBOT_BOOTCOUNT_VERSION = $(ZBOT_VERSION)
ZBOT_BOOTCOUNT_SITE = $(ZBOT_PREBUILT_DIR)
ZBOT_BOOTCOUNT_SITE_METHOD = local
define ZBOT_BOOTCOUNT_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/bootcount $(TARGET_DIR)/usr/bin/bootcount
endef
$(eval $(generic-package))
endif
