#!/usr/bin/env bash
# Make sure the PostgreSQL named by DATABASE_URL answers. If it is a local server
# that is installed but stopped, start it; if none is installed, say what to install.
set -euo pipefail
url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/wallet}"
hostport="${url#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$host" ] && port=5432

if pg_isready -q -h "$host" -p "$port" 2>/dev/null; then
  exit 0
fi
case "$host" in
  127.0.0.1|localhost|::1) ;;
  *) echo "PostgreSQL at $host:$port does not answer; start it or point DATABASE_URL elsewhere." >&2; exit 1 ;;
esac
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  echo "Starting local PostgreSQL $version ..." >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h "$host" -p "$port" && exit 0
    sleep 1
  done
  echo "PostgreSQL $version did not come up on $host:$port." >&2
  exit 1
fi
cat >&2 <<'MSG'
The tests need PostgreSQL (15 or newer) and none answers on DATABASE_URL.
Install it, e.g. on Debian/Ubuntu:  sudo apt-get install postgresql
or run one in a container:          docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15
then set DATABASE_URL=postgres://USER@HOST:PORT/wallet if it is not the default.
MSG
exit 1
