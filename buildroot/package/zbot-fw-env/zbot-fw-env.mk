################################################################################
#
# zbot-fw-env
#
################################################################################

ZBOT_FW_ENV_LICENSE = MIT OR Apache-2.0

define ZBOT_FW_ENV_INSTALL_DROPIN
	ln -sf fw-env $(TARGET_DIR)/usr/bin/fw_printenv
	ln -sf fw-env $(TARGET_DIR)/usr/bin/fw_setenv
endef
ifeq ($(BR2_PACKAGE_ZBOT_FW_ENV_DROPIN),y)
ZBOT_FW_ENV_POST_INSTALL_TARGET_HOOKS += ZBOT_FW_ENV_INSTALL_DROPIN
endif

ifeq ($(BR2_PACKAGE_ZBOT_FROM_SOURCE),y)
ZBOT_FW_ENV_VERSION = $(ZBOT_SOURCE_VERSION)
ZBOT_FW_ENV_SITE = $(ZBOT_SOURCE_SITE)
ZBOT_FW_ENV_SITE_METHOD = git
ZBOT_FW_ENV_SUBDIR = fw-env
$(eval $(cargo-package))
else
ZBOT_FW_ENV_VERSION = $(ZBOT_VERSION)
ZBOT_FW_ENV_SITE = $(ZBOT_PREBUILT_DIR)
ZBOT_FW_ENV_SITE_METHOD = local
define ZBOT_FW_ENV_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/fw-env $(TARGET_DIR)/usr/bin/fw-env
endef
$(eval $(generic-package))
endif
