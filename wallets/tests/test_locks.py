"""The money path's one row lock (wallets.locks): its SQL, what it returns, and how it waits.

The threaded tests run with `transaction=True`: each thread has its own connection and
really commits, so PostgreSQL, not a mock, decides who waits for whom.
"""

from __future__ import annotations

import re
import time
import uuid
from functools import partial

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from foundation.db import LOCK_NOT_AVAILABLE, sqlstate
from testing.threads import Threads, held_in_transaction, lock_waiters, run_concurrently, wait_until
from wallets.locks import (
    LOCK_BY_ID_SQL,
    LOCK_OWN_AND_OTHER_SQL,
    LOCK_OWN_SQL,
    LOCKED_FIELDS,
    wallets_lock_by_id,
    wallets_lock_for_movement,
)
from wallets.models import Wallet
from wallets.selectors import WALLET_COLUMNS, WALLET_FIELDS
from wallets.services import system_wallet_id


def lock(own: Wallet | uuid.UUID, owner_id: int, other: Wallet | uuid.UUID | None = None) -> dict:
    """wallets_lock_for_movement in a transaction of its own (the locks end with it)."""
    with transaction.atomic():
        return wallets_lock_for_movement(
            own_wallet_id=getattr(own, "id", own),
            owner_id=owner_id,
            other_wallet_id=getattr(other, "id", other),
            wait_ms=5000,
        )


# --- the SQL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql", [LOCK_OWN_SQL, LOCK_OWN_AND_OTHER_SQL, LOCK_BY_ID_SQL], ids=["own", "own-and-other", "by-id"]
)
def test_the_lock_reads_user_wallets_only_in_id_order_without_blocking_foreign_keys(sql):
    # First the attempt's lock timeout, for this transaction only (set_config(..., true)).
    assert sql.startswith("WITH attempt AS MATERIALIZED (SELECT set_config('lock_timeout', %s, true)) ")
    columns = ", ".join(f"w.{name}" for name in LOCKED_FIELDS)
    assert f" SELECT {columns} FROM wallets_wallet w, attempt WHERE w.kind = 'user' AND " in sql
    # One fixed order (no A->B / B->A deadlock); NO KEY so ledger rows can still reference the wallet.
    assert sql.endswith(" ORDER BY w.id FOR NO KEY UPDATE OF w")
    assert sql.count("%s") == {LOCK_OWN_SQL: 3, LOCK_OWN_AND_OTHER_SQL: 4, LOCK_BY_ID_SQL: 2}[sql]


def test_the_owner_predicate_applies_to_the_callers_wallet_only():
    assert "(w.id = %s AND w.owner_id = %s)" in LOCK_OWN_SQL
    # A transfer's destination is anybody's user wallet: no owner predicate on it.
    assert "((w.id = %s AND w.owner_id = %s) OR w.id = %s)" in LOCK_OWN_AND_OTHER_SQL
    assert LOCK_OWN_AND_OTHER_SQL.count("owner_id = %s") == 1


def test_the_lock_by_id_asks_for_no_owner():
    # Operators' corrections and the expiry task act on somebody's wallet: ids alone, as one array.
    assert LOCK_BY_ID_SQL.endswith(
        " WHERE w.kind = 'user' AND w.id = ANY(%s) ORDER BY w.id FOR NO KEY UPDATE OF w"
    )
    assert "owner_id = " not in LOCK_BY_ID_SQL


def test_locked_fields_are_real_wallet_columns():
    columns = {field.attname for field in Wallet._meta.concrete_fields}

    assert set(LOCKED_FIELDS) <= columns
    assert len(set(LOCKED_FIELDS)) == len(LOCKED_FIELDS)
    assert LOCKED_FIELDS[0] == "id"  # the helper keys its answer on the first column
    # What the money path's checks and its response read of a locked wallet.
    assert {"owner_id", "kind", "currency", "status", "balance"} <= set(LOCKED_FIELDS)


def test_the_lock_and_the_wallet_read_select_one_column_list_in_the_models_order():
    order = [field.attname for field in Wallet._meta.concrete_fields]

    for fields, extra in ((LOCKED_FIELDS, ("head_hash", "entry_count")), (WALLET_FIELDS, ("updated_at",))):
        assert fields == (*WALLET_COLUMNS, *extra)
        assert sorted(fields, key=order.index) == list(fields)


@pytest.mark.django_db
def test_the_helper_runs_the_pinned_statement_once(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    own, other = make_wallet(alice), make_wallet(bob)

    with CaptureQueriesContext(connection) as one, transaction.atomic():
        wallets_lock_for_movement(own_wallet_id=own.id, owner_id=alice.id, other_wallet_id=None, wait_ms=5000)
    with CaptureQueriesContext(connection) as two, transaction.atomic():
        wallets_lock_for_movement(
            own_wallet_id=own.id, owner_id=alice.id, other_wallet_id=other.id, wait_ms=5000
        )
    with CaptureQueriesContext(connection) as by_id, transaction.atomic():
        locked = wallets_lock_by_id(wallet_ids=[other.id, own.id], wait_ms=5000)

    def statements(captured: CaptureQueriesContext) -> list[str]:
        return [q["sql"] for q in captured if q["sql"].startswith("WITH attempt")]

    assert len(statements(one)) == len(statements(two)) == len(statements(by_id)) == 1
    assert set(locked) == {own.id, other.id}  # whoever owns them
    # Captured with its parameters bound: the pinned text with values in its placeholders.
    for captured, sql in ((one, LOCK_OWN_SQL), (two, LOCK_OWN_AND_OTHER_SQL), (by_id, LOCK_BY_ID_SQL)):
        pattern = re.escape(sql).replace("%s", ".+?")
        assert re.fullmatch(pattern, statements(captured)[0]), statements(captured)[0]


# --- what it returns -----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_returns_both_wallets_as_model_instances_with_their_values(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    own = make_wallet(alice, currency="EUR", balance=1234, name="main")
    other = make_wallet(bob, currency="EUR", balance=5)
    Wallet.objects.filter(pk=other.pk).update(status=Wallet.Status.FROZEN)

    locked = lock(own, alice.id, other)

    assert set(locked) == {own.id, other.id}
    mine, theirs = locked[own.id], locked[other.id]
    assert isinstance(mine, Wallet) and isinstance(theirs, Wallet)
    assert isinstance(mine.id, uuid.UUID)
    assert (mine.owner_id, mine.kind, mine.currency, mine.name, mine.balance, mine.status) == (
        alice.id,
        "user",
        "EUR",
        "main",
        1234,
        "active",
    )
    assert mine.created_at == own.created_at
    assert (theirs.owner_id, theirs.balance, theirs.status) == (bob.id, 5, "frozen")
    assert not mine._state.adding  # loaded from the database, as Wallet.from_db marks it


@pytest.mark.django_db
def test_it_omits_the_callers_wallet_when_someone_else_owns_it(make_user, make_wallet):
    alice, mallory = make_user(), make_user()
    alices = make_wallet(alice, balance=100)
    malloys = make_wallet(mallory)

    assert lock(alices, mallory.id) == {}
    # Named as the source of a transfer, it is still not locked; the destination is.
    assert set(lock(alices, mallory.id, malloys)) == {malloys.id}
    # The same wallet as a destination is anybody's to name.
    assert set(lock(malloys, mallory.id, alices)) == {malloys.id, alices.id}


@pytest.mark.django_db
def test_it_omits_system_wallets_and_missing_ids(make_user, make_wallet):
    alice = make_user()
    own = make_wallet(alice)
    system = system_wallet_id(currency="USD")

    assert set(lock(own, alice.id, system)) == {own.id}
    assert set(lock(own, alice.id, uuid.uuid4())) == {own.id}
    assert lock(uuid.uuid4(), alice.id) == {}
    assert Wallet.objects.get(pk=system).kind == Wallet.Kind.SYSTEM  # it exists; it is just not locked


# --- how it waits (real transactions) ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_second_lock_waits_until_the_first_transaction_commits(make_user, make_wallet):
    alice = make_user()
    wallet = make_wallet(alice, name="before")

    def lock_then_rename() -> None:
        wallets_lock_for_movement(
            own_wallet_id=wallet.id, owner_id=alice.id, other_wallet_id=None, wait_ms=5000
        )
        Wallet.objects.filter(pk=wallet.pk).update(name="renamed by the first")

    with held_in_transaction(lock_then_rename):
        second = Threads([partial(lock, wallet, alice.id)]).start()
        wait_until(lambda: lock_waiters() >= 1 or second.finished, "the second lock waits")
        waited = second.finished == 0
    (locked,) = second.join()

    assert waited, "the second lock did not wait for the first transaction"
    # It went on only once the first committed, and read the row as committed.
    assert locked[wallet.id].name == "renamed by the first"


@pytest.mark.django_db(transaction=True)
def test_the_lock_still_lets_others_reference_the_wallet(make_user, make_wallet):
    """FOR NO KEY UPDATE conflicts with FOR KEY SHARE (what inserting a ledger row takes) no more."""
    alice = make_user()
    wallet = make_wallet(alice)

    def key_share() -> list[tuple]:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '5s'")  # a regression fails here, not hangs
            cursor.execute("SELECT id FROM wallets_wallet WHERE id = %s FOR KEY SHARE", [wallet.id])
            return cursor.fetchall()

    locked = partial(
        wallets_lock_for_movement,
        own_wallet_id=wallet.id,
        owner_id=alice.id,
        other_wallet_id=None,
        wait_ms=5000,
    )
    with held_in_transaction(locked):
        assert run_concurrently([key_share]) == [[(wallet.id,)]]


@pytest.mark.django_db(transaction=True)
def test_opposite_locks_on_two_wallets_never_deadlock(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    a, b = make_wallet(alice), make_wallet(bob)
    pairs = 15

    def lock_and_hold(own: Wallet, owner_id: int, other: Wallet) -> list[uuid.UUID]:
        with transaction.atomic():
            locked = wallets_lock_for_movement(
                own_wallet_id=own.id, owner_id=owner_id, other_wallet_id=other.id, wait_ms=5000
            )
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(0.01)")  # hold both, so the opposite direction queues
            return sorted(locked)

    jobs = []
    for _ in range(pairs):
        jobs.append(partial(lock_and_hold, a, alice.id, b))
        jobs.append(partial(lock_and_hold, b, bob.id, a))

    # A deadlock would fail a job with "deadlock detected" (Threads.join reports it).
    results = run_concurrently(jobs)

    assert results == [sorted([a.id, b.id])] * (2 * pairs)


@pytest.mark.django_db(transaction=True)
def test_one_attempt_waits_for_a_lock_at_most_the_time_it_is_given(make_user, make_wallet):
    alice = make_user()
    wallet = make_wallet(alice)

    def attempt() -> tuple[str, float]:
        started = time.monotonic()
        try:
            with transaction.atomic():
                wallets_lock_for_movement(
                    own_wallet_id=wallet.id, owner_id=alice.id, other_wallet_id=None, wait_ms=150
                )
        except OperationalError as exc:
            return sqlstate(exc), time.monotonic() - started
        return "locked", time.monotonic() - started

    def hold() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM wallets_wallet WHERE id = %s FOR UPDATE", [wallet.id])

    with held_in_transaction(hold):
        [(outcome, waited)] = run_concurrently([attempt])

    assert outcome == LOCK_NOT_AVAILABLE  # gave up, rather than wait for the connection's 5 s
    assert 0.1 <= waited < 2.0
    # And the timeout was the transaction's own: the connection's is as it was.
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] != "150ms"
