"""The money services: a Movement, movement_prepare() then prepared.write(), and the typed front doors.

Called directly, without HTTP: the executor (test_idempotency.py) and the API
(test_transfer_api.py) are tested on their own.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from transfers import services
from transfers.errors import (
    BalanceLimitExceeded,
    CurrencyMismatch,
    DuplicateReference,
    InsufficientFunds,
    SameWallet,
    WalletNotActive,
)
from transfers.models import IdempotencyRecord, LedgerEntry, Transfer
from transfers.services import Movement, movement_execute, movement_prepare
from transfers.tests.movements import balance, deposit, ledger_rows, refused, transfer, withdrawal
from wallets.errors import WalletNotFound
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

DEPOSIT, WITHDRAWAL, TRANSFER = Transfer.Kind.DEPOSIT, Transfer.Kind.WITHDRAWAL, Transfer.Kind.TRANSFER
OWN, OTHER = uuid.uuid4(), uuid.uuid4()


def writes(captured: CaptureQueriesContext) -> list[str]:
    # The lock statement starts with WITH too (its attempt's lock timeout); it writes nothing.
    return [
        q["sql"]
        for q in captured
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "WITH"))
        and "FOR NO KEY UPDATE" not in q["sql"]
    ]


def locks(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured if "FOR NO KEY UPDATE" in q["sql"]]


# --- the Movement ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "other", "source", "destination"),
    [
        (DEPOSIT, None, None, OWN),  # from the system wallet
        (WITHDRAWAL, None, OWN, None),  # to the system wallet
        (TRANSFER, OTHER, OWN, OTHER),
    ],
)
def test_a_movements_user_source_and_destination(kind, other, source, destination):
    movement = Movement(kind=kind, own_wallet_id=OWN, other_wallet_id=other, amount=1, initiated_by_id=1)

    assert (movement.source_wallet_id, movement.destination_wallet_id) == (source, destination)


# --- movement_prepare: builds everything, writes nothing -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_prepare_refuses_to_run_outside_a_transaction(accounts):
    before = ledger_rows()

    with pytest.raises(RuntimeError, match=r"transaction\.atomic"):
        movement_prepare(withdrawal(accounts.a, 10))

    assert ledger_rows() == before


def test_prepare_builds_the_transfer_its_legs_the_audit_event_and_the_new_balances(accounts):
    a, b = accounts.a, accounts.b
    before = ledger_rows()

    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        prepared = movement_prepare(transfer(a, b, 300, reference="inv-7", description="rent"))

    assert writes(captured) == []
    assert len(locks(captured)) == 1
    assert ledger_rows() == before
    built = prepared.transfer
    assert not Transfer.objects.filter(pk=built.id).exists()
    assert (built.kind, built.amount, built.currency, built.reference, built.description) == (
        "transfer",
        300,
        "USD",
        "inv-7",
        "rent",
    )
    assert (built.source_wallet_id, built.destination_wallet_id, built.reference_wallet_id) == (
        a.id,
        b.id,
        a.id,
    )
    assert built.initiated_by_id == accounts.alice.id
    legs = [(e.transfer_id, e.wallet_id, e.type, e.amount, e.balance_after) for e in prepared.entries]
    assert legs == [(built.id, a.id, "transfer_out", -300, 700), (built.id, b.id, "transfer_in", 300, 800)]
    assert {w.id: w.balance for w in prepared.changed_wallets} == {a.id: 700, b.id: 800}
    assert {w.updated_at for w in prepared.changed_wallets} == {built.created_at}
    assert (prepared.own_wallet.id, prepared.own_wallet.balance) == (a.id, 700)
    event = prepared.audits[0]
    assert event.pk is None
    assert (event.action, event.actor_id, event.target_type, event.target_id) == (
        AuditEvent.Action.TRANSFER,
        accounts.alice.id,
        "transfer",
        str(built.id),
    )
    assert (event.amount, event.currency) == (300, "USD")
    assert event.details == {
        "source_wallet_id": str(a.id),
        "destination_wallet_id": str(b.id),
        "reference": "inv-7",
    }


@pytest.mark.parametrize(
    ("build", "legs", "action"),
    [
        (
            deposit,
            [("system", "deposit", -40, None), ("own", "deposit", 40, 1040)],
            AuditEvent.Action.DEPOSIT,
        ),
        (
            withdrawal,
            [("own", "withdrawal", -40, 960), ("system", "withdrawal", 40, None)],
            AuditEvent.Action.WITHDRAWAL,
        ),
    ],
    ids=["deposit", "withdrawal"],
)
def test_prepare_puts_the_system_wallet_on_the_other_side_and_never_locks_it(accounts, build, legs, action):
    a = accounts.a
    names = {a.id: "own", accounts.usd_system: "system"}

    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        prepared = movement_prepare(build(a, 40))

    assert [(names[e.wallet_id], e.type, e.amount, e.balance_after) for e in prepared.entries] == legs
    assert [w.id for w in prepared.changed_wallets] == [a.id]  # the system wallet's row is never updated
    (lock,) = locks(captured)
    assert str(accounts.usd_system) not in lock
    assert prepared.audits[0].action == action
    assert prepared.transfer.reference_wallet_id == a.id


# --- write: one statement -------------------------------------------------------------------


def table_counts() -> Counter:
    return ledger_rows()[1]


@pytest.mark.parametrize("with_record", [False, True], ids=["alone", "with-an-extra-row"])
def test_write_inserts_every_row_and_sets_the_balances_in_one_statement(accounts, with_record):
    a, b = accounts.a, accounts.b
    before = table_counts()
    with transaction.atomic():
        prepared = movement_prepare(transfer(a, b, 250))
        extra = IdempotencyRecord(
            user_id=accounts.alice.id,
            key="k-1",
            method="POST",
            path="/api/v1/transfers",
            request_hash="0" * 64,
            status_code=201,
            response_body=b"{}",
            transfer_id=prepared.transfer.id,
        )
        with CaptureQueriesContext(connection) as captured:
            written = prepared.write(extra_rows=[extra] if with_record else [])

    assert len(captured) == 1, [q["sql"] for q in captured]
    assert captured[0]["sql"].startswith("WITH i0 AS (INSERT INTO transfers_transfer")
    added = table_counts() - before
    expected = {"Transfer": 1, "LedgerEntry": 2, "AuditEvent": 1}
    assert added == Counter({**expected, "IdempotencyRecord": 1} if with_record else expected)
    assert written is prepared.transfer
    stored = Transfer.objects.get(pk=written.id)
    assert (stored.amount, stored.source_wallet_id, stored.destination_wallet_id) == (250, a.id, b.id)
    assert stored.created_at == written.created_at
    legs = LedgerEntry.objects.filter(transfer=stored).order_by("id")
    assert [(e.wallet_id, e.amount, e.balance_after) for e in legs] == [(a.id, -250, 750), (b.id, 250, 750)]
    assert AuditEvent.objects.get(target_id=str(stored.id)).action == AuditEvent.Action.TRANSFER
    if with_record:
        assert IdempotencyRecord.objects.get(key="k-1").transfer_id == stored.id
    for wallet, expected_balance in ((a, 750), (b, 750)):
        wallet.refresh_from_db()
        assert (wallet.balance, wallet.updated_at) == (expected_balance, stored.created_at)


def test_write_commits_with_the_callers_transaction_or_not_at_all(accounts):
    with refused(ZeroDivisionError):
        movement_prepare(withdrawal(accounts.a, 10)).write()
        _ = 1 / 0  # the caller's transaction fails after the write


# --- the front doors ------------------------------------------------------------------------


def test_deposit_withdrawal_and_transfer_move_the_balances(accounts):
    a, b = accounts.a, accounts.b

    deposited = services.deposit_create(wallet_id=a.id, owner_id=accounts.alice.id, amount=250, reference="d")
    withdrawn = services.withdrawal_create(wallet_id=a.id, owner_id=accounts.alice.id, amount=50)
    moved = services.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=accounts.alice.id, amount=1200
    )

    assert (balance(a), balance(b)) == (0, 1700)
    assert (deposited.kind, deposited.source_wallet_id, deposited.destination_wallet_id) == (
        "deposit",
        accounts.usd_system,
        a.id,
    )
    assert (withdrawn.kind, withdrawn.source_wallet_id, withdrawn.destination_wallet_id) == (
        "withdrawal",
        a.id,
        accounts.usd_system,
    )
    assert (moved.kind, moved.amount, moved.currency) == ("transfer", 1200, "USD")
    chain = LedgerEntry.objects.filter(wallet=a).order_by("id").values_list("amount", "balance_after")
    assert list(chain) == [(1000, 1000), (250, 1250), (-50, 1200), (-1200, 0)]
    system = LedgerEntry.objects.filter(wallet_id=accounts.usd_system, transfer__in=[deposited, withdrawn])
    assert sorted(system.values_list("amount", "balance_after")) == [(-250, None), (50, None)]
    assert Wallet.objects.get(pk=accounts.usd_system).balance == 0


def test_deposit_and_withdrawal_share_one_implementation(accounts, monkeypatch):
    executed: list[Movement] = []
    monkeypatch.setattr(services, "movement_execute", executed.append)
    a, alice = accounts.a, accounts.alice

    services.deposit_create(wallet_id=str(a.id), owner_id=alice.id, amount=5, reference="r", description="d")
    services.withdrawal_create(wallet_id=a.id, owner_id=alice.id, amount=6)
    services.transfer_create(
        source_wallet_id=str(a.id),
        destination_wallet_id=str(accounts.b.id),
        initiated_by_id=alice.id,
        amount=7,
    )

    # Ids given as strings (the shell, tasks) become UUIDs; everything else is passed on as given.
    assert executed == [
        Movement(DEPOSIT, a.id, None, 5, alice.id, reference="r", description="d"),
        Movement(WITHDRAWAL, a.id, None, 6, alice.id),
        Movement(TRANSFER, a.id, accounts.b.id, 7, alice.id),
    ]


def test_movement_execute_opens_its_own_transaction(accounts):
    written = movement_execute(deposit(accounts.c, 70))

    assert Transfer.objects.get(pk=written.id).amount == 70
    assert balance(accounts.c) == 70


# --- refusals -------------------------------------------------------------------------------


def not_found_cases():
    missing = uuid.uuid4()
    return [
        pytest.param(lambda w: deposit(w.a, 10, initiated_by_id=w.bob.id), id="deposit-into-someone-elses"),
        pytest.param(
            lambda w: withdrawal(w.b, 10, initiated_by_id=w.alice.id), id="withdraw-from-someone-elses"
        ),
        pytest.param(
            lambda w: transfer(w.b, w.a, 10, initiated_by_id=w.alice.id), id="send-from-someone-elses"
        ),
        pytest.param(lambda w: withdrawal(Wallet(id=missing, owner_id=w.alice.id), 10), id="missing-own"),
        pytest.param(lambda w: transfer(w.a, Wallet(id=missing), 10), id="missing-destination"),
        pytest.param(lambda w: transfer(w.a, Wallet(id=w.usd_system), 10), id="system-destination"),
    ]


@pytest.mark.parametrize("build", not_found_cases())
def test_a_wallet_that_is_not_the_callers_or_not_a_user_wallet_is_not_found(accounts, build):
    with refused(WalletNotFound) as error:
        movement_execute(build(accounts))

    assert error.value.code == "not_found"
    assert getattr(error.value, "currency", "") == ""  # no wallet of the caller's was read


def test_the_same_wallet_on_both_sides_is_refused_before_any_lock(accounts):
    with refused(SameWallet), CaptureQueriesContext(connection) as captured:
        movement_execute(transfer(accounts.a, accounts.a, 10))

    assert locks(captured) == []


def test_a_transfer_across_currencies_is_refused_with_the_source_currency(accounts):
    with refused(CurrencyMismatch, match="EUR and the destination USD") as error:
        movement_execute(transfer(accounts.eur, accounts.b, 10))

    assert error.value.currency == "EUR"


@pytest.mark.parametrize(
    ("frozen", "build", "role"),
    [
        ("a", lambda w: deposit(w.a, 10), "destination"),
        ("a", lambda w: withdrawal(w.a, 10), "source"),
        ("a", lambda w: transfer(w.a, w.b, 10), "source"),
        ("b", lambda w: transfer(w.a, w.b, 10), "destination"),
    ],
    ids=["deposit", "withdrawal", "transfer-source", "transfer-destination"],
)
@pytest.mark.parametrize("status", [Wallet.Status.FROZEN, Wallet.Status.CLOSED])
def test_a_frozen_or_closed_wallet_moves_no_money(accounts, frozen, build, role, status):
    wallet = getattr(accounts, frozen)
    Wallet.objects.filter(pk=wallet.pk).update(status=status)

    with refused(WalletNotActive, match=f"The {role} wallet is {status}") as error:
        movement_execute(build(accounts))

    assert error.value.extra == {"wallet_id": str(wallet.id), "wallet_status": status}
    assert error.value.currency == "USD"


@pytest.mark.parametrize(
    "build", [lambda w: withdrawal(w.eur, 301), lambda w: transfer(w.eur, w.b_eur, 301)], ids=["out", "send"]
)
def test_more_than_the_balance_is_insufficient_funds(accounts, build):
    with refused(InsufficientFunds) as error:
        movement_execute(build(accounts))

    assert error.value.extra == {"wallet_id": str(accounts.eur.id), "available": 300}
    assert error.value.currency == "EUR"
    # The whole balance is fine.
    movement_execute(withdrawal(accounts.eur, 300))
    assert balance(accounts.eur) == 0


@pytest.mark.parametrize(
    "build", [lambda w: deposit(w.a, 2), lambda w: transfer(w.b, w.a, 2)], ids=["deposit", "transfer"]
)
def test_a_balance_beyond_the_limit_is_refused(accounts, monkeypatch, build):
    monkeypatch.setattr(services, "MAX_WALLET_BALANCE", 1001)

    with refused(BalanceLimitExceeded) as error:
        movement_execute(build(accounts))

    assert error.value.currency == "USD"
    movement_execute(deposit(accounts.a, 1))  # up to the limit exactly
    assert balance(accounts.a) == 1001


@pytest.mark.parametrize(
    "build",
    [lambda w: deposit(w.a, 1, reference="inv-1"), lambda w: transfer(w.a, w.b, 1, reference="inv-1")],
    ids=["deposit", "transfer"],
)
def test_a_reference_used_on_the_wallet_is_refused_before_any_lock(accounts, build):
    original = movement_execute(withdrawal(accounts.a, 5, reference="inv-1"))

    with refused(DuplicateReference) as error, CaptureQueriesContext(connection) as captured:
        movement_execute(build(accounts))

    assert locks(captured) == []
    assert error.value.extra == {"original_transfer_id": str(original.id)}
    assert error.value.currency == "USD"


def test_a_reference_is_only_checked_on_the_callers_own_wallet(accounts):
    """A reference on someone else's wallet is not revealed: that wallet is simply not found."""
    movement_execute(deposit(accounts.b, 5, reference="secret"))

    with refused(WalletNotFound):
        movement_execute(withdrawal(accounts.b, 1, reference="secret", initiated_by_id=accounts.alice.id))
    # The same reference on the caller's own wallet is a different reference.
    assert movement_execute(withdrawal(accounts.a, 1, reference="secret")).reference == "secret"


@pytest.mark.parametrize(
    "amount",
    [0, -1, 1.0, 1.5, "100", True, None, settings.MAX_MOVEMENT_AMOUNT + 1],
    ids=["zero", "negative", "float", "fraction", "string", "bool", "none", "above-max"],
)
def test_a_bad_amount_is_a_value_error_before_any_query(accounts, amount):
    with refused(ValueError, match="amount must be an int"), CaptureQueriesContext(connection) as captured:
        movement_execute(withdrawal(accounts.a, amount))

    assert [q["sql"] for q in captured if "SAVEPOINT" not in q["sql"]] == []


def test_the_largest_allowed_amount_moves(accounts):
    written = movement_execute(deposit(accounts.c, settings.MAX_MOVEMENT_AMOUNT))

    assert written.amount == settings.MAX_MOVEMENT_AMOUNT
    assert balance(accounts.c) == settings.MAX_MOVEMENT_AMOUNT
