"""Container health check of the web role: exit 0 when GET /healthz answers 200.

Standard library only, and it never imports Django, so a check costs a few milliseconds.
The production settings refuse a Host header that is not in DJANGO_ALLOWED_HOSTS (400),
so the request names the first allowed host instead of 127.0.0.1, and says it came
through the TLS proxy (/healthz is exempt from the HTTPS redirect anyway).

Environment: GUNICORN_BIND (default 0.0.0.0:8000; the port is used),
DJANGO_ALLOWED_HOSTS, HEALTHCHECK_TIMEOUT_SECONDS (default 2).
"""

from __future__ import annotations

import http.client
import os
import sys


def probe_host(allowed_hosts: str) -> str:
    """A Host header value the settings accept: the first concrete allowed host."""
    for entry in (part.strip() for part in allowed_hosts.split(",")):
        if not entry or entry == "*":
            continue
        # ".example.com" allows every subdomain; "[::1]" is already in Host form.
        return "health" + entry if entry.startswith(".") else entry
    return "localhost"


def port_of(bind: str) -> int:
    """The TCP port of a gunicorn bind address ("0.0.0.0:8000", "[::]:8000", ":8000")."""
    first = bind.split(",")[0].strip()
    _, _, port = first.rpartition(":")
    return int(port) if port.isdigit() else 8000


def check() -> int:
    port = port_of(os.environ.get("GUNICORN_BIND", "0.0.0.0:8000"))
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT_SECONDS", "2"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "GET",
            "/healthz",
            headers={
                "Host": probe_host(os.environ.get("DJANGO_ALLOWED_HOSTS", "")),
                "X-Forwarded-Proto": "https",
                "User-Agent": "wallet-healthcheck",
            },
        )
        status = connection.getresponse().status
    except OSError as exc:
        print(f"healthz unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"healthz answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(check())
