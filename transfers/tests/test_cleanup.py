"""Idempotency-record cleanup: only expired records go, in batches, and replays keep working."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from transfers.idempotency import idempotency_cleanup
from transfers.models import IdempotencyRecord, Transfer
from users.models import User

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def make_records(user: User, count: int, age: timedelta) -> list[int]:
    """`count` stored outcomes for `user`, created `age` ago; their ids."""
    records = IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(
            user=user,
            key=str(uuid.uuid4()),
            method="POST",
            path="/api/v1/transfers",
            request_hash="0" * 64,
            status_code=201,
            response_body=b"{}",
        )
        for _ in range(count)
    )
    ids = [record.id for record in records]
    age_records(ids, age)
    return ids


def age_records(ids: list[int], age: timedelta) -> None:
    IdempotencyRecord.objects.filter(id__in=ids).update(created_at=timezone.now() - age)


def remaining() -> set[int]:
    return set(IdempotencyRecord.objects.values_list("id", flat=True))


def ttl() -> timedelta:
    return timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def test_only_records_older_than_the_ttl_are_deleted(make_user):
    user = make_user()
    expired = make_records(user, 3, ttl() + timedelta(minutes=1))
    almost_expired = make_records(user, 2, ttl() - timedelta(minutes=1))
    fresh = make_records(user, 1, timedelta(0))

    deleted = idempotency_cleanup()

    assert deleted == len(expired)
    assert remaining() == set(almost_expired + fresh)


def test_older_than_overrides_the_ttl(make_user):
    user = make_user()
    old = make_records(user, 2, timedelta(hours=3))
    young = make_records(user, 2, timedelta(hours=1))

    assert idempotency_cleanup(older_than_hours=2) == len(old)

    assert remaining() == set(young)


def test_dry_run_deletes_nothing_and_reports_the_count(make_user):
    user = make_user()
    make_records(user, 3, ttl() + timedelta(hours=1))
    make_records(user, 2, timedelta(minutes=1))
    before = remaining()
    out = StringIO()

    call_command("cleanup_idempotency", "--dry-run", stdout=out)

    hours = settings.IDEMPOTENCY_KEY_TTL_HOURS
    assert out.getvalue().strip() == f"Would delete 3 idempotency records older than {hours} hours."
    assert remaining() == before
    assert idempotency_cleanup(dry_run=True) == 3
    assert remaining() == before


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_batches_smaller_than_the_backlog_still_delete_everything(make_user, batch_size):
    user = make_user()
    make_records(user, 5, ttl() + timedelta(hours=1))
    kept = make_records(user, 2, timedelta(minutes=1))

    with CaptureQueriesContext(connection) as queries:
        deleted = idempotency_cleanup(batch_size=batch_size)

    assert deleted == 5
    assert remaining() == set(kept)
    # Bounded batches: one DELETE per batch, never one statement for the whole backlog.
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == math.ceil(5 / batch_size)


def test_command_uses_the_configured_batch_size(make_user, settings):
    settings.IDEMPOTENCY_CLEANUP_BATCH_SIZE = 2
    user = make_user()
    make_records(user, 5, ttl() + timedelta(hours=1))
    out = StringIO()

    call_command("cleanup_idempotency", stdout=out)

    assert "Deleted 5 idempotency records" in out.getvalue()
    assert not IdempotencyRecord.objects.exists()


def test_older_than_zero_deletes_everything_created_before_now(make_user):
    user = make_user()
    make_records(user, 2, timedelta(minutes=1))
    make_records(user, 1, ttl() + timedelta(hours=1))
    out = StringIO()

    call_command("cleanup_idempotency", "--older-than", "0", stdout=out)

    assert out.getvalue().strip() == "Deleted 3 idempotency records older than 0 hours."
    assert not IdempotencyRecord.objects.exists()


def test_negative_older_than_is_refused(make_user):
    make_records(make_user(), 1, ttl() + timedelta(hours=1))

    with pytest.raises(CommandError):
        call_command("cleanup_idempotency", "--older-than", "-1", stdout=StringIO())

    assert IdempotencyRecord.objects.count() == 1


# --- through the API ------------------------------------------------------------------------


def deposit(client, wallet, key: str, amount: int = 100, **extra):
    return client.post(
        f"/api/v1/wallets/{wallet.id}/deposits",
        {"amount": amount, **extra},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_a_fresh_key_still_replays_after_cleanup(api_client, make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner)
    client = api_client(owner)
    old = deposit(client, wallet, "old-key")
    fresh = deposit(client, wallet, "fresh-key", amount=250)
    assert (old.status_code, fresh.status_code) == (201, 201)
    age_records(list(IdempotencyRecord.objects.filter(key="old-key").values_list("id", flat=True)), 2 * ttl())

    assert idempotency_cleanup() == 1

    replay = deposit(client, wallet, "fresh-key", amount=250)
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.content == fresh.content
    wallet.refresh_from_db()
    assert wallet.balance == 350  # the replay moved nothing
    assert Transfer.objects.filter(destination_wallet=wallet).count() == 2
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh-key"]


def test_reference_stays_unique_after_its_idempotency_record_is_cleaned_up(
    api_client, make_user, make_wallet
):
    owner = make_user()
    wallet = make_wallet(owner)
    client = api_client(owner)
    first = deposit(client, wallet, "key-1", reference="invoice-7")
    assert first.status_code == 201
    original_id = first.json()["transfer"]["id"]
    age_records(list(IdempotencyRecord.objects.values_list("id", flat=True)), 2 * ttl())

    assert idempotency_cleanup() == 1
    assert not IdempotencyRecord.objects.exists()

    # The same key and body again: no record to replay, but the reference still holds.
    for key in ("key-1", "key-2"):
        again = deposit(client, wallet, key, reference="invoice-7")
        assert again.status_code == 409, again.content
        assert again["Content-Type"] == PROBLEM
        body = again.json()
        assert body["code"] == "duplicate_reference"
        assert body["original_transfer_id"] == original_id
    wallet.refresh_from_db()
    assert wallet.balance == 100
    assert Transfer.objects.filter(destination_wallet=wallet).count() == 1
