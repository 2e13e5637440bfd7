################################################################################
#
# zbot-updater
#
################################################################################

ZBOT_UPDATER_LICENSE = MIT OR Apache-2.0

# Buildroot's swupdate package starts S80swupdate: ours (S98, as the SDK's) replaces it.
define ZBOT_UPDATER_INSTALL_SWUPDATE_CONFIG
	rm -f $(TARGET_DIR)/etc/init.d/S80swupdate
	$(INSTALL) -D -m 0644 $(ZBOT_REPO)/updater/dist/swupdate.cfg \
		$(TARGET_DIR)/etc/swupdate/swupdate.cfg
	$(INSTALL) -D -m 0755 $(ZBOT_REPO)/updater/dist/S98swupdate \
		$(TARGET_DIR)/etc/init.d/S98swupdate
	$(INSTALL) -D -m 0755 $(ZBOT_REPO)/updater/dist/S97zbot-status \
		$(TARGET_DIR)/etc/init.d/S97zbot-status
endef
ifeq ($(BR2_PACKAGE_ZBOT_UPDATER_SWUPDATE_CONFIG),y)
# After swupdate, so that its own init script and configuration are replaced.
ZBOT_UPDATER_DEPENDENCIES += swupdate
ZBOT_UPDATER_POST_INSTALL_TARGET_HOOKS += ZBOT_UPDATER_INSTALL_SWUPDATE_CONFIG
endif

# The agent's init script, for the main system (the one copy: updater/dist).
define ZBOT_UPDATER_INSTALL_AGENT_INIT
	$(INSTALL) -D -m 0755 $(ZBOT_REPO)/updater/dist/S98zbot-agent \
		$(TARGET_DIR)/etc/init.d/S98zbot-agent
endef
ifeq ($(BR2_PACKAGE_ZBOT_UPDATER_AGENT_INIT),y)
ZBOT_UPDATER_POST_INSTALL_TARGET_HOOKS += ZBOT_UPDATER_INSTALL_AGENT_INIT
endif

ifeq ($(BR2_PACKAGE_ZBOT_FROM_SOURCE),y)
ZBOT_UPDATER_VERSION = $(ZBOT_SOURCE_VERSION)
ZBOT_UPDATER_SITE = $(ZBOT_SOURCE_SITE)
ZBOT_UPDATER_SITE_METHOD = git
ZBOT_UPDATER_SUBDIR = updater
# The agent build: no `pack` (OpenSSL, zlib, zstd are host-side only).
ZBOT_UPDATER_CARGO_INSTALL_OPTS = --no-default-features
ZBOT_UPDATER_CARGO_BUILD_OPTS = --no-default-features
$(eval $(cargo-package))
else
ZBOT_UPDATER_VERSION = $(ZBOT_VERSION)
ZBOT_UPDATER_SITE = $(ZBOT_PREBUILT_DIR)
ZBOT_UPDATER_SITE_METHOD = local
define ZBOT_UPDATER_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/zbot-updater $(TARGET_DIR)/usr/bin/zbot-updater
endef
$(eval $(generic-package))
endif
