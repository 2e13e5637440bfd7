# The options every ZBot package shares first (where the binaries come from), then the packages.
include $(BR2_EXTERNAL_ZBOT_PATH)/zbot.mk
include $(sort $(wildcard $(BR2_EXTERNAL_ZBOT_PATH)/package/*/*.mk))
