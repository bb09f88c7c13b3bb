"""The Celery tasks through a real Redis broker and a real worker process.

The module starts one worker (`celery -A wallet_project worker --pool=solo`) against
this pytest process's test database, so the runs it stores are visible here. Tests are
transactional: what they write is committed before the worker reads it.

The worker consumes a queue named after this process and tasks are sent there
(`apply_async(queue=...)`, i.e. `.delay` plus a route), so two test runs sharing the
Redis test database never take each other's tasks: each worker answers from its own
database. Redis is part of the test environment:
when it is unreachable these tests fail, they do not skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from celery import Task
from celery.result import AsyncResult, EagerResult
from django.db import connection, transaction
from django.utils import timezone

from transfers import holds as hold_services
from transfers import services as ledger
from transfers.models import Discrepancy, Hold, IdempotencyRecord, ReconciliationRun
from transfers.tasks import cleanup_idempotency_records, expire_holds, reconcile_ledger
from wallet_project.tests.celery_worker import celery_worker as start_worker

RESULT_TIMEOUT = 30  # bounds a dead worker or broker: a failure instead of a hang


@pytest.fixture(scope="module")
def celery_worker(django_db_setup, tmp_path_factory) -> Iterator[str]:
    """A worker process consuming this test run's queue; yields the queue's name."""
    with start_worker(tag="tasks", output=tmp_path_factory.mktemp("celery")) as worker:
        yield worker.queue


def through_the_worker(task: Task, queue: str, **kwargs: object) -> object:
    """Send `task` with `kwargs` to the worker and wait (bounded) for what it returns."""
    result = task.apply_async(kwargs=kwargs, queue=queue)
    assert isinstance(result, AsyncResult)
    assert not isinstance(result, EagerResult)
    value = result.get(timeout=RESULT_TIMEOUT)
    assert result.successful()
    result.forget()
    return value


@pytest.mark.django_db(transaction=True)
def test_reconciliation_task_round_trips_and_stores_its_run(celery_worker, make_user, make_wallet):
    alice, bob = make_user(), make_user()
    source = make_wallet(alice, "USD", balance=1_000)
    destination = make_wallet(bob, "USD")
    ledger.transfer_create(
        source_wallet_id=source.id, destination_wallet_id=destination.id, initiated_by_id=alice.id, amount=400
    )

    payload = through_the_worker(reconcile_ledger, celery_worker)

    run = ReconciliationRun.objects.get(pk=payload["run_id"])
    assert payload == {
        "run_id": run.id,
        "status": "clean",
        "wallets_checked": 3,  # two user wallets and the USD system wallet
        "transfers_checked": 2,
        "discrepancies": 0,
    }
    assert (run.status, run.scope, run.wallets_checked, run.entries_checked) == ("clean", "full", 3, 4)
    assert run.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_reconciliation_task_reports_a_corrupted_wallet(celery_worker, make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, "EUR", balance=500)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE wallets_wallet SET balance = 499 WHERE id = %s", [wallet.id])
        cursor.execute("SET session_replication_role = origin")

    payload = through_the_worker(reconcile_ledger, celery_worker, wallet_id=str(wallet.id))

    assert (payload["status"], payload["wallets_checked"], payload["discrepancies"]) == (
        "discrepancies",
        1,
        1,
    )
    run = ReconciliationRun.objects.get(pk=payload["run_id"])
    assert (run.status, run.scope, run.wallet_id) == ("discrepancies", "wallet", wallet.id)
    assert list(
        Discrepancy.objects.filter(run=run).values_list("kind", "wallet_id", "expected", "actual")
    ) == [("balance_mismatch", wallet.id, 500, 499)]


@pytest.mark.django_db(transaction=True)
def test_cleanup_task_round_trips(celery_worker, make_user):
    user = make_user()
    for key, age in [("old-1", 48), ("old-2", 30), ("fresh", 1)]:
        record = IdempotencyRecord.objects.create(
            user=user,
            key=key,
            method="POST",
            path="/api/v1/transfers",
            request_hash="0" * 64,
            status_code=201,
            response_body=b"{}",
        )
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            created_at=timezone.now() - timedelta(hours=age)
        )

    deleted = through_the_worker(cleanup_idempotency_records, celery_worker)

    assert deleted == 2
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    # Repeating it is harmless.
    assert through_the_worker(cleanup_idempotency_records, celery_worker) == 0
    assert IdempotencyRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_expire_holds_task_releases_a_lapsed_hold(celery_worker, make_user, make_wallet, monkeypatch):
    owner = make_user()
    wallet = make_wallet(owner, "USD", balance=1_000)
    lasting = hold_services.hold_create(wallet_id=wallet.id, owner_id=owner.id, amount=100)
    # A hold made two hours ago for one hour: the money path's clock is set back while it
    # is created, so it has really lapsed for the worker, which reads the real time.
    two_hours_ago = timezone.now() - timedelta(hours=2)
    with monkeypatch.context() as patch:
        patch.setattr("transfers.holds.timezone", SimpleNamespace(now=lambda: two_hours_ago))
        lapsed = hold_services.hold_create(
            wallet_id=wallet.id, owner_id=owner.id, amount=300, expires_at=two_hours_ago + timedelta(hours=1)
        )
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (1_000, 400)

    assert through_the_worker(expire_holds, celery_worker) == 1

    lapsed.refresh_from_db()
    lasting.refresh_from_db()
    assert (lapsed.status, lasting.status) == ("expired", "pending")
    assert lapsed.finished_at is not None
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (1_000, 100)
    # Repeating it is harmless.
    assert through_the_worker(expire_holds, celery_worker) == 0
    assert Hold.objects.filter(status="expired").count() == 1
