"""PostgreSQL enforces the ledger's invariants even when Python is bypassed.

Each test writes with raw SQL on Django's connection, inside `transaction.atomic()`
so that the deferred constraint triggers of transfers.0003 run when the block
commits, and checks that the database refuses the write with the rule it broke
(matched on the constraint name or the trigger's message, so a malformed
statement cannot pass for a rejection) and that nothing changed afterwards.
`transaction=True` makes the commits real. A positive control proves the raw-SQL
helpers write rows the database accepts when they are valid.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from transfers import services
from transfers.models import IdempotencyRecord, LedgerEntry, Transfer
from users.models import User
from wallets.models import Wallet
from wallets.services import system_wallet_id

pytestmark = pytest.mark.django_db(transaction=True)


# --- raw SQL helpers -------------------------------------------------------------


def sql(statement: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def insert_transfer(
    *,
    kind: str,
    source: uuid.UUID,
    destination: uuid.UUID,
    amount: int,
    reference_wallet: uuid.UUID,
    currency: str = "USD",
    reference: str | None = None,
    initiated_by: int | None = None,
) -> uuid.UUID:
    transfer_id = uuid.uuid4()
    sql(
        "INSERT INTO transfers_transfer (id, kind, source_wallet_id, destination_wallet_id, amount,"
        " currency, status, reference, reference_wallet_id, description, initiated_by_id, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'completed', %s, %s, '', %s, now())",
        [transfer_id, kind, source, destination, amount, currency, reference, reference_wallet, initiated_by],
    )
    return transfer_id


def insert_leg(
    transfer_id: uuid.UUID, wallet_id: uuid.UUID, entry_type: str, amount: int, balance_after: int | None
) -> int:
    rows = sql(
        "INSERT INTO transfers_ledgerentry (transfer_id, wallet_id, type, amount, balance_after, created_at)"
        " VALUES (%s, %s, %s, %s, %s, now()) RETURNING id",
        [transfer_id, wallet_id, entry_type, amount, balance_after],
    )
    return rows[0][0]


def set_balance(wallet_id: uuid.UUID, balance: int) -> None:
    sql("UPDATE wallets_wallet SET balance = %s WHERE id = %s", [balance, wallet_id])


def stored_balance(wallet_id: uuid.UUID) -> int:
    return sql("SELECT balance FROM wallets_wallet WHERE id = %s", [wallet_id])[0][0]


def insert_idempotency_record(user_id: int, key: str) -> None:
    sql(
        "INSERT INTO transfers_idempotencyrecord (user_id, key, method, path, request_hash, status_code,"
        " response_body, transfer_id, created_at)"
        " VALUES (%s, %s, 'POST', '/api/v1/transfers', %s, 201, %s, NULL, now())",
        [user_id, key, "0" * 64, b"{}"],
    )


def raw_deposit(
    wallet_id: uuid.UUID, amount: int, *, balance_after_offset: int = 0, reference: str | None = None
) -> uuid.UUID:
    """A deposit written the way the service writes it, optionally with a wrong running balance."""
    wallet = Wallet.objects.get(pk=wallet_id)
    system = system_wallet_id(currency=wallet.currency)
    new_balance = stored_balance(wallet_id) + amount + balance_after_offset
    transfer_id = insert_transfer(
        kind="deposit",
        source=system,
        destination=wallet_id,
        amount=amount,
        currency=wallet.currency,
        reference=reference,
        reference_wallet=wallet_id,
        initiated_by=wallet.owner_id,
    )
    insert_leg(transfer_id, system, "deposit", -amount, None)
    insert_leg(transfer_id, wallet_id, "deposit", amount, new_balance)
    set_balance(wallet_id, new_balance)
    return transfer_id


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "wallets": list(Wallet.objects.order_by("id").values_list("id", "balance", "status")),
        "transfers": list(Transfer.objects.order_by("id").values_list("id", "kind", "amount", "reference")),
        "entries": list(
            LedgerEntry.objects.order_by("id").values_list(
                "id", "transfer_id", "wallet_id", "amount", "balance_after"
            )
        ),
        "idempotency": list(IdempotencyRecord.objects.order_by("id").values_list("user_id", "key")),
    }


@contextmanager
def rejected(match: str) -> Iterator[None]:
    """The block's writes, committed as one transaction, are refused for `match`; nothing changes."""
    before = snapshot()
    with pytest.raises(IntegrityError, match=match), transaction.atomic():
        yield
    assert snapshot() == before


# --- fixtures ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ledger:
    alice: User
    bob: User
    a: Wallet  # alice, USD, 1000
    b: Wallet  # bob, USD, 500
    eur: Wallet  # alice, EUR, 300
    usd_system: uuid.UUID
    deposit: Transfer  # the service-made deposit into `a`, reference "INV-1"


@pytest.fixture
def ledger(make_user, make_wallet) -> Ledger:
    alice, bob = make_user(), make_user()
    a = make_wallet(alice)
    deposit = services.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=1000, reference="INV-1")
    a.refresh_from_db()
    return Ledger(
        alice=alice,
        bob=bob,
        a=a,
        b=make_wallet(bob, balance=500),
        eur=make_wallet(alice, currency="EUR", balance=300),
        usd_system=system_wallet_id(currency="USD"),
        deposit=deposit,
    )


# --- valid data commits ---------------------------------------------------------------


def read_committed(query: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run `query` on a connection of its own: it sees only what has been committed."""
    result: list[list[tuple[Any, ...]]] = []

    def run() -> None:
        try:
            result.append(sql(query, params))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def test_service_movements_commit_cleanly(ledger):
    transfer = services.transfer_create(
        source_wallet_id=ledger.a.id,
        destination_wallet_id=ledger.b.id,
        initiated_by_id=ledger.alice.id,
        amount=250,
    )
    services.withdrawal_create(wallet_id=ledger.b.id, owner_id=ledger.bob.id, amount=50)

    balances = read_committed(
        "SELECT id, balance FROM wallets_wallet WHERE id IN (%s, %s)", [ledger.a.id, ledger.b.id]
    )
    assert dict(balances) == {ledger.a.id: 750, ledger.b.id: 700}
    legs = read_committed(
        "SELECT wallet_id, amount, balance_after FROM transfers_ledgerentry"
        " WHERE transfer_id = %s ORDER BY id",
        [transfer.id],
    )
    assert legs == [(ledger.a.id, -250, 750), (ledger.b.id, 250, 750)]


def test_several_movements_in_one_transaction_commit_cleanly(ledger):
    # The deferred triggers see every leg of the transaction at commit, including
    # several legs on one wallet: the running balance must chain through all of them.
    with transaction.atomic():
        services.deposit_create(wallet_id=ledger.a.id, owner_id=ledger.alice.id, amount=5)
        services.transfer_create(
            source_wallet_id=ledger.a.id,
            destination_wallet_id=ledger.b.id,
            initiated_by_id=ledger.alice.id,
            amount=1,
        )
        services.withdrawal_create(wallet_id=ledger.a.id, owner_id=ledger.alice.id, amount=4)

    assert read_committed("SELECT balance FROM wallets_wallet WHERE id = %s", [ledger.a.id]) == [(1000,)]
    chain = list(
        LedgerEntry.objects.filter(wallet_id=ledger.a.id)
        .order_by("id")
        .values_list("balance_after", flat=True)
    )
    assert chain == [1000, 1005, 1004, 1000]


def test_a_valid_raw_sql_deposit_commits(ledger):
    # Positive control for the helpers below: well-formed raw rows are accepted.
    with transaction.atomic():
        transfer_id = raw_deposit(ledger.a.id, 100, reference="RAW-1")

    assert read_committed("SELECT balance FROM wallets_wallet WHERE id = %s", [ledger.a.id]) == [(1100,)]
    assert LedgerEntry.objects.filter(transfer_id=transfer_id).count() == 2


# --- column rules (CHECK and UNIQUE constraints) ------------------------------------------


def test_user_wallet_balance_cannot_go_negative(ledger):
    with rejected("wallet_balance_held_valid"):
        set_balance(ledger.a.id, -1)


def test_system_wallet_keeps_no_row_balance(ledger):
    with rejected("wallet_balance_held_valid"):
        set_balance(ledger.usd_system, 5)


@pytest.mark.parametrize("amount", [0, -100])
def test_transfer_amount_must_be_positive(ledger, amount):
    with rejected("transfer_amount_positive"):
        insert_transfer(
            kind="transfer",
            source=ledger.a.id,
            destination=ledger.b.id,
            amount=amount,
            reference_wallet=ledger.a.id,
        )


def test_transfer_cannot_go_from_a_wallet_to_itself(ledger):
    with rejected("transfer_distinct_wallets"):
        insert_transfer(
            kind="transfer",
            source=ledger.a.id,
            destination=ledger.a.id,
            amount=10,
            reference_wallet=ledger.a.id,
        )


def test_idempotency_key_is_unique_per_user_only(ledger):
    with transaction.atomic():
        insert_idempotency_record(ledger.alice.id, "key-1")
        insert_idempotency_record(ledger.bob.id, "key-1")  # another user may use the same key

    assert IdempotencyRecord.objects.filter(key="key-1").count() == 2
    with rejected("idempotency_key_unique_per_user"):
        insert_idempotency_record(ledger.alice.id, "key-1")


def test_reference_is_unique_per_wallet(ledger):
    with rejected("transfer_reference_unique_per_wallet"):
        raw_deposit(ledger.a.id, 100, reference="INV-1")

    with transaction.atomic():  # the same reference on another wallet is fine
        raw_deposit(ledger.b.id, 100, reference="INV-1")
    assert Transfer.objects.filter(reference="INV-1").count() == 2


# --- append-only history ------------------------------------------------------------


def test_ledger_entries_cannot_be_updated(ledger):
    entry = LedgerEntry.objects.filter(transfer=ledger.deposit, wallet=ledger.a).get()
    with rejected("transfers_ledgerentry is append-only: UPDATE rejected"):
        sql("UPDATE transfers_ledgerentry SET amount = amount + 1 WHERE id = %s", [entry.id])


def test_ledger_entries_cannot_be_deleted(ledger):
    with rejected("transfers_ledgerentry is append-only: DELETE rejected"):
        sql("DELETE FROM transfers_ledgerentry WHERE transfer_id = %s", [ledger.deposit.id])


def test_transfers_cannot_be_updated(ledger):
    with rejected("transfers_transfer is append-only: UPDATE rejected"):
        sql("UPDATE transfers_transfer SET description = 'edited' WHERE id = %s", [ledger.deposit.id])


def test_transfers_cannot_be_deleted(ledger):
    with rejected("transfers_transfer is append-only: DELETE rejected"):
        sql("DELETE FROM transfers_transfer WHERE id = %s", [ledger.deposit.id])


# --- double entry (deferred, checked at commit) ------------------------------------


def test_unbalanced_transfer_is_rejected_at_commit(ledger):
    with rejected("is unbalanced: 2 legs summing to 10"):
        transfer_id = insert_transfer(
            kind="transfer",
            source=ledger.a.id,
            destination=ledger.b.id,
            amount=100,
            reference_wallet=ledger.a.id,
        )
        insert_leg(transfer_id, ledger.a.id, "transfer_out", -90, 910)
        insert_leg(transfer_id, ledger.b.id, "transfer_in", 100, 600)
        set_balance(ledger.a.id, 910)
        set_balance(ledger.b.id, 600)


def test_transfer_with_one_leg_is_rejected_at_commit(ledger):
    with rejected("is unbalanced: 1 legs"):
        transfer_id = insert_transfer(
            kind="deposit",
            source=ledger.usd_system,
            destination=ledger.a.id,
            amount=100,
            reference_wallet=ledger.a.id,
        )
        insert_leg(transfer_id, ledger.a.id, "deposit", 100, 1100)
        set_balance(ledger.a.id, 1100)


def test_transfer_without_legs_is_rejected_at_commit(ledger):
    with rejected("is unbalanced: 0 legs"):
        insert_transfer(
            kind="transfer",
            source=ledger.a.id,
            destination=ledger.b.id,
            amount=100,
            reference_wallet=ledger.a.id,
        )


@pytest.mark.parametrize(
    ("extra_legs", "message"),
    [
        ([("a", "deposit", 50)], "is unbalanced: 3 legs summing to 50"),
        # Even legs that sum to zero cannot be added: a transfer has exactly two.
        ([("a", "deposit", 50), ("b", "deposit", -50)], "is unbalanced: 4 legs summing to 0"),
    ],
    ids=["third-leg", "two-legs-summing-to-zero"],
)
def test_legs_cannot_be_added_to_an_existing_transfer(ledger, extra_legs, message):
    with rejected(message):
        for wallet_name, entry_type, amount in extra_legs:
            wallet_id = getattr(ledger, wallet_name).id
            new_balance = stored_balance(wallet_id) + amount
            insert_leg(ledger.deposit.id, wallet_id, entry_type, amount, new_balance)
            set_balance(wallet_id, new_balance)


def test_transfer_between_currencies_is_rejected_at_commit(ledger):
    with rejected("crosses currencies"):
        transfer_id = insert_transfer(
            kind="transfer",
            source=ledger.a.id,
            destination=ledger.eur.id,
            amount=100,
            reference_wallet=ledger.a.id,
        )
        insert_leg(transfer_id, ledger.a.id, "transfer_out", -100, 900)
        insert_leg(transfer_id, ledger.eur.id, "transfer_in", 100, 400)
        set_balance(ledger.a.id, 900)
        set_balance(ledger.eur.id, 400)


def test_deposit_between_two_user_wallets_is_rejected_at_commit(ledger):
    with rejected("transfer .* of kind deposit cannot go from a user wallet to a user wallet"):
        transfer_id = insert_transfer(
            kind="deposit",
            source=ledger.a.id,
            destination=ledger.b.id,
            amount=100,
            reference_wallet=ledger.b.id,
        )
        insert_leg(transfer_id, ledger.a.id, "deposit", -100, 900)
        insert_leg(transfer_id, ledger.b.id, "deposit", 100, 600)
        set_balance(ledger.a.id, 900)
        set_balance(ledger.b.id, 600)


def test_legs_must_fit_the_transfer_kind(ledger):
    with rejected("has legs whose type does not fit kind transfer"):
        transfer_id = insert_transfer(
            kind="transfer",
            source=ledger.a.id,
            destination=ledger.b.id,
            amount=100,
            reference_wallet=ledger.a.id,
        )
        insert_leg(transfer_id, ledger.a.id, "withdrawal", -100, 900)
        insert_leg(transfer_id, ledger.b.id, "deposit", 100, 600)
        set_balance(ledger.a.id, 900)
        set_balance(ledger.b.id, 600)


# --- stored balances and running balances (deferred) ----------------------------------


def test_balance_changed_without_a_ledger_entry_is_rejected_at_commit(ledger):
    with rejected(r"balance 1100 does not match its ledger \(1000\)"):
        sql("UPDATE wallets_wallet SET balance = balance + 100 WHERE id = %s", [ledger.a.id])


def test_set_constraints_immediate_rejects_at_the_statement(ledger):
    reached_after_update = False
    with rejected("does not match its ledger"):
        sql("SET CONSTRAINTS ALL IMMEDIATE")
        sql("UPDATE wallets_wallet SET balance = balance + 100 WHERE id = %s", [ledger.a.id])
        reached_after_update = True
    assert not reached_after_update


def test_leg_that_breaks_the_running_balance_is_rejected_at_commit(ledger):
    # Stored balance and balance_after agree with each other (1101), but not with
    # the previous entry plus the amount (1000 + 100).
    with rejected(r"breaks the running balance .* \(1000 \+ 100 <> 1101\)"):
        raw_deposit(ledger.a.id, 100, balance_after_offset=1)


def test_leg_written_without_updating_the_stored_balance_is_rejected_at_commit(ledger):
    with rejected(r"balance 1000 does not match its latest entry \(1100\)"):
        transfer_id = insert_transfer(
            kind="deposit",
            source=ledger.usd_system,
            destination=ledger.a.id,
            amount=100,
            reference_wallet=ledger.a.id,
        )
        insert_leg(transfer_id, ledger.usd_system, "deposit", -100, None)
        insert_leg(transfer_id, ledger.a.id, "deposit", 100, 1100)


def test_system_leg_carries_no_running_balance(ledger):
    with rejected("system wallet legs carry no balance_after"):
        transfer_id = insert_transfer(
            kind="deposit",
            source=ledger.usd_system,
            destination=ledger.a.id,
            amount=100,
            reference_wallet=ledger.a.id,
        )
        insert_leg(transfer_id, ledger.usd_system, "deposit", -100, -100)
        insert_leg(transfer_id, ledger.a.id, "deposit", 100, 1100)
        set_balance(ledger.a.id, 1100)
