"""Quotas: fixed-window request budgets in Redis, applied as DRF throttles.

A budget ("600/m", "20/10m": a count per period of s, m, h or d) is counted in the
"ratelimit" cache under one key per (scope, key, window). Windows are fixed and
staggered per key (each key's windows start at its own offset, so every user's
counter does not reset at the same second). A quota picks the key (user, client IP,
source wallet), the budget (settings.RATE_LIMITS[scope]) and what to do when the
counter store is unreachable (RATE_LIMIT_FAIL_OPEN_READS / _MONEY). DRF turns a
refusal into 429 `rate_limited` with Retry-After (foundation.errors).

Why our own counters and not django-ratelimit's: its public API (`get_usage`,
`is_ratelimited`) spends two Redis round trips per budget (`add`, then `incr`) and
has no way to give a counted attempt back (the login guard needs that) or to send
every budget of a request in one pipeline. Here every counter a request spends is
created-if-missing and incremented in one pipelined round trip (`count`), and a
counted attempt can be given back (`give_back`). The arithmetic is a few lines; the
syntax and semantics (fixed windows, per-key stagger) are django-ratelimit's.

Each refusal is counted in the metrics. The first refusal of a counter's window (its value
is one past the budget) also sends `rate_limit_refused`, so an app above can keep a durable
record of it at one write per client and window, however hard the client keeps knocking
(the dashboard app writes it to the audit trail).
"""

from __future__ import annotations

import contextlib
import re
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.dispatch import Signal
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from foundation.errors import RateLimitUnavailable
from foundation.metrics import registry as metrics
from foundation.store_health import redis_health

_RATE = re.compile(r"^(\d+)/(\d*)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Sent with scope, key, limit and window_end (epoch seconds) for a counter's first refusal
# in its window (send_robust: the refusal is answered whatever a receiver does).
rate_limit_refused = Signal()
# Counters outlive their window a little, so a request at the window's edge still finds its count.
_EXPIRY_FUDGE = 5


def parse_rate(rate: str) -> tuple[int, int]:
    """'600/m' -> (600, 60); '20/10m' -> (20, 600)."""
    match = _RATE.match(rate.strip())
    if match is None:
        raise ValueError(f"rate {rate!r} is not <count>/<period> with period s, m, h or d (e.g. 20/10m)")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _UNIT_SECONDS[unit]


@dataclass(frozen=True)
class Counter:
    """One budget's counter for the current window."""

    scope: str
    cache_key: str
    limit: int
    ttl: int
    window_end: int
    money: bool = False  # a money budget: RATE_LIMIT_FAIL_OPEN_MONEY decides when Redis is down
    key: str = ""  # whose counter: "u<user id>", "ip<address>", ...

    @classmethod
    def for_key(
        cls, scope: str, key: str, rate: str, now: float | None = None, money: bool = False
    ) -> Counter:
        limit, period = parse_rate(rate)
        now = int(time.time() if now is None else now)
        offset = zlib.crc32(key.encode("utf-8", "surrogatepass")) % period
        window_end = now - ((now - offset) % period) + period
        cache_key = f"quota:{scope}:{key}:{window_end}"
        return cls(scope, cache_key, limit, period + _EXPIRY_FUDGE, window_end, money, key)

    def wait(self, now: float | None = None) -> int:
        """Seconds until this window ends (at least 1)."""
        return max(1, self.window_end - int(time.time() if now is None else now))


def count(counters: Sequence[Counter]) -> list[int] | None:
    """Spend one unit of every counter, in one round trip; their new values, or None if Redis fails.

    `SET key 0 EX ttl NX` then `INCR key` for each counter, pipelined (queue_counting). With
    a cache that is not Redis (`make run` without REDIS_URL: process memory) the cache API
    does it.
    """
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if not _is_redis(cache):
        values = []
        for counter in counters:
            cache.add(counter.cache_key, 0, counter.ttl)
            try:
                values.append(cache.incr(counter.cache_key))
            except ValueError:  # expired between the two calls
                cache.add(counter.cache_key, 1, counter.ttl)
                values.append(1)
        return values
    try:
        pipe = connection().pipeline(transaction=False)
        queue_counting(pipe, counters)
        replies = pipe.execute()
    except (RedisError, OSError) as exc:
        counting_failed(exc)
        return None
    counting_succeeded()
    return counted(replies)


def connection() -> Any:
    """The counters' Redis client (the "ratelimit" cache's)."""
    return get_redis_connection(settings.RATELIMIT_USE_CACHE)


def queue_counting(pipe: Any, counters: Sequence[Counter]) -> None:
    """Queue `SET key 0 EX ttl NX` and `INCR key` for each counter on a Redis pipeline."""
    cache = caches[settings.RATELIMIT_USE_CACHE]
    for counter in counters:
        full = cache.make_key(counter.cache_key)
        pipe.set(full, 0, ex=counter.ttl, nx=True)
        pipe.incr(full)


def counted(replies: Sequence[Any]) -> list[int]:
    """The counters' new values from the replies of queue_counting's commands."""
    return [int(reply) for reply in replies[1::2]]


def counting_failed(exc: BaseException) -> None:
    # Counted, and logged once per outage (store_health), not once per request.
    redis_health.failed(settings.RATELIMIT_USE_CACHE, "rate_limit", exc)


def counting_succeeded() -> None:
    redis_health.succeeded(settings.RATELIMIT_USE_CACHE)


def give_back(counters: Sequence[Counter]) -> None:
    """Return one unit to each counter (a counted login attempt that turned out right)."""
    cache = caches[settings.RATELIMIT_USE_CACHE]
    for counter in counters:
        # ValueError: the window rolled over meanwhile, so there is nothing to give back.
        with contextlib.suppress(ValueError):
            cache.decr(counter.cache_key)


def _is_redis(cache: Any) -> bool:
    return type(cache).__module__.startswith("django_redis.")


def client_ip(request: Any) -> str:
    """REMOTE_ADDR, or the address TRUSTED_PROXY_COUNT hops from the right of X-Forwarded-For."""
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "unknown")


class Quota(BaseThrottle, ABC):
    """One budget. Subclasses set `scope` and `money`, and implement `key`."""

    scope = ""
    money = False  # money-moving budgets follow RATE_LIMIT_FAIL_OPEN_MONEY

    def __init__(self) -> None:
        self._wait: float | None = None

    @abstractmethod
    def key(self, request: Request, view: Any, user_id: int | None) -> str | None:
        """The counter this request spends from, or None when the budget does not apply.

        `user_id` is the authenticated user's (None: anonymous)."""

    def allow_request(self, request: Request, view: Any) -> bool:
        self._wait = spend(request, view, [self])
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


class Quotas(BaseThrottle):
    """Several budgets spent together: one Redis round trip for all their counters."""

    def __init__(self, *quotas: Quota) -> None:
        self.quotas = quotas
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        self._wait = spend(request, view, self.quotas)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


def spend(request: Request, view: Any, quotas: Sequence[Quota]) -> float | None:
    """Count this request against each budget; None if all allow it, else the seconds to wait.

    Raises RateLimitUnavailable when the store is down and a budget fails closed.
    """
    user = getattr(request, "user", None)
    user_id = user.id if user is not None and user.is_authenticated else None
    counters = plan(request, view, quotas, user_id)
    return decide(counters, count(counters)) if counters else None


def plan(request: Request, view: Any, quotas: Sequence[Quota], user_id: int | None) -> list[Counter]:
    """The counters this request spends from (none when quotas are off or do not apply)."""
    if not settings.RATELIMIT_ENABLE:
        return []
    counters = []
    for quota in quotas:
        value = quota.key(request, view, user_id)
        rate = settings.RATE_LIMITS.get(quota.scope)
        if value is not None and rate:  # a budget left out of RATE_LIMITS is unlimited
            counters.append(Counter.for_key(quota.scope, value, rate, money=quota.money))
    return counters


def decide(counters: Sequence[Counter], values: Sequence[int] | None) -> float | None:
    """None if every counter is within its budget, else the seconds to wait.

    `values` None: the counter store was unreachable; each budget's fail-open setting
    decides (RateLimitUnavailable when one fails closed).
    """
    if values is None:
        for counter in counters:
            fail_open = (
                settings.RATE_LIMIT_FAIL_OPEN_MONEY if counter.money else settings.RATE_LIMIT_FAIL_OPEN_READS
            )
            if not fail_open:
                metrics.record_rate_limited(counter.scope, reason="unavailable")
                raise RateLimitUnavailable("Rate limiting is unavailable; retry shortly.")
        return None
    wait = None
    for counter, value in zip(counters, values, strict=True):
        if value > counter.limit:
            metrics.record_rate_limited(counter.scope)
            if value == counter.limit + 1:
                rate_limit_refused.send_robust(
                    sender=Counter,
                    scope=counter.scope,
                    key=counter.key,
                    limit=counter.limit,
                    window_end=counter.window_end,
                )
            wait = max(wait or 1, counter.wait())
    return wait


class UserQuota(Quota):
    """Every authenticated API request, per user."""

    scope = "user"

    def key(self, request: Request, view: Any, user_id: int | None) -> str | None:
        return f"u{user_id}" if user_id is not None else None


class AnonQuota(Quota):
    """Unauthenticated endpoints (register, token, refresh, logout), per client IP."""

    scope = "anon"

    def key(self, request: Request, view: Any, user_id: int | None) -> str | None:
        return f"ip{client_ip(request)}"
