#!/usr/bin/env bash
# Patroni callback (on_start, on_role_change): when this member becomes the primary, point
# the PgBouncer in front of the cluster at it.
#
#   pgbouncer_follow.sh <pg host> <pg port> <pgbouncer dir> <pgbouncer port> <psql> \
#                       <action> <role> <scope>        (Patroni appends the last three)
#
# It rewrites <pgbouncer dir>/databases.ini (included by pgbouncer.ini) and tells PgBouncer
# to RELOAD and RECONNECT: server connections to the old primary are closed as they are
# released, new ones go here. A replica does nothing: only the new primary moves the
# pooler, so a member that lost the leader lock never points it back at itself.
set -euo pipefail
[ "$#" -ge 7 ] || { echo "usage: $0 host port dir bouncer_port psql action role [scope]" >&2; exit 2; }
pg_host=$1 pg_port=$2 dir=$3 bouncer_port=$4 psql=$5 role=$7
case "$role" in
  master|primary) ;;
  *) exit 0 ;;
esac
tmp="$dir/databases.ini.$$"
printf 'wallet = host=%s port=%s dbname=wallet\n' "$pg_host" "$pg_port" > "$tmp"
mv -f "$tmp" "$dir/databases.ini"
if [ -f "$dir/pgbouncer.pid" ]; then
  for command in RELOAD "RECONNECT wallet"; do
    PGPASSFILE="$dir/admin.pgpass" PGCONNECT_TIMEOUT=3 \
      "$psql" -X -q -h 127.0.0.1 -p "$bouncer_port" -U pgbouncer_admin -d pgbouncer -c "$command" \
      >/dev/null 2>&1 || echo "pgbouncer_follow: $command failed (is PgBouncer up?)" >&2
  done
fi
echo "pgbouncer_follow: $pg_host:$pg_port is the primary ($6)" >&2
