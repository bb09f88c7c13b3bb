"""Primary/replica routing: only opted-in, non-critical reads ever leave the primary.

The `replica` alias (DATABASE_REPLICA_URL, a streaming standby) may lag the primary.
So the router is deliberately narrow:

- every write, every migration and every read outside `replica_reads()` goes to
  `default`, the primary. Money services lock and read their rows there; nothing
  a money decision depends on can be served stale;
- inside `replica_reads()` (wrapped around history and transfer *lists* only), reads
  go to `replica` when that alias is configured, unless the caller must see their
  own writes:
  - this request (or task) has written through the ORM, or is inside a
    transaction on the primary;
  - the user made a write request in the last REPLICA_PIN_SECONDS
    (`ReadYourWritesMiddleware` pins them in the cache after any authenticated
    POST/PUT/PATCH/DELETE). If the cache cannot answer, the user counts as pinned.

A lagging replica therefore shows a list a few moments old to users who have not just
moved money, and never anything else.

`database_from_url()` is the settings helper for DATABASE_URL: it also accepts a
libpq multi-host list, `postgres://user:pw@h1:p1,h2:p2/db?target_session_attrs=read-write`,
which dj-database-url alone cannot parse.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpRequest, HttpResponse

from foundation.store_health import redis_health

REPLICA_ALIAS = "replica"
DEFAULT_PIN_SECONDS = 10
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class _Scope:
    __slots__ = ("pinned", "user_id")

    def __init__(self, user_id: int | None) -> None:
        self.user_id = user_id
        self.pinned: bool | None = None  # looked up once per scope, on the first read


# Set while inside replica_reads(); None outside.
_replica_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("replica_scope", default=None)
# True once this request/task wrote through the router; reset per request by the middleware.
_wrote: contextvars.ContextVar[bool] = contextvars.ContextVar("wrote_to_primary", default=False)


# --- Opting in ------------------------------------------------------------------


@contextmanager
def replica_reads(*, user_id: int | None = None) -> Iterator[None]:
    """Route the reads run inside this block to the replica, when that is safe.

    Wrap it around the code that *evaluates* a list queryset (querysets are lazy:
    the paginator runs the query, not the selector). Pass the caller's user id so a
    user who has just written reads the primary.
    """
    token = _replica_scope.set(_Scope(user_id))
    try:
        yield
    finally:
        _replica_scope.reset(token)


def replica_configured() -> bool:
    return REPLICA_ALIAS in settings.DATABASES


# --- Read your own writes -----------------------------------------------------------


def _pin_key(user_id: int) -> str:
    return f"db-pin:{user_id}"


def pin_seconds() -> int:
    return int(getattr(settings, "REPLICA_PIN_SECONDS", DEFAULT_PIN_SECONDS))


def pin_to_primary(user_id: int | None = None) -> None:
    """Send this context's reads, and `user_id`'s for REPLICA_PIN_SECONDS, to the primary."""
    _wrote.set(True)
    if user_id is not None and replica_configured():
        cache.set(_pin_key(user_id), 1, timeout=pin_seconds())


def user_pinned(user_id: int) -> bool:
    """True if the user wrote recently, or if the cache cannot tell (Redis down)."""
    try:
        found = cache.has_key(_pin_key(user_id))
    except Exception as exc:  # any cache failure: be safe, read the primary
        redis_health.failed(DEFAULT_CACHE_ALIAS, "replica_pin", exc)
        return True
    if found is None:  # django-redis ignored a connection error (and store_health counted it)
        return True
    redis_health.succeeded(DEFAULT_CACHE_ALIAS)
    return found


def _must_read_primary(scope: _Scope) -> bool:
    if _wrote.get() or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return True
    if scope.user_id is None:
        return False
    if scope.pinned is None:
        scope.pinned = user_pinned(scope.user_id)
    return scope.pinned


class PrimaryReplicaRouter:
    """DATABASE_ROUTERS entry. See the module docstring for the rules."""

    def db_for_read(self, model: type, **hints: Any) -> str:
        scope = _replica_scope.get()
        if scope is None or not replica_configured() or _must_read_primary(scope):
            return DEFAULT_DB_ALIAS
        return REPLICA_ALIAS

    def db_for_write(self, model: type, **hints: Any) -> str:
        _wrote.set(True)
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # one database, two copies of it

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS  # the replica gets its schema by replication


class ReadYourWritesMiddleware:
    """Pin a user's list reads to the primary for a while after each write request.

    Goes right after RequestContextMiddleware. Pins after any authenticated unsafe
    request, whatever its status: a 503 may hide a commit the client will look for.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _wrote.set(False)  # threads are reused across requests
        try:
            response = self.get_response(request)
            if request.method not in SAFE_METHODS or _wrote.get():
                user_id = _request_user_id(request)
                if user_id is not None:
                    pin_to_primary(user_id)
            return response
        finally:
            _wrote.reset(token)


def _request_user_id(request: HttpRequest) -> int | None:
    from foundation.context import user_id_var  # set by the API's JWT authentication

    user_id = user_id_var.get()
    if user_id is not None:
        return user_id
    try:
        user = getattr(request, "user", None)  # the admin's session user
        return user.pk if user is not None and user.is_authenticated else None
    except DatabaseError:
        return None


# --- Settings helper ---------------------------------------------------------------


def database_from_url(url: str, **kwargs: Any) -> dict[str, Any]:
    """dj_database_url.parse(), plus libpq multi-host lists in the network location.

    `postgres://u:pw@10.0.0.1:5432,10.0.0.2:5432/wallet?target_session_attrs=read-write`
    becomes HOST "10.0.0.1,10.0.0.2" and PORT "5432,5432", which Django hands to libpq
    as-is: libpq tries the hosts in order and keeps the first that accepts writes.
    A host without a port gets 5432.
    """
    parts = urlsplit(url)
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    if "," not in hostlist:
        return dj_database_url.parse(url, **kwargs)
    hosts, ports = [], []
    for item in hostlist.split(","):
        host, port = _split_host_port(item)
        hosts.append(host)
        ports.append(port or "5432")
    single = urlunsplit(parts._replace(netloc=f"{userinfo}{at}{hostlist.split(',')[0]}"))
    config = dj_database_url.parse(single, **kwargs)
    config["HOST"] = ",".join(hosts)
    config["PORT"] = ",".join(ports)
    return config


def _split_host_port(item: str) -> tuple[str, str]:
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        return host, rest.lstrip(":")
    host, _, port = item.partition(":")
    if port and not port.isdigit():
        raise ValueError(f"bad port in database host list: {item!r}")
    return host, port
