"""Is Redis reachable? One per-process answer, so an outage is two log lines, not thousands.

Everything that talks to Redis reports each failed operation here instead of logging
it: the cache (django-redis, through the logger below), the rate-limit pipeline
(foundation.ratelimits), the replica-pin lookup (foundation.db_router) and
the Celery queue collector (foundation.metrics.celery_queue). Each failure counts in
`wallet_redis_errors_total{store, operation}`. The first one while all was well logs
one WARNING; once every part that failed has worked again, one INFO says Redis is
back, how long it was gone and how many operations failed meanwhile.

Parts (`store`) are the cache aliases and "broker" (the Celery broker), since settings
may point each at a different server: a part comes back only through its own success,
so one server that stays down is never reported as back because another one works.

django-redis, with IGNORE_EXCEPTIONS, logs every connection error it swallows as an
ERROR with a traceback to the logger named by DJANGO_REDIS_LOGGER (its documented
setting) when DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS is on. Settings name the logger
below, and the logging configuration (foundation.logging) puts IgnoredErrorFilter
on it: it reports the failure here and drops the record.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django_redis import get_redis_connection

from foundation.metrics import registry as metrics

logger = logging.getLogger(__name__)

# DJANGO_REDIS_LOGGER: where django-redis logs the connection errors it ignores.
IGNORED_ERRORS_LOGGER = "foundation.store_health.django_redis"
BROKER = "broker"


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    cause = error.__cause__ or error  # django-redis wraps the client's error
    return f"{type(cause).__name__}: {cause}"


class _PerThread(threading.local):
    failures = 0  # failures this thread has reported


class StoreHealth:
    """Reachability of Redis for this process: which parts failed, since when, how often."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._failing: set[str] = set()
        self._since = 0.0
        self._failures = 0
        # Per thread, so a caller can tell whether its own call failed.
        self._local = _PerThread()

    @property
    def reachable(self) -> bool:
        return not self._failing

    def mark(self) -> int:
        """How many failures this thread has reported; pass it to succeeded(since=...)."""
        return self._local.failures

    def failed(self, store: str, operation: str, error: BaseException | None = None) -> None:
        """One operation on `store` (a cache alias or "broker") failed."""
        metrics.record_redis_error(store=store, operation=operation)
        self._local.failures += 1
        with self._lock:
            first = not self._failing
            if first:
                self._since, self._failures = time.monotonic(), 0
            self._failing.add(store)
            self._failures += 1
        if first:
            logger.warning(
                "%s unreachable (%s %s: %s); the cache falls back to the database and rate limits "
                "to RATE_LIMIT_FAIL_OPEN_*. Failed operations are counted in wallet_redis_errors_total; "
                "one more line when it is back",
                self.name,
                store,
                operation,
                _describe(error),
            )

    def succeeded(self, store: str, *, since: int | None = None) -> None:
        """An operation on `store` worked. With `since` (a mark() taken before the call),
        only if this thread reported no failure in between (a call that swallows errors)."""
        if store not in self._failing:  # the usual case: nothing to do, no lock
            return
        if since is not None and self.mark() != since:
            return
        with self._lock:
            if store not in self._failing:
                return
            self._failing.discard(store)
            if self._failing:
                return
            seconds, failures = time.monotonic() - self._since, self._failures
        logger.info(
            "%s reachable again after %.1f s; %d operations failed meanwhile", self.name, seconds, failures
        )

    def reset(self) -> None:
        """Forget everything (a fresh process); for tests."""
        with self._lock:
            self._failing.clear()
            self._failures = 0
        self._local = _PerThread()


redis_health = StoreHealth("Redis")


def _cache_alias(client: Any) -> str:
    """The cache alias whose connection pool `client` (a redis-py client) uses, or "cache"."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return "cache"
    for alias, config in settings.CACHES.items():
        if not config["BACKEND"].startswith("django_redis."):
            continue
        # Builds the redis-py client for the alias's pool; it does no I/O.
        if get_redis_connection(alias, write=True).connection_pool is pool:
            return alias
    return "cache"


class IgnoredErrorFilter(logging.Filter):
    """On the DJANGO_REDIS_LOGGER logger: count what django-redis ignored, instead of logging it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        try:
            store = _cache_alias(getattr(error, "connection", None))
        except Exception:  # never let bookkeeping fail a cache call
            store = "cache"
        redis_health.failed(store, "cache", error)
        return False
