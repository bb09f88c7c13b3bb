"""The outbox's invariants in PostgreSQL, with real commits: events are append-only, a
rolled-back movement leaves none, and one wallet's events are in its ledger's order."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import IntegrityError, InternalError

from events.models import Event
from testing.threads import run_concurrently
from transfers import services
from transfers.errors import InsufficientFunds
from transfers.models import LedgerEntry, Transfer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(make_user, make_wallet):
    alice, bob = make_user("alice"), make_user("bob")
    return alice, bob, make_wallet(alice, balance=10_000), make_wallet(bob, balance=10_000)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events_event SET type = 'hold.voided' WHERE sequence = %s",
        "UPDATE events_event SET data = '{}'::jsonb WHERE sequence = %s",
        "DELETE FROM events_event WHERE sequence = %s",
    ],
)
def test_postgresql_refuses_to_change_or_delete_an_event(people, sql):
    event = Event.objects.order_by("-sequence").first()
    with (
        pytest.raises((IntegrityError, InternalError), match="events_event is append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [event.sequence])
    assert Event.objects.get(pk=event.pk).data == event.data


def test_a_rolled_back_movement_leaves_no_event(people):
    alice, _bob, a, b = people
    events, transfers = Event.objects.count(), Transfer.objects.count()

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.transfer_create(
            source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=5
        )
        assert Event.objects.count() == events + 2  # written, in the transaction
        raise Abort
    with pytest.raises(InsufficientFunds):
        services.transfer_create(
            source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=10**9
        )

    assert (Event.objects.count(), Transfer.objects.count()) == (events, transfers)


def test_concurrent_movements_on_one_wallet_have_events_in_its_ledgers_order(people, settings):
    alice, bob, a, b = people
    # The services wait for a wallet's lock in one attempt (the API's executor retries).
    settings.DB_LOCK_ATTEMPT_MS = 30_000

    def out(i: int):
        return lambda: services.transfer_create(
            source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=i
        )

    def back(i: int):
        return lambda: services.transfer_create(
            source_wallet_id=b.id, destination_wallet_id=a.id, initiated_by_id=bob.id, amount=i
        )

    def deposit(i: int):
        return lambda: services.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=i)

    jobs = [make(i) for i in range(1, 9) for make in (out, back, deposit)]
    results = run_concurrently(jobs)
    assert all(isinstance(r, Transfer) for r in results), results

    for wallet in (a, b):
        ledger = list(
            LedgerEntry.objects.filter(wallet_id=wallet.id)
            .order_by("id")
            .values_list("transfer_id", flat=True)
        )
        events = list(
            Event.objects.filter(wallet_id=wallet.id)
            .exclude(type=Event.Type.WALLET_STATUS_CHANGED)
            .order_by("sequence")
            .values_list("data", flat=True)
        )
        told = [data["transfer"]["id"] if "transfer" in data else data["id"] for data in events]
        assert told == [str(t) for t in ledger]
        assert len(told) == (1 + 24 if wallet is a else 1 + 16)
