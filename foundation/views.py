"""The base of the apps' API views: authentication and quotas in one Redis round trip.

DRF authenticates a request (simplejwt's authentication reads the user's cached row:
one Redis round trip), then checks its throttles (every quota counter: a second one).
`OneRoundTripMixin.initial` does the same steps in the same order of decisions, but
sends the cached read and the counters to Redis together:

1. the authentication verifies the bearer token, which needs no I/O and yields the
   user id it was signed for (a forged or expired token is refused here, before any
   counter is spent on its behalf);
2. one pipeline: MGET of the user's cached row and `SET NX` + `INCR` of each quota
   counter (when the cache and the counters share a Redis, the default; otherwise two
   round trips);
3. the user is resolved from the cached row (the database on a miss) and must still be
   active; permissions are checked; then the quotas decide (429 with Retry-After).

An authentication class takes part by providing `verify`, `cached_row` and `resolve`
(RoundTripAuthentication); a view whose authentication does not, or a request without
credentials, goes DRF's usual way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from rest_framework.request import Request

from foundation import cache, ratelimits
from foundation.store_health import redis_health


class RoundTripAuthentication(Protocol):
    def verify(self, request: Request) -> Any | None:
        """The request's verified credential (no I/O), or None if it carries none."""

    def cached_row(self, verified: Any) -> tuple[str, object]:
        """The (namespace, id) of the cached row `resolve` needs (foundation.cache)."""

    def user_id(self, verified: Any) -> int:
        """The id of the user the credential was issued to."""

    def resolve(self, verified: Any, read: Sequence[bytes | None] | None) -> tuple[Any, Any]:
        """(user, auth) from the MGET of the cached row (None: the read failed)."""


class OneRoundTripMixin:
    """For DRF views: see the module docstring. Mix in before the DRF view class."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # The request's authenticators (DRF made them for it); a duck-typed look for the
        # protocol's methods: isinstance() against a runtime-checkable Protocol is slow.
        authenticator = next((a for a in request.authenticators if hasattr(a, "cached_row")), None)
        verified = authenticator.verify(request) if authenticator is not None else None
        if verified is None:
            super().initial(request, *args, **kwargs)  # DRF's own way
            return
        # DRF's initial(), with authentication and throttling joined.
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        request.version, request.versioning_scheme = self.determine_version(request, *args, **kwargs)
        quotas, throttles = [], []
        for throttle in self.get_throttles():
            if isinstance(throttle, ratelimits.Quotas):
                quotas.extend(throttle.quotas)
            elif isinstance(throttle, ratelimits.Quota):
                quotas.append(throttle)
            else:
                throttles.append(throttle)
        counters = ratelimits.plan(request, self, quotas, authenticator.user_id(verified))
        read, counts = _round_trip(cache.read_keys(*authenticator.cached_row(verified)), counters)
        request.user, request.auth = authenticator.resolve(verified, read)
        self.check_permissions(request)
        waits = [ratelimits.decide(counters, counts)] if counters else []
        waits += [t.wait() for t in throttles if not t.allow_request(request, self)]
        waits = [w for w in waits if w is not None]
        if waits:
            self.throttled(request, max(waits))


def _round_trip(
    keys: Sequence[str], counters: Sequence[ratelimits.Counter]
) -> tuple[list[bytes | None] | None, list[int] | None]:
    """(MGET of `keys` or None, the counters' new values or None): one pipeline when the
    cache and the counters share a Redis connection pool, else each on its own."""
    if not counters:
        return cache.mget(keys), None
    if not (cache.uses_redis(cache.ALIAS) and cache.uses_redis(settings.RATELIMIT_USE_CACHE)):
        return cache.mget(keys), ratelimits.count(counters)
    client = get_redis_connection(cache.ALIAS)
    if client.connection_pool is not ratelimits.connection().connection_pool:
        return cache.mget(keys), ratelimits.count(counters)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.mget(keys)
        ratelimits.queue_counting(pipe, counters)
        replies = pipe.execute()
    except (RedisError, OSError) as exc:
        redis_health.failed(cache.ALIAS, "cache", exc)  # one operation, one failure (one server)
        return None, None
    redis_health.succeeded(cache.ALIAS)
    ratelimits.counting_succeeded()
    return replies[0], ratelimits.counted(replies[1:])
