# Shared helpers for the ops/backup scripts. Sourced, never run.
# PGBIN: directory of the PostgreSQL server tools (pg_ctl, pg_basebackup, ...) whose major
#        version matches the server; default: the newest /usr/lib/postgresql/*/bin, else pg_config --bindir.

log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [ -z "${PGBIN:-}" ]; then
  PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$PGBIN" ] && command -v pg_config >/dev/null 2>&1; then
    PGBIN="$(pg_config --bindir)"
  fi
fi
[ -x "${PGBIN:-}/pg_ctl" ] || die "no PostgreSQL server tools found; set PGBIN (e.g. /usr/lib/postgresql/15/bin)"
export PGBIN

# PostgreSQL refuses to run its server as root, and files it reads or writes must
# belong to the server's OS user: these scripts run as that user (usually postgres).
require_not_root() {
  [ "$(id -u)" != 0 ] || die "run this as the PostgreSQL OS user, e.g. runuser -u postgres -- $0 ..."
}

# psql against PGHOST/PGPORT/PGUSER/PGDATABASE (libpq's own variables), unaligned, quiet, strict.
pg_sql() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "${PGDATABASE:-postgres}" "$@"; }
