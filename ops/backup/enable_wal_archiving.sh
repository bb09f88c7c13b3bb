#!/usr/bin/env bash
# Turn on continuous WAL archiving on a running PostgreSQL server (PostgreSQL 12+).
#
# Sets, with ALTER SYSTEM (stored in the server's postgresql.auto.conf):
#   wal_level = replica, archive_mode = on, archive_timeout = $ARCHIVE_TIMEOUT and an
#   archive_command that copies each finished WAL segment to $BACKUP_DIR/wal safely:
#   never overwrites a different file, writes to a .tmp name, fsyncs, then renames,
#   so a segment in the archive is always complete. If the segment is already there
#   with the same bytes (the server crashed after copying but before it noted success)
#   the command succeeds, otherwise archiving stops and pg_stat_archiver says why.
# wal_level and archive_mode only take effect after a restart: the script says whether
# one is pending and exits 0; restart the server your usual way (pg_ctlcluster 15 main
# restart, systemctl, pg_ctl -D ... restart) and run the script again to confirm.
#
# Run it on the database host as the server's OS user (postgres): the server itself
# writes into $BACKUP_DIR/wal, so that directory must be local (or a mounted volume)
# and writable by it. Safe to run again: it only re-applies the same settings.
#
# Environment:
#   BACKUP_DIR      root of the backup store (required); WAL goes to $BACKUP_DIR/wal
#   PGHOST          server host or Unix socket directory to connect to (libpq default if unset)
#   PGPORT          server port (default 5432)
#   PGUSER          superuser to connect as (default: the OS user)
#   ARCHIVE_TIMEOUT force a segment switch after this long with traffic, bounding data loss (default 60s)
#   PGBIN           directory of the PostgreSQL tools (see lib.sh)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

: "${BACKUP_DIR:?BACKUP_DIR must name the backup directory}"
ARCHIVE_TIMEOUT="${ARCHIVE_TIMEOUT:-60s}"
require_not_root

case "$BACKUP_DIR" in
  /*) ;;
  *) die "BACKUP_DIR must be an absolute path (the server runs archive_command from its data directory)" ;;
esac
case "$BACKUP_DIR" in
  *"'"* | *'"'* | *'%'* | *'\'*) die "BACKUP_DIR may not contain quotes, % or backslashes" ;;
esac

wal_dir="$BACKUP_DIR/wal"
mkdir -p "$wal_dir" "$BACKUP_DIR/base"
chmod 700 "$BACKUP_DIR" "$wal_dir" "$BACKUP_DIR/base"

# %p: path of the segment relative to the data directory; %f: its file name.
# Success only if the archive now holds exactly this segment's bytes.
archive_command="test ! -f \"$wal_dir/%f\" && cp %p \"$wal_dir/%f.tmp\" && sync \"$wal_dir/%f.tmp\" && mv \"$wal_dir/%f.tmp\" \"$wal_dir/%f\" || cmp -s %p \"$wal_dir/%f\""

log "configuring WAL archiving to $wal_dir on ${PGHOST:-<default host>}:${PGPORT:-5432}"
pg_sql -v cmd="$archive_command" -v timeout="$ARCHIVE_TIMEOUT" <<'SQL'
ALTER SYSTEM SET wal_level = 'replica';
ALTER SYSTEM SET archive_mode = 'on';
ALTER SYSTEM SET archive_command = :'cmd';
ALTER SYSTEM SET archive_timeout = :'timeout';
SELECT pg_reload_conf() AS reloaded \gset
SQL

sleep 1  # the reload is asynchronous
pending="$(pg_sql -c "SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart")"
if [ -n "$pending" ]; then
  # The one line callers (and the drill) look for.
  echo "RESTART REQUIRED: $pending"
  log "restart the server for $pending to take effect, then run this script again to confirm"
  exit 0
fi

[ "$(pg_sql -c 'SHOW archive_mode')" = on ] || die "archive_mode is not on"
log "archiving is on: wal_level=$(pg_sql -c 'SHOW wal_level') archive_timeout=$(pg_sql -c 'SHOW archive_timeout')"
