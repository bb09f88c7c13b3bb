"""Brute-force protection for logins (the API's and the admin's, through users.services.user_login)."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Any

from django.conf import settings
from rest_framework.exceptions import Throttled

from foundation.errors import RateLimitUnavailable
from foundation.metrics import registry as metrics
from foundation.ratelimits import Counter, client_ip, count, give_back


class LoginGuard:
    """Failed attempts per client IP and per username.

    Every attempt is counted *before* the password is checked (so guesses sent in
    parallel cannot all slip through between a check and a count), and a successful
    login gives its count back. Once either budget (RATE_LIMITS["login_ip"],
    ["login_user"]) is spent, attempts are refused with 429 until the window ends.
    The per-username budget also stops an attacker who rotates IPs; it is time-boxed
    so it cannot lock a user out for long. If the counter store is down,
    RATE_LIMIT_FAIL_OPEN_LOGIN decides (default: refuse, 503; issued tokens keep
    working). Both counters go to Redis in one round trip.
    """

    def __init__(self, request: Any, username: str) -> None:
        self.keys = {"login_ip": f"ip{client_ip(request)}", "login_user": self.username_key(username)}
        self._counted: list[Counter] = []

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
        if not settings.RATELIMIT_ENABLE:
            return
        counters = [
            Counter.for_key(scope, key, settings.RATE_LIMITS[scope])
            for scope, key in self.keys.items()
            if settings.RATE_LIMITS.get(scope)
        ]
        if not counters:
            return
        values = count(counters)
        if values is None:  # the counter store is unreachable
            if settings.RATE_LIMIT_FAIL_OPEN_LOGIN:
                return
            for counter in counters:
                metrics.record_rate_limited(counter.scope, reason="unavailable")
            raise RateLimitUnavailable("Login is unavailable; retry shortly.")
        self._counted = counters
        over = [counter for counter, value in zip(counters, values, strict=True) if value > counter.limit]
        for counter in over:
            metrics.record_rate_limited(counter.scope)
        if over:
            wait = max(counter.wait() for counter in over)
            raise Throttled(wait=wait, detail="Too many failed logins; retry later.")

    def succeeded(self) -> None:
        """A correct password: give back the attempts counted for this request."""
        give_back(self._counted)
