"""Read-through caching of non-critical data, invalidated on commit.

Never used for balances, ledger entries or anything a money decision reads.
Redis being down degrades to the database: the cache backend ignores
connection errors (IGNORE_EXCEPTIONS), so a failed get is a miss and a failed
set is a no-op.

Invalidation uses a generation token per object: the data is stored together
with the token that was current when its load began, and it counts only while
that token is still current. Writers replace the token after their transaction
commits. A reader that loaded old data just before a change stores it with the
old token, which no longer matches, so a change is visible to every read that
starts after the commit. A hit reads the token and the data in one round trip
(MGET).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache
from django.db import transaction

from foundation.store_health import redis_health

T = TypeVar("T")
_GENERATION_TTL = 7 * 24 * 3600


def _generation_key(namespace: str, obj_id: object) -> str:
    return f"{namespace}:{obj_id}:gen"


def _data_key(namespace: str, obj_id: object) -> str:
    return f"{namespace}:{obj_id}"


def _read(namespace: str, obj_id: object) -> tuple[str | None, Any]:
    """(current generation, the value stored under it or None): one MGET."""
    gen_key, data_key = _generation_key(namespace, obj_id), _data_key(namespace, obj_id)
    mark = redis_health.mark()
    found = cache.get_many([gen_key, data_key])
    # A failed read looks like a miss ({}); this tells Redis health which one it was.
    redis_health.succeeded(DEFAULT_CACHE_ALIAS, since=mark)
    generation, entry = found.get(gen_key), found.get(data_key)
    current = generation is not None and entry is not None and entry[0] == generation
    return generation, entry[1] if current else None


def cached(namespace: str, obj_id: object, loader: Callable[[], T], timeout: int | None = None) -> T:
    """The cached value for (namespace, obj_id), loading and storing it on a miss.

    `loader` returning None is not cached (e.g. "no such wallet").
    """
    generation, value = _read(namespace, obj_id)
    if value is not None:
        return value
    gen_key = _generation_key(namespace, obj_id)
    if generation is None:
        generation = uuid.uuid4().hex
        if not cache.add(gen_key, generation, _GENERATION_TTL):
            generation = cache.get(gen_key) or generation
    value = loader()
    if value is not None:
        if timeout is None:
            timeout = settings.CACHES["default"].get("TIMEOUT")
        cache.set(_data_key(namespace, obj_id), (generation, value), timeout)
    return value


def invalidate_on_commit(namespace: str, obj_id: object) -> None:
    """After the current transaction commits (or now, outside one), retire the cached value."""

    def bump() -> None:
        cache.set(_generation_key(namespace, obj_id), uuid.uuid4().hex, _GENERATION_TTL)

    transaction.on_commit(bump)


def peek(namespace: str, obj_id: object) -> Any:
    """The currently cached value, or None (for tests and diagnostics)."""
    return _read(namespace, obj_id)[1]
