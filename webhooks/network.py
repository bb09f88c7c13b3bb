"""Where a webhook may be posted, and the POST itself.

Server-side request forgery: an endpoint URL must not reach the service's own network
(a metadata service, the database, an admin port). So a URL is accepted only when its host
resolves to public addresses (not private, loopback, link-local, multicast, reserved, or an
IPv4 address hidden in IPv6), and this is checked when the endpoint is saved and again
before every delivery. The delivery then connects to the very address it checked (urllib3
pool on the IP, with the name as Host header, TLS SNI and certificate check), so a DNS
answer that changes between the check and the connection (rebinding) cannot redirect it.
Redirects are not followed: a 3xx is a failed attempt.

WEBHOOK_ALLOW_PRIVATE_NETWORKS and WEBHOOK_REQUIRE_HTTPS=false relax the rules for
development and tests (a receiver on 127.0.0.1); production refuses to start with either.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

from webhooks.errors import WebhookUrlForbidden, WebhookUrlInvalid, WebhookUrlUnresolvable

DEFAULT_PORTS = {"https": 443, "http": 80}
EXCERPT_BYTES = 512
USER_AGENT = "wallet-webhooks/1"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked address the POST connects to


def url_parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an acceptable URL, else WebhookUrlInvalid."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise WebhookUrlInvalid("The URL cannot be parsed.") from None
    scheme = parts.scheme.lower()
    allowed = ("https",) if settings.WEBHOOK_REQUIRE_HTTPS else ("https", "http")
    if scheme not in allowed:
        raise WebhookUrlInvalid(f"The URL must start with {' or '.join(s + '://' for s in allowed)}.")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlInvalid("The URL must not carry credentials; authenticate with the signature.")
    if not host:
        raise WebhookUrlInvalid("The URL has no host.")
    if parts.fragment:
        raise WebhookUrlInvalid("The URL must not have a fragment.")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise WebhookUrlInvalid("The URL's host is not a valid name.") from None
    if any(ch.isspace() or ord(ch) < 0x21 for ch in url):
        raise WebhookUrlInvalid("The URL must not contain spaces or control characters.")
    if host.rstrip(".") in {blocked.lower().rstrip(".") for blocked in settings.WEBHOOK_BLOCKED_HOSTS}:
        raise WebhookUrlForbidden("This host cannot receive webhooks.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or DEFAULT_PORTS[scheme], path


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is no part of it
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    return ip.is_global and not ip.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise WebhookUrlUnresolvable(f"{host} does not resolve.") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def target_check(url: str) -> Target:
    """The URL as a Target whose address was checked just now (see the module's docstring)."""
    scheme, host, port, path = url_parse(url)
    addresses = _resolve(host, port)
    if not addresses:
        raise WebhookUrlUnresolvable(f"{host} does not resolve.")
    if not settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS and not all(_is_public(a) for a in addresses):
        raise WebhookUrlForbidden(
            f"{host} resolves to a private, loopback, link-local or otherwise non-public address."
        )
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


@dataclass(frozen=True)
class Answer:
    status: int | None
    error: str  # "" for a 2xx; else a stable code (WebhookAttempt.error)
    excerpt: str


def post(target: Target, body: bytes, headers: dict[str, str]) -> Answer:
    """POST `body` to the target's checked address: one try, no redirects, bounded waits."""
    timeout = urllib3.Timeout(
        connect=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS, read=settings.WEBHOOK_TIMEOUT_SECONDS
    )
    if target.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1
        )
    host_header = (
        target.host if target.port == DEFAULT_PORTS[target.scheme] else f"{target.host}:{target.port}"
    )
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": host_header, "User-Agent": USER_AGENT},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = response.read(EXCERPT_BYTES, decode_content=False).decode("utf-8", "replace")
        finally:
            response.release_conn()
    except (
        urllib3.exceptions.NewConnectionError
    ) as exc:  # refused, unreachable (a ConnectTimeoutError subclass)
        return Answer(status=None, error="connection_failed", excerpt=str(exc)[:EXCERPT_BYTES])
    except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError, TimeoutError):
        return Answer(status=None, error="timeout", excerpt="")
    except urllib3.exceptions.SSLError as exc:
        return Answer(status=None, error="tls_error", excerpt=str(exc)[:EXCERPT_BYTES])
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return Answer(status=None, error="connection_failed", excerpt=str(exc)[:EXCERPT_BYTES])
    finally:
        pool.close()
    ok = 200 <= response.status < 300
    return Answer(status=response.status, error="" if ok else "http_error", excerpt=excerpt)
