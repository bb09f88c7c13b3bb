"""Quotas on top of django-ratelimit, applied as DRF throttles.

django-ratelimit keeps fixed-window counters in the "ratelimit" cache (Redis);
these classes pick the key (user, client IP, source wallet), the budget
(settings.RATE_LIMITS) and what to do when the counter store is unreachable
(settings.RATE_LIMIT_FAIL_OPEN_READS / _MONEY). DRF turns a refusal into 429
`rate_limited` with Retry-After (wallet_project.errors).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import caches
from django_ratelimit.core import ALL, _get_window, _make_cache_key, _split_rate, get_usage
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from wallet_project import metrics
from wallet_project.errors import RateLimitUnavailable


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
        value = self.key(request, view)
        rate = settings.RATE_LIMITS.get(self.scope)
        if value is None or not rate:  # a budget left out of RATE_LIMITS is unlimited
            return True
        usage = get_usage(
            request,
            group=f"quota:{self.scope}",
            key=lambda group, req: value,
            rate=rate,
            increment=True,
        )
        if usage is None:  # RATELIMIT_ENABLE is off
            return True
        if usage["limit"] == 0 and usage["time_left"] == -1:  # the counter store is unreachable
            fail_open = (
                settings.RATE_LIMIT_FAIL_OPEN_MONEY if self.money else settings.RATE_LIMIT_FAIL_OPEN_READS
            )
            if fail_open:
                return True
            metrics.record_rate_limited(self.scope, reason="unavailable")
            raise RateLimitUnavailable("Rate limiting is unavailable; retry shortly.")
        if usage["should_limit"]:
            metrics.record_rate_limited(self.scope)
            self._wait = max(1, usage["time_left"])
            return False
        return True

    def wait(self) -> float | None:
        return self._wait


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
            "login_user": f"user{username.strip().lower()[:150]}",
        }
        self._counted: list[str] = []

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
            if usage["limit"] == 0 and usage["time_left"] == -1:  # the counter store is unreachable
                if settings.RATE_LIMIT_FAIL_OPEN_LOGIN:
                    continue
                metrics.record_rate_limited(scope, reason="unavailable")
                raise RateLimitUnavailable("Login is unavailable; retry shortly.")
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
