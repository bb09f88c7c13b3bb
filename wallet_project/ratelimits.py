"""Quotas on top of django-ratelimit, applied as DRF throttles.

django-ratelimit keeps fixed-window counters in the "ratelimit" cache (Redis);
these classes pick the key (user, client IP, source wallet), the budget
(settings.RATE_LIMITS) and what to do when the counter store is unreachable
(settings.RATE_LIMIT_FAIL_OPEN_READS / _MONEY). DRF turns a refusal into 429
`rate_limited` with Retry-After (wallet_project.errors).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import caches
from django_ratelimit.core import ALL, EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate, get_usage
from redis.exceptions import RedisError
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from wallet_project import metrics
from wallet_project.errors import RateLimitUnavailable
from wallet_project.store_health import redis_health


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
    def key(self, request: Request, view: Any) -> str | None:
        """The counter this request spends from, or None when the budget does not apply."""

    def allow_request(self, request: Request, view: Any) -> bool:
        wait = spend(request, view, [self])
        self._wait = wait
        return wait is None

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


@dataclass(frozen=True)
class _Counter:
    quota: Quota
    cache_key: str
    limit: int
    period: int
    window: int


def spend(request: Request, view: Any, quotas: Sequence[Quota]) -> float | None:
    """Count this request against each budget; None if all allow it, else the seconds to wait.

    The counters are django-ratelimit's own: the same rate syntax, fixed windows
    staggered per key, cache keys and cache ("ratelimit"), so `get_usage` reads
    them and LoginGuard gives attempts back the same way. What differs is the
    transport: `get_usage` spends two round trips per budget (`cache.add`, then
    `cache.incr`), and a money request spends three budgets; here every counter
    is created-if-missing and incremented in one pipelined round trip.
    Raises RateLimitUnavailable when the store is down and a budget fails closed.
    """
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    counters = []
    for quota in quotas:
        value = quota.key(request, view)
        rate = settings.RATE_LIMITS.get(quota.scope)
        if value is None or not rate:  # a budget left out of RATE_LIMITS is unlimited
            continue
        limit, period = _split_rate(rate)
        window = _get_window(value, period)
        cache_key = _make_cache_key(f"quota:{quota.scope}", window, rate, value, ALL)
        counters.append(_Counter(quota, cache_key, limit, period, window))
    if not counters:
        return None
    counts = _increment([(c.cache_key, c.period + EXPIRATION_FUDGE) for c in counters])
    if counts is None:  # the counter store is unreachable
        for c in counters:
            fail_open = (
                settings.RATE_LIMIT_FAIL_OPEN_MONEY if c.quota.money else settings.RATE_LIMIT_FAIL_OPEN_READS
            )
            if not fail_open:
                metrics.record_rate_limited(c.quota.scope, reason="unavailable")
                raise RateLimitUnavailable("Rate limiting is unavailable; retry shortly.")
        return None
    wait = None
    now = int(time.time())
    for c, count in zip(counters, counts, strict=True):
        if count > c.limit:
            metrics.record_rate_limited(c.quota.scope)
            wait = max(wait or 1, c.window - now, 1)
    return wait


def _increment(keys: Sequence[tuple[str, int]]) -> list[int] | None:
    """SET key 0 EX ttl NX, then INCR key, for every key, in one round trip; None if Redis fails."""
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if not hasattr(cache, "client"):  # not Redis (the embedded default): count as get_usage does
        counts = []
        for key, ttl in keys:
            cache.add(key, 0, ttl)
            try:
                counts.append(cache.incr(key))
            except ValueError:  # expired between the two calls
                cache.add(key, 1, ttl)
                counts.append(1)
        return counts
    try:
        client = cache.client.get_client(write=True)
        pipe = client.pipeline(transaction=False)
        for key, ttl in keys:
            full = cache.client.make_key(key)
            pipe.set(full, 0, ex=ttl, nx=True)
            pipe.incr(full)
        replies = pipe.execute()
    except (RedisError, OSError) as exc:
        # Counted, and logged once per outage (store_health), not once per request.
        redis_health.failed(settings.RATELIMIT_USE_CACHE, "rate_limit", exc)
        return None
    redis_health.succeeded(settings.RATELIMIT_USE_CACHE)
    return [int(reply) for reply in replies[1::2]]


class UserQuota(Quota):
    """Every authenticated API request, per user."""

    scope = "user"

    def key(self, request: Request, view: Any) -> str | None:
        user = getattr(request, "user", None)
        return f"u{user.id}" if user is not None and user.is_authenticated else None


class MoneyQuota(UserQuota):
    """Money-moving POSTs, per user."""

    scope = "money"
    money = True


class WalletOutgoingQuota(Quota):
    """Outgoing transfers and withdrawals per source wallet, whichever client sends them."""

    scope = "wallet_outgoing"
    money = True

    def key(self, request: Request, view: Any) -> str | None:
        raw = view.kwargs.get("pk")
        if raw is None and isinstance(request.data, dict):
            raw = request.data.get("source_wallet_id")
        if not isinstance(raw, str):
            return None
        try:
            # Canonical form: every spelling UUID() accepts shares one counter.
            return f"w{UUID(raw)}"
        except ValueError:
            return None  # not a wallet id; validation answers 400


class AnonQuota(Quota):
    """Unauthenticated endpoints (register, token, refresh, logout), per client IP."""

    scope = "anon"

    def key(self, request: Request, view: Any) -> str | None:
        return f"ip{client_ip(request)}"


class LoginGuard:
    """Brute-force protection for logins: failed attempts per client IP and per username.

    Every attempt is counted *before* the password is checked (so guesses sent in
    parallel cannot all slip through between a check and a count), and a
    successful login gives its count back. Once either budget
    (RATE_LIMITS["login_ip"], ["login_user"]) is spent, attempts are refused with
    429 until the window ends. The per-username budget also stops an attacker who
    rotates IPs; it is time-boxed so it cannot lock a user out for long. If the
    counter store is down, RATE_LIMIT_FAIL_OPEN_LOGIN decides (default: refuse,
    503; issued tokens keep working).
    """

    def __init__(self, request: Any, username: str) -> None:
        self.request = request
        self.keys = {
            "login_ip": f"ip{client_ip(request)}",
            "login_user": self.username_key(username),
        }
        self._counted: list[str] = []

    @staticmethod
    def username_key(username: str) -> str:
        """One counter per name however it is spelled (NFKC, case-folded, trimmed).

        The guard runs before the username is validated, so it gets whatever string the
        client sent: the counter is keyed on a digest, which any string has (lone
        surrogates included) and whose length is fixed.
        """
        folded = unicodedata.normalize("NFKC", username).strip().casefold()[:150]
        return "user" + hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()

    def attempt(self) -> None:
        """Count this attempt; raise Throttled if this IP or username is over budget."""
        for scope, key in self.keys.items():
            rate = settings.RATE_LIMITS.get(scope)
            if not rate:
                continue
            usage = get_usage(
                self.request, group=f"quota:{scope}", key=lambda g, r, k=key: k, rate=rate, increment=True
            )
            if usage is None:
                continue
            # Unreachable: django-redis ignored the error and store_health counted it.
            if usage["limit"] == 0 and usage["time_left"] == -1:  # the counter store is unreachable
                if settings.RATE_LIMIT_FAIL_OPEN_LOGIN:
                    continue
                metrics.record_rate_limited(scope, reason="unavailable")
                raise RateLimitUnavailable("Login is unavailable; retry shortly.")
            redis_health.succeeded(settings.RATELIMIT_USE_CACHE)
            self._counted.append(scope)
            if usage["should_limit"]:
                metrics.record_rate_limited(scope)
                raise Throttled(
                    wait=max(1, usage["time_left"]), detail="Too many failed logins; retry later."
                )

    def succeeded(self) -> None:
        """A correct password: give back the attempts counted for this request."""
        for scope in self._counted:
            rate = settings.RATE_LIMITS[scope]
            key = self.keys[scope]
            _, period = _split_rate(rate)
            cache_key = _make_cache_key(f"quota:{scope}", _get_window(key, period), rate, key, ALL)
            # ValueError: the window rolled over meanwhile, so there is nothing to give back.
            with contextlib.suppress(ValueError):
                caches[settings.RATELIMIT_USE_CACHE].decr(cache_key)
