#!/bin/sh
# The migration step of a release: `python manage.py migrate --noinput`, run once, on
# its own, before new web/worker/beat processes start (the one-shot `migrate` service of
# docker-compose.yml; the same command in any other deployment). Never at web start-up.
# docs/migrations.md explains why migrations must stay backward compatible.
#
# Environment (besides the application's own, deploy/env.example):
#   MIGRATION_LOCK_TIMEOUT_MS  lock_timeout of the migration's connection (default 2000).
#                              A DDL statement waiting for its lock makes every later query
#                              on that table wait behind it; failing after 2 s and trying
#                              again is cheaper than stalling the API. No statement_timeout
#                              is set: index builds may legitimately run for minutes.
#   MIGRATION_ATTEMPTS         tries when a migration failed on a lock timeout (default 5).
#                              Each migration is one transaction, so a timed-out one left
#                              nothing behind and the next try resumes where it stopped.
#   DATABASE_ADMIN_URL         optional: an admin connection (superuser or CREATEROLE). When
#                              set, the least-privilege roles of docs/security.md are kept in
#                              place around the migration: the owner and application roles
#                              are created or converged first, the migration runs as the
#                              owner (MIGRATE_DATABASE_URL), and the application role's
#                              grants are rebuilt afterwards, so a new append-only table is
#                              narrowed to SELECT, INSERT before the new release uses it.
#   MIGRATE_DATABASE_URL       the connection migrations run on (default DATABASE_URL).
#   DB_OWNER_ROLE, DB_APP_ROLE role names (default wallet_owner, wallet_app).
#   DB_OWNER_PASSWORD, DB_APP_PASSWORD  optional role passwords (read by setup_db_roles from
#                              the environment, never from the command line).
set -eu

lock_timeout_ms="${MIGRATION_LOCK_TIMEOUT_MS:-2000}"
attempts="${MIGRATION_ATTEMPTS:-5}"

setup_roles() {
    set -- --owner "${DB_OWNER_ROLE:-wallet_owner}" --app "${DB_APP_ROLE:-wallet_app}" "$@"
    if [ -n "${DB_OWNER_PASSWORD:-}" ]; then set -- "$@" --owner-password-env DB_OWNER_PASSWORD; fi
    if [ -n "${DB_APP_PASSWORD:-}" ]; then set -- "$@" --app-password-env DB_APP_PASSWORD; fi
    DATABASE_URL="$DATABASE_ADMIN_URL" python manage.py setup_db_roles "$@"
}

if [ -n "${DATABASE_ADMIN_URL:-}" ]; then
    echo "migrate.sh: converging database roles" >&2
    setup_roles --reassign
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
try=1
while :; do
    echo "migrate.sh: manage.py migrate (try $try of $attempts, lock_timeout ${lock_timeout_ms}ms)" >&2
    if DATABASE_URL="${MIGRATE_DATABASE_URL:-$DATABASE_URL}" DB_LOCK_TIMEOUT_MS="$lock_timeout_ms" \
        python manage.py migrate --noinput >"$log" 2>&1; then
        cat "$log"
        break
    fi
    cat "$log" >&2
    # SQLSTATE 55P03 lock_not_available: someone held a lock the migration needed.
    if grep -q "lock timeout" "$log" && [ "$try" -lt "$attempts" ]; then
        sleep "$((try * 2))"
        try=$((try + 1))
        continue
    fi
    echo "migrate.sh: migration failed" >&2
    exit 1
done

if [ -n "${DATABASE_ADMIN_URL:-}" ]; then
    echo "migrate.sh: re-applying the application role's grants" >&2
    setup_roles
fi
echo "migrate.sh: done" >&2
