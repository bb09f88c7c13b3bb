"""Read-through caching of non-critical data, invalidated on commit.

Never used for balances, ledger entries or anything a money decision reads. Redis
being down degrades to the database: a failed read is a miss and a failed write does
nothing (foundation.store_health counts them and logs the outage once).

Invalidation uses a generation token per object: the data is stored together with the
token that was current when its load began, and it counts only while that token is
still current. Writers replace the token after their transaction commits. A reader
that loaded old data just before a change stores it with the old token, which no
longer matches, so a change is visible to every read that starts after the commit. A
hit reads the token and the data in one MGET.

Storage: the "default" cache alias's Redis, through its connection
(`django_redis.get_redis_connection`), under the alias's key prefix, values pickled
by this module. Talking to Redis directly rather than through the cache API is what
lets a request's cached read join the same pipeline as its quota counters
(foundation.views: one Redis round trip per request), which the cache API cannot do.
Without Redis (`make run` without REDIS_URL: process memory) the Django cache API
does the same.
"""

from __future__ import annotations

import pickle  # nosec B403
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.db import transaction
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from foundation.store_health import redis_health

T = TypeVar("T")
ALIAS = DEFAULT_CACHE_ALIAS
_GENERATION_TTL = 7 * 24 * 3600


def uses_redis(alias: str) -> bool:
    """True if the cache alias is a django-redis cache (so its Redis can be used directly)."""
    return settings.CACHES[alias]["BACKEND"].startswith("django_redis.")


def read_keys(namespace: str, obj_id: object) -> tuple[str, str]:
    """The full Redis keys of an object's generation token and data, for an MGET."""
    cache = caches[ALIAS]
    return cache.make_key(f"{namespace}:{obj_id}:gen"), cache.make_key(f"{namespace}:{obj_id}")


def from_read(
    namespace: str,
    obj_id: object,
    values: Sequence[bytes | None] | None,
    loader: Callable[[], T],
    timeout: int | None = None,
) -> T:
    """The object's value from an MGET of its `read_keys` (None: the read failed), loading
    and storing it on a miss. `loader` returning None is not cached ("no such wallet")."""
    generation, value = _current(values)
    if value is not None:
        return value
    if generation is None:
        generation = _start_generation(namespace, obj_id)
    value = loader()
    if value is not None:
        _store(namespace, obj_id, generation, value, timeout)
    return value


def cached(namespace: str, obj_id: object, loader: Callable[[], T], timeout: int | None = None) -> T:
    """The cached value for (namespace, obj_id), loading and storing it on a miss."""
    return from_read(namespace, obj_id, mget(read_keys(namespace, obj_id)), loader, timeout)


def invalidate_on_commit(namespace: str, obj_id: object) -> None:
    """After the current transaction commits (or now, outside one), retire the cached value."""
    transaction.on_commit(lambda: _set(f"{namespace}:{obj_id}:gen", uuid.uuid4().hex, _GENERATION_TTL))


def peek(namespace: str, obj_id: object) -> Any:
    """The currently cached value, or None (for tests and diagnostics)."""
    return _current(mget(read_keys(namespace, obj_id)))[1]


# --- the two stores: Redis itself, or the Django cache API -------------------------


def _current(values: Sequence[bytes | None] | None) -> tuple[str | None, Any]:
    """(current generation, the value stored under it or None) from the two raw values."""
    if not values:
        return None, None
    raw_generation, raw_entry = values
    generation = _decode(raw_generation)
    entry = _decode(raw_entry)
    if generation is not None and entry is not None and entry[0] == generation:
        return generation, entry[1]
    return generation, None


def _decode(raw: Any) -> Any:
    if raw is None or not uses_redis(ALIAS):
        return raw  # the Django cache API decodes its own values
    # As django-redis itself does: the values are this module's own, in the service's own
    # Redis, which must be as trusted as the database (docs/security.md).
    return pickle.loads(raw)  # noqa: S301  # nosec B301


def mget(keys: Sequence[str]) -> list[Any] | None:
    """The raw values of `keys` (full keys, see read_keys) in one MGET; None if Redis failed."""
    if not uses_redis(ALIAS):
        cache = caches[ALIAS]
        found = cache.get_many([_plain(key) for key in keys])
        return [found.get(_plain(key)) for key in keys]
    try:
        values = get_redis_connection(ALIAS).mget(keys)
    except (RedisError, OSError) as exc:
        redis_health.failed(ALIAS, "cache", exc)
        return None
    redis_health.succeeded(ALIAS)
    return values


def _start_generation(namespace: str, obj_id: object) -> str:
    generation = uuid.uuid4().hex
    key = f"{namespace}:{obj_id}:gen"
    if not uses_redis(ALIAS):
        cache = caches[ALIAS]
        return generation if cache.add(key, generation, _GENERATION_TTL) else cache.get(key) or generation
    try:
        client = get_redis_connection(ALIAS)
        full = caches[ALIAS].make_key(key)
        if client.set(full, pickle.dumps(generation), ex=_GENERATION_TTL, nx=True):
            found = generation
        else:
            found = _decode(client.get(full)) or generation
    except (RedisError, OSError) as exc:
        redis_health.failed(ALIAS, "cache", exc)
        return generation
    redis_health.succeeded(ALIAS)
    return found


def _store(namespace: str, obj_id: object, generation: str, value: Any, timeout: int | None) -> None:
    if timeout is None:
        timeout = settings.CACHES[ALIAS].get("TIMEOUT")
    _set(f"{namespace}:{obj_id}", (generation, value), timeout)


def _set(key: str, value: Any, timeout: int | None) -> None:
    if not uses_redis(ALIAS):
        caches[ALIAS].set(key, value, timeout)
        return
    try:
        get_redis_connection(ALIAS).set(caches[ALIAS].make_key(key), pickle.dumps(value), ex=timeout)
    except (RedisError, OSError) as exc:
        redis_health.failed(ALIAS, "cache", exc)
        return
    # A process that only writes (a worker or command saving users) must see Redis come back too.
    redis_health.succeeded(ALIAS)


def _plain(full_key: str) -> str:
    # The Django cache API takes keys without the prefix and version it adds itself.
    prefix = caches[ALIAS].make_key("")
    return full_key[len(prefix) :] if full_key.startswith(prefix) else full_key
