"""The Celery queue length, read from the Redis broker when /metrics is scraped.

A short timeout; Redis being down reports `wallet_celery_queue_up 0` instead of failing
(and foundation.store_health, not every scrape, says so in the log)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from prometheus_client import (
    REGISTRY,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from foundation.metrics.registry import MULTIPROC_DIR
from foundation.store_health import BROKER, redis_health

logger = logging.getLogger(__name__)

# --- Celery queue length ------------------------------------------------------


def _redis_url(broker_url: Any) -> str | None:
    """The broker URL as redis-py understands it, or None if the broker is not Redis."""
    if isinstance(broker_url, (list, tuple)):
        broker_url = broker_url[0] if broker_url else ""
    url = str(broker_url or "").split(";")[0].strip()  # kombu failover lists: use the first
    scheme = urlsplit(url).scheme
    if scheme in {"redis", "rediss", "unix"}:
        return url
    if scheme == "redis+socket":
        return "unix" + url[len("redis+socket") :]
    return None


def _queue_names() -> list[str]:
    names = [settings.CELERY_TASK_DEFAULT_QUEUE] if getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "") else []
    for queue in getattr(settings, "CELERY_TASK_QUEUES", None) or ():
        name = getattr(queue, "name", queue)  # kombu.Queue objects, or names (dict keys)
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


class CeleryQueueCollector(Collector):
    """Pending messages per Celery queue, read from the Redis broker at scrape time.

    kombu's Redis transport keeps a queue as a list named after it, plus one list per
    non-zero priority step named `<queue><sep><priority>` (kombu.transport.redis
    `_q_for_pri`); its own `_size` sums their LLEN, and so does this. Honours the
    transport options `global_keyprefix`, `sep` and `priority_steps`.
    """

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # collect() talks to Redis; never do that at registration time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        url = _redis_url(getattr(settings, "CELERY_BROKER_URL", ""))
        if url is None:
            return
        up = GaugeMetricFamily(
            "wallet_celery_queue_up", "1 if the Celery broker (Redis) answered the scrape."
        )
        try:
            lengths = self._lengths(url)
        except (redis.RedisError, OSError) as exc:
            redis_health.failed(BROKER, "queue_length", exc)  # logs once per outage, not per scrape
            up.add_metric([], 0)
            yield up
            return
        redis_health.succeeded(BROKER)
        up.add_metric([], 1)
        yield up
        family = GaugeMetricFamily(
            "wallet_celery_queue_length", "Messages waiting in a Celery queue.", labels=["queue"]
        )
        for name, length in lengths.items():
            family.add_metric([name], length)
        yield family

    def _lengths(self, url: str) -> dict[str, int]:
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
        prefix = options.get("global_keyprefix", "")
        sep = options.get("sep", "\x06\x16")
        steps = options.get("priority_steps", [0, 3, 6, 9])
        timeout = float(getattr(settings, "REDIS_TIMEOUT", 0.25))
        names = _queue_names()
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        try:
            with client.pipeline(transaction=False) as pipe:
                for name in names:
                    for step in steps:
                        pipe.llen(f"{prefix}{name}{sep}{step}" if step else f"{prefix}{name}")
                sizes = pipe.execute()
        finally:
            client.close()
        per_queue = len(steps)
        return {name: sum(sizes[i * per_queue : (i + 1) * per_queue]) for i, name in enumerate(names)}


QUEUE_COLLECTOR = CeleryQueueCollector()
if not MULTIPROC_DIR:
    REGISTRY.register(QUEUE_COLLECTOR)
