################################################################################
#
# zbot-partctl
#
################################################################################

ZBOT_PARTCTL_LICENSE = MIT OR Apache-2.0

ifeq ($(BR2_PACKAGE_ZBOT_FROM_SOURCE),y)
ZBOT_PARTCTL_VERSION = $(ZBOT_SOURCE_VERSION)
ZBOT_PARTCTL_SITE = $(ZBOT_SOURCE_SITE)
ZBOT_PARTCTL_SITE_METHOD = git
ZBOT_PARTCTL_SUBDIR = partctl
$(eval $(cargo-package))
else
ZBOT_PARTCTL_VERSION = $(ZBOT_VERSION)
ZBOT_PARTCTL_SITE = $(ZBOT_PREBUILT_DIR)
ZBOT_PARTCTL_SITE_METHOD = local
define ZBOT_PARTCTL_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/partctl $(TARGET_DIR)/usr/bin/partctl
endef
$(eval $(generic-package))
endif
