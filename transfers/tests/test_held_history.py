"""The history of each wallet's held amount (transfers.models.HeldChange, transfers.0013):
what the balance at an instant reads its held amount from.

Every change of `held` is recorded by the wallet's trigger, stamped with the application's
time of the change; the migration fills in the history of existing wallets from their holds.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction

from transfers import reports
from transfers import services as ledger
from transfers.holds import hold_capture, hold_create, hold_void, holds_expire
from transfers.models import HeldChange
from transfers.tests.ledger_time import (
    START,
    clock_fixture,  # noqa: F401  (the `clock` fixture)
    iso,
)

pytestmark = pytest.mark.django_db

WALLET_URL = "/api/v1/wallets/{}"
BALANCE_URL = "/api/v1/wallets/{}/balance"
MIGRATION_SQL = Path(__file__).resolve().parents[1] / "migrations" / "sql" / "0013_held_history.sql"
# The migration's last statement: the history of existing wallets, from their holds.
BACKFILL_SQL = "INSERT INTO" + MIGRATION_SQL.read_text().rsplit("INSERT INTO", 1)[1]


def _history(*wallets) -> list[tuple]:
    return list(
        HeldChange.objects.filter(wallet_id__in=[w.id for w in wallets])
        .order_by("wallet_id", "changed_at", "id")
        .values_list("wallet_id", "changed_at", "held_after")
    )


@pytest.fixture
def holds_over_time(clock, make_user, make_wallet, api_client):
    """Holds created, partly captured (to another wallet), voided and expired on one wallet,
    with what GET /wallets/{id} showed after each step."""
    user, other_user = make_user(), make_user()
    clock.at(0)
    wallet, other = make_wallet(user, balance=1000), make_wallet(other_user, balance=500)
    client = api_client(user)
    shown = {}

    def step(seconds: float, change) -> None:
        clock.at(seconds)
        change()
        body = client.get(WALLET_URL.format(wallet.id)).json()
        shown[seconds] = (body["balance"], body["held"])

    holds = {}
    step(10, lambda: holds.update(a=hold_create(wallet_id=wallet.id, owner_id=user.id, amount=200)))
    step(20, lambda: holds.update(b=hold_create(wallet_id=wallet.id, owner_id=user.id, amount=50)))
    step(
        25,
        lambda: holds.update(
            c=hold_create(
                wallet_id=wallet.id, owner_id=user.id, amount=30, expires_at=START + timedelta(seconds=30)
            )
        ),
    )
    step(
        30,
        lambda: hold_capture(
            hold_id=holds["a"].id, owner_id=user.id, amount=150, destination_wallet_id=other.id
        ),
    )
    step(35, lambda: ledger.withdrawal_create(wallet_id=wallet.id, owner_id=user.id, amount=100))
    step(40, lambda: hold_void(hold_id=holds["b"].id, owner_id=user.id))
    step(45, holds_expire)
    step(50, lambda: hold_create(wallet_id=wallet.id, owner_id=user.id, amount=70))
    clock.at(60)
    return {"user": user, "wallet": wallet, "other": other, "client": client, "shown": shown}


def test_held_at_each_instant_is_what_the_wallet_showed_then(holds_over_time):
    client, wallet, shown = holds_over_time["client"], holds_over_time["wallet"], holds_over_time["shown"]

    def at(seconds: float) -> tuple[int, int]:
        body = client.get(
            BALANCE_URL.format(wallet.id), {"at": iso(START + timedelta(seconds=seconds))}
        ).json()
        return body["balance"], body["held"]

    assert shown == {
        10: (1000, 200),
        20: (1000, 250),
        25: (1000, 280),
        30: (850, 80),  # 150 captured, the hold's other 50 released
        35: (750, 80),  # a withdrawal: no change of held
        40: (750, 30),
        45: (750, 0),
        50: (750, 70),
    }
    assert {seconds: at(seconds) for seconds in shown} == shown
    assert at(5) == (1000, 0)  # before the first hold
    assert at(29.999999) == shown[25]  # just before the capture
    assert at(47) == shown[45]
    assert at(3600) == shown[50]


def test_only_changes_of_held_are_recorded(holds_over_time):
    wallet, other = holds_over_time["wallet"], holds_over_time["other"]

    history = _history(wallet)

    # One row per change, stamped with the change's own time; no row for the withdrawal,
    # nor for the capture's destination, whose held did not change.
    assert [(at - START, held) for _, at, held in history] == [
        (timedelta(seconds=s), held)
        for s, held in [(10, 200), (20, 250), (25, 280), (30, 80), (40, 30), (45, 0), (50, 70)]
    ]
    assert _history(other) == []


def test_the_history_is_append_only(holds_over_time):
    wallet = holds_over_time["wallet"]

    for statement in ("UPDATE transfers_heldchange SET held_after = 0", "DELETE FROM transfers_heldchange"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement + " WHERE wallet_id = %s", [wallet.id])

    assert len(_history(wallet)) == 7


def test_the_migration_backfills_the_history_the_trigger_would_have_written(
    holds_over_time, make_user, make_wallet, clock
):
    """The backfill from the holds (transfers.0013) reproduces the history row for row, so
    the held amount at any past instant reads the same as before the history existed."""
    user = make_user()
    clock.at(12)
    third = make_wallet(user, balance=300)
    hold = hold_create(wallet_id=third.id, owner_id=user.id, amount=300)
    clock.at(22)
    hold_capture(hold_id=hold.id, owner_id=user.id)  # all of it: held back to 0
    clock.at(60)
    wallets = (holds_over_time["wallet"], holds_over_time["other"], third)
    recorded = _history(*wallets)
    instants = [START + timedelta(seconds=s) for s in (5, 10, 12, 15, 22, 25, 30, 42, 45, 50, 60)]
    held_before = [
        [reports.balance_at(wallet_id=w.id, owner_id=w.owner_id, at=at).held for at in instants]
        for w in wallets
    ]

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred checks TRUNCATE must not skip
        cursor.execute("TRUNCATE transfers_heldchange")  # rolled back with the test
        cursor.execute(BACKFILL_SQL)

    assert _history(*wallets) == recorded
    held_after = [
        [reports.balance_at(wallet_id=w.id, owner_id=w.owner_id, at=at).held for at in instants]
        for w in wallets
    ]
    assert held_after == held_before
    assert held_after[0] == [0, 200, 200, 200, 250, 280, 80, 30, 0, 70, 70]
    assert held_after[2][1:6] == [0, 300, 300, 0, 0]


def test_the_backfill_nets_changes_made_at_one_instant(clock, make_user, make_wallet):
    """Holds created and ended at one instant leave one row, carrying the sum after all of them."""
    user = make_user()
    clock.at(0)
    wallet = make_wallet(user, balance=1000)
    clock.at(10)
    first = hold_create(wallet_id=wallet.id, owner_id=user.id, amount=100)
    hold_create(wallet_id=wallet.id, owner_id=user.id, amount=40)
    hold_void(hold_id=first.id, owner_id=user.id)

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred checks TRUNCATE must not skip
        cursor.execute("TRUNCATE transfers_heldchange")
        cursor.execute(BACKFILL_SQL)

    assert [held for _, _, held in _history(wallet)] == [40]
    found = reports.balance_at(wallet_id=wallet.id, owner_id=user.id, at=START + timedelta(seconds=10))
    assert found.held == 40
