#!/bin/sh
# The script of a migration package (`zbot-updater pack ... --migrate-fip FILE
# --migrate-layout TARGET.toml`): a member of the package, not a file the board carries
# (`pack` embeds this file; see updater/README.md, "Migration packages").
#
# SWUpdate 2022.12 runs a script of type "shellscript" twice: `preinst` before any image or
# file of the package is written, `postinst` after all were written. The package's `files`
# put the new U-Boot, the target layout and, if packed, the new policy's variables
# (policy.env, passed as --env-file) into $STAGE (their paths are in sw-description,
# hence fixed here). postinst runs zbot-migrate-env (power-safe and rerunnable, see
# migrate/README.md); its exit status is the script's, so a migration that refuses (2) or
# cannot run (1) fails the install and SWUpdate reports it with the migration's message
# (the script's stdout goes to SWUpdate's log as TRACE, its stderr as ERROR: the migration's
# refusal reaches the log and the websocket as an error).
#
# The board's parameters (non-default card, mount points, fw_env.config files, policy env):
# the shell file $ZBOT_MIGRATE_ENV_CONF (default /etc/zbot/migrate-env.conf), if present, may set
#   ZBOT_MIGRATE_ENV       the command (default: zbot-migrate-env from PATH)
#   ZBOT_MIGRATE_ENV_ARGS  more arguments (e.g. --card /dev/mmcblk0 --config /etc/fw_env.config
#                          --env-file /etc/zbot/policy.env); word-split, no blanks in paths
set -u
STAGE=/tmp/zbot-migrate-env
ZBOT_MIGRATE_ENV=zbot-migrate-env
ZBOT_MIGRATE_ENV_ARGS=
CONF=${ZBOT_MIGRATE_ENV_CONF:-/etc/zbot/migrate-env.conf}
if [ -e "$CONF" ]; then
	. "$CONF" || { echo "zbot-migrate-env.sh: cannot read $CONF" >&2; exit 1; }
fi

case "${1:-}" in
preinst)
	# A stale stage from an earlier, interrupted install must not be used.
	rm -rf "$STAGE" && mkdir -p "$STAGE" || exit 1
	exit 0
	;;
postinst) ;;
*)
	echo "zbot-migrate-env.sh: called with '${1:-}', expected preinst or postinst" >&2
	exit 1
	;;
esac

for f in fip.bin layout.toml; do
	if [ ! -s "$STAGE/$f" ]; then
		echo "zbot-migrate-env.sh: $STAGE/$f missing: the package's files were not written" >&2
		exit 1
	fi
done
set -- --fip "$STAGE/fip.bin" --layout "$STAGE/layout.toml"
if [ -e "$STAGE/policy.env" ]; then
	set -- "$@" --env-file "$STAGE/policy.env"
fi
echo "zbot-migrate-env.sh: running $ZBOT_MIGRATE_ENV $* $ZBOT_MIGRATE_ENV_ARGS"
# shellcheck disable=SC2086 # ZBOT_MIGRATE_ENV_ARGS is a list of words
"$ZBOT_MIGRATE_ENV" "$@" $ZBOT_MIGRATE_ENV_ARGS
rc=$?
case $rc in
0) echo "zbot-migrate-env.sh: migrated" ;;
2) echo "zbot-migrate-env.sh: the migration refused this card (exit 2): nothing changed" >&2 ;;
*) echo "zbot-migrate-env.sh: the migration could not run (exit $rc): rerun the package" >&2 ;;
esac
exit $rc
