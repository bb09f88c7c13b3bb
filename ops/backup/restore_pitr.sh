#!/usr/bin/env bash
# Restore a base backup into a NEW cluster and replay archived WAL up to a moment in time.
#
# Usage: restore_pitr.sh <backup dir> <target time> <new data dir> <port>
#   <backup dir>   one base backup: $BACKUP_DIR/base/<timestamp> (from base_backup.sh); it must
#                  have finished before <target time> (see its backup.info stop_time)
#   <target time>  ISO 8601 with an explicit offset, e.g. 2026-11-29T14:05:00Z or
#                  2026-11-29 15:05:00.250+01:00. Every transaction that committed at or
#                  before it is kept; the first one after it, and everything later, is not.
#                  The archive must hold a commit later than the target (else PostgreSQL
#                  stops with "recovery ended before configured recovery target was
#                  reached"). `latest` replays every archived segment instead (disaster
#                  recovery: the primary is gone and you want all that was archived).
#   <new data dir> where the restored cluster goes; must not exist or be empty. The
#                  production data directory is never touched.
#   <port>         port the restored cluster listens on; must be free
#
# What it does: copies the backup's data directory, appends the recovery settings to
# its postgresql.auto.conf (restore_command copying from the WAL archive,
# recovery_target_time, recovery_target_action = promote), creates recovery.signal,
# starts the cluster with pg_ctl and waits until it has replayed to the target and
# been promoted (pg_is_in_recovery() = false). On failure it prints the end of the
# server log and exits non-zero, leaving the cluster stopped.
#
# The restored cluster does NOT archive WAL (archive_mode = off) unless KEEP_ARCHIVING=1:
# its new timeline would otherwise be written into the production archive, and a
# later restore that follows the latest timeline would follow this copy instead.
# Run as the PostgreSQL OS user (postgres) with tools of the backup's major version.
#
# Environment:
#   BACKUP_DIR        root of the backup store; WAL is read from $BACKUP_DIR/wal
#                     (default: two levels above <backup dir>)
#   WAL_ARCHIVE       the WAL archive directory, if not $BACKUP_DIR/wal
#   LISTEN_ADDRESSES  TCP addresses the restored cluster listens on (default 127.0.0.1)
#   SOCKET_DIR        its Unix socket directory (default /var/run/postgresql if writable, else /tmp)
#   PGUSER            superuser of the restored cluster to check it with (default: the OS user)
#   RECOVERY_TIMEOUT  seconds to wait for replay and promotion (default 600)
#   RECOVERY_TARGET_TIMELINE  timeline to follow (default latest, PostgreSQL's default)
#   KEEP_ARCHIVING    1 to keep the backup's archive settings (when the copy becomes the primary)
#   LOGFILE           server log of the restored cluster (default <new data dir>.log)
#   PGBIN             directory of the PostgreSQL tools (see lib.sh)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 4 ] || die "usage: $0 <backup dir> <target time ISO 8601> <new data dir> <port>"
backup="${1%/}"
target_input="$2"
new_data="${3%/}"
port="$4"
require_not_root

[ -f "$backup/backup.info" ] && [ -d "$backup/data" ] ||
  die "$backup is not a complete base backup (no backup.info or data/; .partial backups are unfinished)"
BACKUP_DIR="${BACKUP_DIR:-$(cd "$backup/../.." && pwd)}"
WAL_ARCHIVE="${WAL_ARCHIVE:-$BACKUP_DIR/wal}"
[ -d "$WAL_ARCHIVE" ] || die "no WAL archive at $WAL_ARCHIVE"
case "$WAL_ARCHIVE" in *"'"* | *'"'* | *'%'* | *'\'*) die "WAL_ARCHIVE may not contain quotes, % or backslashes" ;; esac
case "$new_data" in /*) ;; *) die "<new data dir> must be an absolute path" ;; esac
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -le 65535 ] || die "bad port $port"
if [ -z "${SOCKET_DIR:-}" ]; then
  SOCKET_DIR=/tmp
  [ -w /var/run/postgresql ] && SOCKET_DIR=/var/run/postgresql
fi
LISTEN_ADDRESSES="${LISTEN_ADDRESSES:-127.0.0.1}"
RECOVERY_TIMEOUT="${RECOVERY_TIMEOUT:-600}"
RECOVERY_TARGET_TIMELINE="${RECOVERY_TARGET_TIMELINE:-latest}"
LOGFILE="${LOGFILE:-$new_data.log}"

# The target: an explicit offset is required, so nobody restores to the wrong hour.
if [ "$target_input" = latest ]; then
  target=latest
else
  iso='^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?[ ]?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$'
  [[ "$target_input" =~ $iso ]] || die "target time must be ISO 8601 with an offset (…Z or …+HH:MM), got '$target_input'"
  target="$(date -u -d "$target_input" '+%Y-%m-%d %H:%M:%S.%6N+00')" || die "unreadable target time '$target_input'"
  target_epoch="$(date -u -d "$target_input" +%s.%N)"
  stop_time="$(sed -n 's/^stop_time=//p' "$backup/backup.info")"
  if awk -v t="$target_epoch" -v s="$(date -u -d "$stop_time" +%s.%N)" 'BEGIN { exit !(t < s) }'; then
    die "the target $target is before this backup finished ($stop_time): restore an older base backup"
  fi
  now_epoch="$(date -u +%s.%N)"
  if awk -v t="$target_epoch" -v n="$now_epoch" 'BEGIN { exit !(t > n) }'; then
    die "the target $target is in the future"
  fi
fi

if [ -e "$new_data" ] && [ -n "$(ls -A "$new_data")" ]; then
  die "$new_data exists and is not empty"
fi
if "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port"; [ $? -ne 2 ] || [ -e "$SOCKET_DIR/.s.PGSQL.$port" ]; then
  die "port $port is in use"
fi

log "restoring $backup into $new_data (port $port), target $target, WAL from $WAL_ARCHIVE"
mkdir -p "$new_data"
chmod 700 "$new_data"
cp -a "$backup/data/." "$new_data/"
rm -f "$new_data/standby.signal" "$new_data/postmaster.pid" "$new_data/postmaster.opts"

# Debian keeps the config files outside the data directory, so the backup has none.
if [ ! -f "$new_data/pg_hba.conf" ]; then
  if [ -f "$backup/config/pg_hba.conf" ]; then
    cp "$backup/config/pg_hba.conf" "$new_data/pg_hba.conf"
  else
    printf '%s\n' "local all all peer" "host all all 127.0.0.1/32 scram-sha-256" \
      "host all all ::1/128 scram-sha-256" >"$new_data/pg_hba.conf"
  fi
fi
[ -f "$new_data/pg_ident.conf" ] || cp "$backup/config/pg_ident.conf" "$new_data/pg_ident.conf" 2>/dev/null ||
  : >"$new_data/pg_ident.conf"
if [ ! -f "$new_data/postgresql.conf" ]; then
  # Not the production file: that one names the production data directory and port.
  echo "# Written by restore_pitr.sh. Tuning of the original server: $backup/config/postgresql.conf" \
    >"$new_data/postgresql.conf"
fi

archive_setting="archive_mode = 'off'"
[ "${KEEP_ARCHIVING:-0}" = 1 ] && archive_setting="# archive settings kept from the backup (KEEP_ARCHIVING=1)"
cat >>"$new_data/postgresql.auto.conf" <<CONF
# --- restore_pitr.sh $(date -u +%Y-%m-%dT%H:%M:%SZ): point-in-time recovery of $backup
port = $port
listen_addresses = '$LISTEN_ADDRESSES'
unix_socket_directories = '$SOCKET_DIR'
$archive_setting
restore_command = 'cp "$WAL_ARCHIVE/%f" "%p"'
recovery_target_timeline = '$RECOVERY_TARGET_TIMELINE'
CONF
if [ "$target" != latest ]; then
  cat >>"$new_data/postgresql.auto.conf" <<CONF
recovery_target_time = '$target'
recovery_target_inclusive = on
recovery_target_action = 'promote'
CONF
fi
touch "$new_data/recovery.signal"

fail() {
  log "ERROR: $*; last lines of $LOGFILE:"
  tail -n 30 "$LOGFILE" >&2 || true
  "$PGBIN/pg_ctl" -D "$new_data" -m immediate stop >/dev/null 2>&1 || true
  exit 1
}

started=$(date +%s)
"$PGBIN/pg_ctl" -D "$new_data" -l "$LOGFILE" -w -t "$RECOVERY_TIMEOUT" start >/dev/null ||
  fail "the restored cluster did not start"

psql_new() { PGHOST="$SOCKET_DIR" PGPORT="$port" pg_sql "$@"; }
while :; do
  in_recovery="$(psql_new -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)"
  [ "$in_recovery" = f ] && break
  "$PGBIN/pg_ctl" -D "$new_data" status >/dev/null || fail "the restored cluster stopped during recovery"
  [ $(($(date +%s) - started)) -lt "$RECOVERY_TIMEOUT" ] || fail "still in recovery after ${RECOVERY_TIMEOUT}s"
  sleep 0.2
done

# The target settings only act under recovery.signal, but a standby later cloned from
# this cluster would inherit them: take them out of postgresql.auto.conf (no reload needed).
psql_new <<'SQL'
ALTER SYSTEM RESET recovery_target_time;
ALTER SYSTEM RESET recovery_target_inclusive;
ALTER SYSTEM RESET recovery_target_timeline;
ALTER SYSTEM RESET recovery_target_action;
SQL

grep -E 'recovery stopping|last completed transaction|selected new timeline|archive recovery complete' \
  "$LOGFILE" | sed 's/^/  server: /' >&2 || true
log "restored cluster promoted in $(($(date +%s) - started))s: port $port, data $new_data, timeline $((16#$(psql_new -c 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)')))"
