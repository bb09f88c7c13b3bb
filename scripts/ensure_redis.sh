#!/usr/bin/env bash
# Make sure a Redis answers for the tests (TEST_REDIS_URL, default 127.0.0.1:6379).
# If redis-server is installed but not running locally, start a throwaway one.
set -euo pipefail
url="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
hostport="${url#redis://}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$host" ] && port=6379

ping() { python3 - "$host" "$port" <<'PY'
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
        s.sendall(b"PING\r\n")
        sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

ping && exit 0
case "$host" in
  127.0.0.1|localhost) ;;
  *) echo "Redis at $host:$port does not answer." >&2; exit 1 ;;
esac
if command -v redis-server >/dev/null 2>&1; then
  echo "Starting a local Redis on $port ..." >&2
  mkdir -p /tmp/wallet-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
               --dir /tmp/wallet-redis --logfile /tmp/wallet-redis/redis.log
  for _ in $(seq 1 20); do ping && exit 0; sleep 0.5; done
  echo "Redis did not come up on $port." >&2
  exit 1
fi
cat >&2 <<'MSG'
The tests need Redis (the cache, rate limits and a real Celery worker run on it) and none answers.
Install it, e.g. on Debian/Ubuntu:  sudo apt-get install redis-server
or run one in a container:          docker run -d -p 6379:6379 redis:7
or point TEST_REDIS_URL at one.
MSG
exit 1
