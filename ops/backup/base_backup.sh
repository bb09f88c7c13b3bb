#!/usr/bin/env bash
# Take a verified base backup with pg_basebackup into $BACKUP_DIR/base/<UTC timestamp>/.
#
# Layout of one backup (written as <timestamp>.partial and renamed only once verified,
# so a directory without .partial is always a complete, checked backup):
#   data/          plain-format copy of the data directory, its WAL (-X stream) and a
#                  backup_manifest with a SHA-256 checksum of every file
#   config/        the server's postgresql.conf, pg_hba.conf and pg_ident.conf when they
#                  live outside the data directory (Debian), for reference on restore
#   backup.info    start/stop WAL location and file, stop time (server clock), server version
# The backup is checked with pg_verifybackup (every file's checksum, and the WAL it
# needs parsed with pg_waldump) before it is published. Plain format because
# pg_verifybackup of PostgreSQL 15 cannot read tar backups; compress at the storage layer.
#
# A base backup alone is a copy of one moment; point-in-time recovery needs the WAL
# archive (enable_wal_archiving.sh) from the backup onwards. The script refuses to run
# if archiving is off or failing. Run it as the server's OS user, on the database host
# or anywhere $BACKUP_DIR is mounted; the role needs REPLICATION (a superuser has it).
# Print the new backup's directory on stdout.
#
# Environment:
#   BACKUP_DIR  root of the backup store (required); backups go to $BACKUP_DIR/base
#   PGHOST      server host or Unix socket directory (libpq default if unset)
#   PGPORT      server port (default 5432)
#   PGUSER      role with REPLICATION to connect as (default: the OS user); a password, if
#               one is needed, comes from ~/.pgpass (PGPASSFILE), never from a prompt
#   PGBIN       directory of the PostgreSQL tools (see lib.sh)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

: "${BACKUP_DIR:?BACKUP_DIR must name the backup directory}"
require_not_root
mkdir -p "$BACKUP_DIR/base"

# One backup or prune at a time on this store.
exec 9>"$BACKUP_DIR/.lock"
flock -w 600 9 || die "another backup or prune holds $BACKUP_DIR/.lock"

[ "$(pg_sql -c 'SHOW archive_mode')" != off ] || die "archive_mode is off: run enable_wal_archiving.sh first"
archiver="$(pg_sql -c "SELECT coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
                        FROM pg_stat_archiver")"
[ "$archiver" = f ] || die "WAL archiving is failing (see pg_stat_archiver and the server log)"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
target="$BACKUP_DIR/base/$stamp"
partial="$target.partial"
[ ! -e "$target" ] && [ ! -e "$partial" ] || die "$target already exists"
mkdir -p "$partial"
trap 'rm -rf "$partial"' EXIT

log "pg_basebackup from ${PGHOST:-<default host>}:${PGPORT:-5432} into $partial"
"$PGBIN/pg_basebackup" -D "$partial/data" -Fp -X stream --checkpoint=fast \
  --manifest-checksums=SHA256 --label="wallet base backup $stamp" --no-password

log "verifying with pg_verifybackup"
"$PGBIN/pg_verifybackup" --quiet "$partial/data"

# Config files outside the data directory are not in the backup; keep copies beside it.
mkdir -p "$partial/config"
data_directory="$(pg_sql -c 'SHOW data_directory')"
while IFS='|' read -r name path; do
  if [ "${path#"$data_directory"/}" = "$path" ] && [ -r "$path" ]; then
    cp "$path" "$partial/config/$name"
  fi
done < <(pg_sql -c "SELECT 'postgresql.conf', setting FROM pg_settings WHERE name = 'config_file'
                    UNION ALL SELECT 'pg_hba.conf', setting FROM pg_settings WHERE name = 'hba_file'
                    UNION ALL SELECT 'pg_ident.conf', setting FROM pg_settings WHERE name = 'ident_file'")

label="$partial/data/backup_label"
{
  echo "label=wallet base backup $stamp"
  sed -n 's/^START WAL LOCATION: \([^ ]*\) (file \([0-9A-F]*\))$/start_lsn=\1\nstart_wal_file=\2/p' "$label"
  sed -n 's/^START TIME: /start_time=/p' "$label"
  # Recovery to a time before this would end before the backup is consistent.
  echo "stop_time=$(pg_sql -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")"
  echo "stop_lsn=$(pg_sql -c 'SELECT pg_current_wal_lsn()')"
  echo "server_version=$(pg_sql -c 'SHOW server_version_num')"
  echo "verified=pg_verifybackup"
} >"$partial/backup.info"
grep -q '^start_wal_file=' "$partial/backup.info" || die "could not read backup_label"

mv "$partial" "$target"
trap - EXIT
log "base backup complete: $target ($(du -sh "$target" | cut -f1))"
echo "$target"
