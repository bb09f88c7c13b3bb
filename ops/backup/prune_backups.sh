#!/usr/bin/env bash
# Retention: keep the newest $KEEP_BASE_BACKUPS complete base backups and the WAL they need.
#
# Point-in-time recovery can reach any moment from the end of the oldest kept base
# backup until the newest archived WAL. The script deletes older base backups, then
# the archived WAL segments and backup history files older than the start of the
# oldest kept backup (pg_archivecleanup; timeline history files are kept), and
# unfinished backups (<timestamp>.partial) older than a day. It never deletes the
# last backup, and it takes the same lock as base_backup.sh so the two never overlap.
#
# Environment:
#   BACKUP_DIR        root of the backup store (required)
#   KEEP_BASE_BACKUPS number of complete base backups to keep (default 7; at least 1)
#   DRY_RUN           1 to print what would be deleted and delete nothing
#   PGBIN             directory of the PostgreSQL tools (see lib.sh)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

: "${BACKUP_DIR:?BACKUP_DIR must name the backup directory}"
keep="${KEEP_BASE_BACKUPS:-7}"
[[ "$keep" =~ ^[0-9]+$ ]] && [ "$keep" -ge 1 ] || die "KEEP_BASE_BACKUPS must be a whole number >= 1"
dry="${DRY_RUN:-0}"
base="$BACKUP_DIR/base"
[ -d "$base" ] || die "no base backups in $base"

exec 9>"$BACKUP_DIR/.lock"
flock -w 600 9 || die "another backup or prune holds $BACKUP_DIR/.lock"

remove() {
  if [ "$dry" = 1 ]; then log "would delete $1"; else log "deleting $1"; rm -rf "$1"; fi
}

# Timestamps sort lexically (YYYYMMDDTHHMMSSZ); only complete backups have backup.info.
mapfile -t complete < <(find "$base" -mindepth 1 -maxdepth 1 -type d ! -name '*.partial' \
  -exec test -f '{}/backup.info' ';' -print | sort)
[ "${#complete[@]}" -gt 0 ] || die "no complete base backup in $base: nothing is pruned"
drop=$(("${#complete[@]}" - keep))
for ((i = 0; i < drop; i++)); do remove "${complete[$i]}"; done
oldest="${complete[$((drop > 0 ? drop : 0))]}"

while IFS= read -r stale; do remove "$stale"; done < <(
  find "$base" -mindepth 1 -maxdepth 1 -type d -name '*.partial' -mmin +1440)

start_wal="$(sed -n 's/^start_wal_file=//p' "$oldest/backup.info")"
[[ "$start_wal" =~ ^[0-9A-F]{24}$ ]] || die "no start_wal_file in $oldest/backup.info"
log "oldest kept base backup: $oldest (WAL from $start_wal)"
if [ "$dry" = 1 ]; then
  "$PGBIN/pg_archivecleanup" -n "$BACKUP_DIR/wal" "$start_wal" | sed 's/^/  would delete /' >&2
else
  "$PGBIN/pg_archivecleanup" "$BACKUP_DIR/wal" "$start_wal"
fi
# Backup history files (<segment>.<offset>.backup) of deleted backups; pg_archivecleanup
# of PostgreSQL 15 leaves them. Compare the segment part, as it does (timeline aside).
for history in "$BACKUP_DIR"/wal/*.backup; do
  [ -e "$history" ] || continue
  name="$(basename "$history")"
  if [[ "${name:8:16}" < "${start_wal:8:16}" ]]; then remove "$history"; fi
done
