"""A Redis outage is two log lines per process (gone, back) and a counter, not a flood.

Redis is never stopped (other test runs share it): the caches are pointed at a port
where nothing listens, then back at the real server. Failures are counted independently
of the code under test, at the redis-py connection every operation has to open.
"""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings
from prometheus_client import REGISTRY
from redis.connection import AbstractConnection

from foundation.db_router import user_pinned
from foundation.store_health import redis_health

pytestmark = pytest.mark.django_db

CLOSED_PORT = "redis://127.0.0.1:1/0"  # connections are refused at once


def redis_down(**extra) -> override_settings:
    caches_ = {alias: {**config, "LOCATION": CLOSED_PORT} for alias, config in settings.CACHES.items()}
    return override_settings(CACHES=caches_, **extra)


def redis_errors() -> float:
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "wallet_redis_errors"
        for sample in family.samples
        if sample.name == "wallet_redis_errors_total"
    )


@pytest.fixture
def failed_connects(monkeypatch) -> list[BaseException]:
    """Every redis-py connection attempt that failed, whatever code made it."""
    failures: list[BaseException] = []
    original = AbstractConnection.connect

    def connect(self):
        try:
            return original(self)
        except Exception as exc:
            failures.append(exc)
            raise

    monkeypatch.setattr(AbstractConnection, "connect", connect)
    return failures


def logged(caplog, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level]


def test_an_outage_logs_one_warning_counts_every_failure_and_one_info_when_back(
    api_client, make_user, make_wallet, caplog, failed_connects
):
    owner = make_user()
    wallet = make_wallet(owner, balance=500)
    client = api_client(owner)
    url = f"/api/v1/wallets/{wallet.id}"
    before = redis_errors()

    with caplog.at_level(logging.INFO), redis_down():
        responses = [client.get(url) for _ in range(100)]

    assert {r.status_code for r in responses} == {200}  # reads fail open and fall back to the database
    assert len(failed_connects) >= 100  # really down: at least one failed operation per request
    assert redis_errors() - before == len(failed_connects)  # every failure counted, once
    (warning,) = logged(caplog, logging.WARNING)
    assert warning.name == "foundation.store_health"
    assert "Redis unreachable" in warning.getMessage()
    assert logged(caplog, logging.ERROR) == []  # no traceback per ignored error any more
    assert not redis_health.reachable

    caplog.clear()
    with caplog.at_level(logging.INFO):
        back = [client.get(url) for _ in range(5)]

    assert {r.status_code for r in back} == {200}
    assert redis_health.reachable
    (info,) = [r for r in logged(caplog, logging.INFO) if r.name == "foundation.store_health"]
    assert "Redis reachable again" in info.getMessage()
    assert f"{len(failed_connects)} operations failed meanwhile" in info.getMessage()
    assert logged(caplog, logging.WARNING) == logged(caplog, logging.ERROR) == []


def test_money_requests_during_an_outage_are_counted_too_and_log_nothing_more(
    api_client, make_user, make_wallet, caplog, failed_connects
):
    owner = make_user()
    wallet = make_wallet(owner, balance=500)
    client = api_client(owner)
    before = redis_errors()

    with caplog.at_level(logging.INFO), redis_down():
        refused = [
            client.post(f"/api/v1/wallets/{wallet.id}/withdrawals", {"amount": 1}, format="json",
                        HTTP_IDEMPOTENCY_KEY=f"k{n}")
            for n in range(20)
        ]  # fmt: skip

    assert {r.status_code for r in refused} == {503}  # money fails closed (rate_limit_unavailable)
    assert redis_errors() - before == len(failed_connects) >= 20
    assert len(logged(caplog, logging.WARNING)) == 1
    assert logged(caplog, logging.ERROR) == []


def test_one_part_still_down_is_not_reported_back_because_another_works(caplog):
    with caplog.at_level(logging.INFO):
        redis_health.failed("ratelimit", "rate_limit", ConnectionError("refused"))
        redis_health.failed("default", "cache", ConnectionError("refused"))
        redis_health.succeeded("default")
        assert not redis_health.reachable
        redis_health.succeeded("ratelimit")
    assert redis_health.reachable
    assert [r.levelno for r in caplog.records if r.name == "foundation.store_health"] == [
        logging.WARNING,
        logging.INFO,
    ]


def test_a_call_whose_error_was_swallowed_is_no_success(caplog):
    redis_health.failed("default", "cache", ConnectionError("refused"))
    mark = redis_health.mark()
    redis_health.failed("default", "cache", ConnectionError("refused"))  # what the "call" did
    redis_health.succeeded("default", since=mark)
    assert not redis_health.reachable


def test_the_replica_pin_lookup_reports_to_the_same_place(caplog, failed_connects):
    with caplog.at_level(logging.INFO), redis_down():
        assert user_pinned(42) is True  # cannot tell: read the primary
        assert user_pinned(42) is True
    assert len(failed_connects) == 2
    assert len(logged(caplog, logging.WARNING)) == 1
    assert logged(caplog, logging.ERROR) == []
    assert user_pinned(42) is False  # the real Redis: not pinned, and Redis is back
    assert redis_health.reachable


def test_the_cache_alias_of_an_ignored_error_is_its_label(failed_connects):
    before = (
        REGISTRY.get_sample_value("wallet_redis_errors_total", {"store": "ratelimit", "operation": "cache"})
        or 0.0
    )
    broken = {**settings.CACHES["ratelimit"], "LOCATION": "redis://127.0.0.1:1/5"}
    with override_settings(CACHES={**settings.CACHES, "ratelimit": broken}):
        assert caches["ratelimit"].get("anything") is None
        assert caches["default"].get("anything") is None  # the other alias still works
    after = REGISTRY.get_sample_value(
        "wallet_redis_errors_total", {"store": "ratelimit", "operation": "cache"}
    )
    assert after == before + 1
