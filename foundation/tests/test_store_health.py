"""A Redis outage is two log lines per process (gone, back) and a counter, not a flood.

Redis is never stopped (other test runs share it): the caches are pointed at a port
where nothing listens, then back at the real server. Failures are counted independently
of the code under test, at the redis-py connection every operation has to open.
"""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings
from prometheus_client import REGISTRY
from redis.connection import AbstractConnection

from foundation.db_router import user_pinned
from foundation.store_health import redis_health
from transfers import tasks as transfer_tasks
from users.models import User
from webhooks import services as webhook_services
from webhooks import tasks as webhook_tasks
from webhooks.dispatch import fan_out_settled
from webhooks.models import WebhookDelivery
from webhooks.tests.receiver import Receiver

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


# --- Outside web requests: Celery's beat tasks, the webhook sender, commands ---------------


@pytest.mark.django_db(transaction=True)  # reconciliation sets its own isolation level
def test_beat_tasks_and_the_webhook_sender_run_through_an_outage_without_redis(
    make_user, make_wallet, settings, monkeypatch, caplog, failed_connects
):
    """The periodic tasks as a worker runs them (Task.apply(): Celery's tracer, signals and
    the task function, without a broker) and `manage.py deliver_webhooks --once` (the sender
    `make run` starts) do their work with Redis gone: none of them needs it, so none of
    them makes a connection, counts a failure or logs a line about it."""
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS, settings.WEBHOOK_REQUIRE_HTTPS = True, False
    published: list[tuple] = []  # never the shared test broker: other runs' workers read it
    monkeypatch.setattr(webhook_tasks.send_webhook_lane, "apply_async", lambda *a, **kw: published.append(a))
    receiver = Receiver().start()
    try:
        alice = make_user()
        endpoint, _ = webhook_services.endpoint_create(owner_id=alice.id, url=receiver.url, event_types=["*"])
        make_wallet(alice, balance=500)  # a deposit.created event for the endpoint
        # Its delivery, made now: fanning out may wait for other runs' transactions on the cluster.
        fan_out_settled()
        before = redis_errors()

        with caplog.at_level(logging.INFO), redis_down():
            out = StringIO()
            call_command("deliver_webhooks", "--once", stdout=out)
            # After the sender: the dispatcher finds nothing due, so it sends no task to
            # the broker (Celery's, not a cache; a real worker could not run without it).
            results = {
                task.name: task.apply()
                for task in (
                    transfer_tasks.expire_holds,
                    transfer_tasks.reconcile_ledger,
                    transfer_tasks.cleanup_idempotency_records,
                    transfer_tasks.ledger_checkpoint,
                    webhook_tasks.dispatch_webhooks,
                )
            }
    finally:
        receiver.stop()

    assert {name: result.state for name, result in results.items()} == dict.fromkeys(results, "SUCCESS")
    assert results["transfers.tasks.reconcile_ledger"].result["discrepancies"] == 0
    assert results["webhooks.tasks.dispatch_webhooks"].result == 0
    assert published == []
    assert "1 delivered" in out.getvalue()
    assert [item.json["type"] for item in receiver.received] == ["deposit.created"]
    assert WebhookDelivery.objects.get(endpoint=endpoint).status == WebhookDelivery.Status.SUCCEEDED
    assert failed_connects == []  # no code path here talks to Redis
    assert redis_errors() == before
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert redis_health.reachable


@pytest.mark.django_db(transaction=True)
def test_a_command_that_only_writes_to_the_cache_logs_the_outage_once_and_its_end(
    monkeypatch, caplog, failed_connects
):
    """A process outside the web that reaches Redis only by retiring cached rows (a user
    saved by `manage.py createsuperuser`: users.signals) sees the outage as the web does:
    every failed write counted, one WARNING, no traceback, and one INFO once a write works."""
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "S3cure-pass-123")
    before = redis_errors()

    with caplog.at_level(logging.INFO), redis_down():
        for n in range(5):
            call_command(
                "createsuperuser",
                "--noinput",
                username=f"root{n}",
                email=f"root{n}@x.test",
                stdout=StringIO(),
            )

    assert User.objects.filter(username__startswith="root").count() == 5  # the work was done
    assert len(failed_connects) == 5  # one cache write per saved user, refused
    assert redis_errors() - before == 5
    (warning,) = logged(caplog, logging.WARNING)
    assert "Redis unreachable" in warning.getMessage()
    assert logged(caplog, logging.ERROR) == []
    assert not redis_health.reachable

    caplog.clear()
    with caplog.at_level(logging.INFO):
        call_command(
            "createsuperuser", "--noinput", username="root5", email="root5@x.test", stdout=StringIO()
        )

    assert redis_health.reachable  # the write worked: Redis is back for this process
    (info,) = [r for r in logged(caplog, logging.INFO) if r.name == "foundation.store_health"]
    assert "Redis reachable again" in info.getMessage()
    assert "5 operations failed meanwhile" in info.getMessage()
    assert logged(caplog, logging.WARNING) == logged(caplog, logging.ERROR) == []
