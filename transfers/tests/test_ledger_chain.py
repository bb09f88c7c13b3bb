"""The tamper-evident ledger (transfers.ledger_chain, docs/ledger.md).

Every tampering is made the way only a superuser could (triggers off with
`session_replication_role = replica`, or TRUNCATE) and committed; then verify_ledger must
name the first entry that no longer matches. `transaction=True`: the money path and the
checkpoint (REPEATABLE READ, its own transaction) really commit.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import io
import logging
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from prometheus_client import REGISTRY

from conftest import client_for
from testing.threads import run_concurrently
from transfers import ledger_chain
from transfers import services as ledger
from transfers.ledger_chain import GENESIS, ledger_chain_backfill, ledger_checkpoint_create, ledger_verify
from transfers.models import Discrepancy, LedgerCheckpointWallet, LedgerEntry, ReconciliationRun, Transfer
from transfers.reconciliation import reconciliation_run
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True)

DOC = Path(__file__).resolve().parents[2] / "docs" / "ledger.md"


def behind_the_triggers(*statements: tuple[str, list]) -> None:
    """Run statements as a superuser who switched the triggers off, and commit."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for sql, params in statements:
            cursor.execute(sql, params)


def entries_of(wallet: Wallet) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(wallet=wallet).order_by("id"))


def verify_command(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_ledger", *args, stdout=out)
    except SystemExit as exit:
        return int(exit.code), out.getvalue()
    return 0, out.getvalue()


def independent_hash(previous: bytes, wallet_id, position: int, entry: LedgerEntry) -> bytes:
    """docs/ledger.md's encoding, written out again without the module under test."""
    micros = calendar.timegm(entry.created_at.utctimetuple()) * 1_000_000 + entry.created_at.microsecond
    fields = (wallet_id, position, entry.transfer_id, entry.type, entry.amount, entry.balance_after, micros)
    text = "|".join(map(str, fields))
    return hashlib.sha256(previous + text.encode("ascii")).digest()


@pytest.fixture
def books(make_user, make_wallet):
    """alice's `a`: +1000, -300 to bob, -200 to bob, +50; bob's `b`: +500, +300, +200."""
    alice, bob = make_user("alice"), make_user("bob")
    a, b = make_wallet(alice, balance=1000), make_wallet(bob, balance=500)
    first = ledger.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=300
    )
    second = ledger.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=200
    )
    ledger.deposit_create(wallet_id=a.id, owner_id=alice.id, amount=50)
    a.refresh_from_db()
    b.refresh_from_db()
    return a, b, first, second


# --- the chain as written ----------------------------------------------------------


def test_each_user_entry_chains_onto_the_previous_one_and_the_wallet_keeps_the_head(books):
    a, b, _, _ = books

    for wallet in (a, b):
        previous = GENESIS
        entries = entries_of(wallet)
        for position, entry in enumerate(entries, start=1):
            expected = independent_hash(previous, wallet.id, position, entry)
            assert bytes(entry.entry_hash) == expected
            previous = expected
        assert wallet.entry_count == len(entries)
        assert bytes(wallet.head_hash) == previous
    system_legs = LedgerEntry.objects.exclude(wallet__kind=Wallet.Kind.USER)
    assert system_legs.count() == 3 and not system_legs.filter(entry_hash__isnull=False).exists()


def test_an_untouched_ledger_verifies(books):
    ledger_checkpoint_create()

    code, out = verify_command()

    assert code == 0, out
    assert "2 wallets, 7 entries, 1 checkpoints checked" in out and "0 breaks" in out


def test_the_encoding_is_canonical():
    a_wallet = "0b0e8c36-6a1b-4f52-9a55-3b8b5a5a0c11"
    transfer = "6f1c2a8e-0000-4000-8000-00000000000a"

    encoding = ledger_chain.entry_encoding(
        wallet_id=uuid.UUID(a_wallet.upper()),
        position=7,
        transfer_id=uuid.UUID(transfer),
        type="transfer_out",
        amount=-250,
        balance_after=0,
        created_at=datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC),
    )

    assert encoding == (f"{a_wallet}|7|{transfer}|transfer_out|-250|0|1796173323456789").encode()


# --- what it catches -----------------------------------------------------------------


def test_an_edited_amount_is_named(books):
    a, _, _, _ = books
    edited = entries_of(a)[1]
    behind_the_triggers(
        (
            "UPDATE transfers_ledgerentry SET amount = amount + 1, balance_after = balance_after + 1"
            " WHERE id = %s",
            [edited.id],
        )
    )

    code, out = verify_command()

    assert code == 1
    assert f"entry {edited.id}, #2 of wallet {a.id}: stored hash" in out


def test_a_deleted_entry_is_named_by_the_one_after_it(books):
    a, _, _, _ = books
    entries = entries_of(a)
    behind_the_triggers(("DELETE FROM transfers_ledgerentry WHERE id = %s", [entries[1].id]))

    code, out = verify_command("--wallet", str(a.id))

    assert code == 1
    assert f"entry {entries[2].id}, #2 of wallet {a.id}" in out


def test_a_reordered_pair_is_named(books):
    a, _, _, _ = books
    entries = entries_of(a)
    first, second = entries[1].id, entries[2].id
    behind_the_triggers(
        ("UPDATE transfers_ledgerentry SET id = -id WHERE id = %s", [first]),
        ("UPDATE transfers_ledgerentry SET id = %s WHERE id = %s", [first, second]),
        ("UPDATE transfers_ledgerentry SET id = %s WHERE id = %s", [second, -first]),
    )

    code, out = verify_command()

    assert code == 1
    assert f"entry {first}, #2 of wallet {a.id}" in out


def rebalance(a: Wallet, b: Wallet, first: Transfer, second: Transfer) -> list[tuple[str, list]]:
    """Swap the amounts of the two transfers from a to b, keeping every sum and every final
    balance: a consistent rewrite of history."""
    a_entries, b_entries = entries_of(a), entries_of(b)
    return [
        ("UPDATE transfers_transfer SET amount = %s WHERE id = %s", [200, first.id]),
        ("UPDATE transfers_transfer SET amount = %s WHERE id = %s", [300, second.id]),
        (
            "UPDATE transfers_ledgerentry SET amount = -200, balance_after = 800 WHERE id = %s",
            [a_entries[1].id],
        ),
        (
            "UPDATE transfers_ledgerentry SET amount = -300, balance_after = 500 WHERE id = %s",
            [a_entries[2].id],
        ),
        (
            "UPDATE transfers_ledgerentry SET amount = 200, balance_after = 700 WHERE id = %s",
            [b_entries[1].id],
        ),
        (
            "UPDATE transfers_ledgerentry SET amount = 300, balance_after = 1000 WHERE id = %s",
            [b_entries[2].id],
        ),
    ]


def test_a_rewritten_and_rebalanced_history_adds_up_but_breaks_the_chains(books):
    a, b, first, second = books
    behind_the_triggers(*rebalance(a, b, first, second))

    run = reconciliation_run()
    code, out = verify_command()

    # Every sum still adds up: only the chains, which reconciliation walks too, see it.
    assert {d.kind for d in Discrepancy.objects.filter(run=run)} == {Discrepancy.Kind.CHAIN_BROKEN}
    assert {d.wallet_id for d in Discrepancy.objects.filter(run=run)} == {a.id, b.id}
    assert code == 1
    assert f"entry {entries_of(a)[1].id}, #2 of wallet {a.id}" in out
    assert f"entry {entries_of(b)[1].id}, #2 of wallet {b.id}" in out


def rehash(wallet: Wallet) -> list[tuple[str, list]]:
    """What an attacker who knows the format does after a rewrite: recompute the chain."""
    previous, statements, entries = GENESIS, [], entries_of(wallet)
    for position, entry in enumerate(entries, start=1):
        previous = independent_hash(previous, wallet.id, position, entry)
        statements.append(
            ("UPDATE transfers_ledgerentry SET entry_hash = %s WHERE id = %s", [previous, entry.id])
        )
    statements.append(
        (
            "UPDATE wallets_wallet SET head_hash = %s, entry_count = %s WHERE id = %s",
            [previous, len(entries), wallet.id],
        )
    )
    return statements


def test_a_rewrite_with_recomputed_hashes_is_caught_by_the_checkpoint_before_it(books):
    a, b, first, second = books
    checkpoint = ledger_checkpoint_create()
    behind_the_triggers(*rebalance(a, b, first, second))
    behind_the_triggers(*rehash(a), *rehash(b))

    code, out = verify_command()

    assert code == 1
    assert f"#4 of wallet {a.id} does not match checkpoint {checkpoint.id}" in out
    assert f"#3 of wallet {b.id} does not match checkpoint {checkpoint.id}" in out


def test_rewriting_the_checkpoint_too_changes_its_root(books):
    a, b, first, second = books
    checkpoint = ledger_checkpoint_create()
    behind_the_triggers(*rebalance(a, b, first, second))
    behind_the_triggers(*rehash(a), *rehash(b))
    a.refresh_from_db()
    behind_the_triggers(
        (
            "UPDATE transfers_ledgercheckpointwallet SET head_hash = %s"
            " WHERE checkpoint_id = %s AND wallet_id = %s",
            [bytes(a.head_hash), checkpoint.id, a.id],
        )
    )

    code, out = verify_command()

    assert code == 1
    assert f"checkpoint {checkpoint.id}: stored root {bytes(checkpoint.root_hash).hex()} != recomputed" in out


def test_rewriting_the_roots_too_is_caught_by_the_root_held_outside(books):
    a, b, first, second = books
    checkpoint = ledger_checkpoint_create()
    logged = bytes(checkpoint.root_hash).hex()
    behind_the_triggers(*rebalance(a, b, first, second))
    behind_the_triggers(*rehash(a), *rehash(b))
    a.refresh_from_db()
    b.refresh_from_db()
    forged = ledger_chain.checkpoint_root(
        GENESIS, [(w.id, w.entry_count, bytes(w.head_hash)) for w in (a, b)]
    )
    behind_the_triggers(
        ("DELETE FROM transfers_ledgercheckpointwallet", []),
        ("DELETE FROM transfers_ledgercheckpoint", []),
        (
            "INSERT INTO transfers_ledgercheckpoint (id, previous_id, created_at, wallet_count, root_hash)"
            " VALUES (%s, NULL, now(), 2, %s)",
            [checkpoint.id, forged],
        ),
        *(
            (
                "INSERT INTO transfers_ledgercheckpointwallet"
                " (checkpoint_id, wallet_id, entry_count, head_hash, last_entry_id)"
                " VALUES (%s, %s, %s, %s, %s)",
                [checkpoint.id, w.id, w.entry_count, bytes(w.head_hash), entries_of(w)[-1].id],
            )
            for w in (a, b)
        ),
    )
    assert verify_command()[0] == 0  # a consistent forgery of everything in the database

    code, out = verify_command("--root", f"{checkpoint.id}:{logged}")

    assert code == 1
    assert f"checkpoint {checkpoint.id}: stored root {forged.hex()} != the root held outside" in out


def test_a_truncated_table_is_caught_by_the_checkpoint(books):
    a, b, _, _ = books
    checkpoint = ledger_checkpoint_create()
    behind_the_triggers(
        ("TRUNCATE transfers_ledgerentry", []),
        ("UPDATE wallets_wallet SET balance = 0, head_hash = NULL, entry_count = 0 WHERE kind = 'user'", []),
    )

    code, out = verify_command()

    assert code == 1
    assert f"wallet {a.id} has 0 entries but checkpoint {checkpoint.id} recorded 4" in out
    assert f"wallet {b.id} has 0 entries but checkpoint {checkpoint.id} recorded 3" in out


def test_since_a_checkpoint_checks_what_came_after_it(books, make_user):
    a, _, _, _ = books
    checkpoint = ledger_checkpoint_create()
    ledger.deposit_create(wallet_id=a.id, owner_id=a.owner_id, amount=5)
    late = entries_of(a)[-1]
    assert verify_command("--since", str(checkpoint.id))[0] == 0
    behind_the_triggers(
        (
            "UPDATE transfers_ledgerentry SET amount = 6, balance_after = balance_after + 1 WHERE id = %s",
            [late.id],
        )
    )

    code, out = verify_command("--since", str(checkpoint.id))

    assert code == 1
    assert f"entry {late.id}, #5 of wallet {a.id}" in out


def test_reconciliation_gets_one_discrepancy_per_broken_wallet(books):
    a, b, _, _ = books
    edited = entries_of(a)[2]
    behind_the_triggers(
        (
            "UPDATE transfers_ledgerentry SET created_at = created_at + interval '1 second' WHERE id = %s",
            [edited.id],
        )
    )
    run = ReconciliationRun.objects.create(scope=ReconciliationRun.Scope.FULL)

    found = ledger_chain.chain_discrepancies(run=run, wallet_ids=[a.id, b.id])

    assert [(d.kind, d.wallet_id, d.entry_id, d.expected, d.actual) for d in found] == [
        (Discrepancy.Kind.CHAIN_BROKEN, a.id, edited.id, 3, 2)
    ]


def test_reconciliation_reads_from_the_latest_checkpoint_unless_full(books):
    a, b, _, _ = books
    edited = entries_of(a)[1]  # before the checkpoint, which records a's entry #4
    ledger_checkpoint_create()
    ledger.deposit_create(wallet_id=a.id, owner_id=a.owner_id, amount=5)
    behind_the_triggers(("UPDATE transfers_ledgerentry SET type = 'adjustment' WHERE id = %s", [edited.id]))
    run = ReconciliationRun.objects.create(scope=ReconciliationRun.Scope.FULL)

    assert ledger_chain.chain_discrepancies(run=run, wallet_ids=[a.id, b.id]) == []
    found = ledger_chain.chain_discrepancies(run=run, wallet_ids=[a.id, b.id], full=True)
    assert [(d.wallet_id, d.entry_id) for d in found] == [(a.id, edited.id)]


# --- guards --------------------------------------------------------------------------


def test_the_database_refuses_a_head_that_goes_back_and_a_changed_hash(books):
    a, _, _, _ = books
    checkpoint = ledger_checkpoint_create()
    with pytest.raises(IntegrityError, match="chain head cannot go back"), transaction.atomic():
        Wallet.objects.filter(id=a.id).update(entry_count=a.entry_count - 1)
    with pytest.raises(IntegrityError, match="chain head cannot go back"), transaction.atomic():
        Wallet.objects.filter(id=a.id).update(head_hash=GENESIS)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(id=entries_of(a)[0].id).update(entry_hash=GENESIS)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LedgerCheckpointWallet.objects.filter(checkpoint=checkpoint).delete()


# --- checkpoints ---------------------------------------------------------------------


def test_a_checkpoint_records_changed_wallets_and_chains_its_root(books, caplog):
    a, _, _, _ = books
    with caplog.at_level(logging.INFO, logger="transfers.ledger_chain"):
        first = ledger_checkpoint_create()
    ledger.deposit_create(wallet_id=a.id, owner_id=a.owner_id, amount=5)
    a.refresh_from_db()
    second = ledger_checkpoint_create()

    assert first.wallet_count == 2 and second.wallet_count == 1
    lines = sorted(f"{w.id}|{w.entry_count}|{bytes(w.head_hash).hex()}\n" for w in (a,))
    assert (
        bytes(second.root_hash) == hashlib.sha256(bytes(first.root_hash) + "".join(lines).encode()).digest()
    )
    assert second.previous_id == first.id
    record = next(r for r in caplog.records if getattr(r, "event", None) == "ledger_checkpoint")
    assert record.root_hash == bytes(first.root_hash).hex() and record.checkpoint_id == first.id
    parts = [
        REGISTRY.get_sample_value("wallet_ledger_checkpoint_root_part", {"part": str(i)}) for i in range(8)
    ]
    assert b"".join(int(p).to_bytes(4, "big") for p in parts) == bytes(second.root_hash)


def test_the_checkpoint_command_prints_the_root(books):
    out = io.StringIO()
    call_command("ledger_checkpoint", stdout=out)

    assert re.fullmatch(r"Ledger checkpoint #\d+: 2 wallets, root [0-9a-f]{64}\n", out.getvalue())


# --- the backfill --------------------------------------------------------------------


def test_the_backfill_links_wallets_from_before_the_chain(books):
    a, b, _, _ = books
    behind_the_triggers(
        ("UPDATE transfers_ledgerentry SET entry_hash = NULL", []),
        ("UPDATE wallets_wallet SET head_hash = NULL, entry_count = NULL WHERE id = %s", [a.id]),
    )
    # Until then the money path leaves such a wallet unchained.
    ledger.deposit_create(wallet_id=a.id, owner_id=a.owner_id, amount=5)
    assert entries_of(a)[-1].entry_hash is None
    before = ledger_verify()
    assert before.unlinked_wallets == 1 and len(before.breaks) == 1  # b's hashes are gone too

    assert ledger_chain_backfill(wallet_ids=[a.id]) == 1

    a.refresh_from_db()
    assert a.entry_count == 5
    assert [x.wallet_id for x in ledger_verify().breaks] == [b.id]
    ledger.deposit_create(wallet_id=a.id, owner_id=a.owner_id, amount=5)
    assert ledger_verify(wallet_ids=[a.id]).ok


# --- concurrency ---------------------------------------------------------------------


def test_concurrent_transfers_keep_every_chain_valid(make_user, make_wallet):
    users = [make_user() for _ in range(4)]
    wallets = [make_wallet(user, balance=10_000) for user in users]

    def sender(i: int) -> list[int]:
        source = wallets[i % 4]
        client = client_for(users[i % 4])
        client.raise_request_exception = False
        statuses = []
        for n in range(4):
            destination = wallets[(i + 1 + n % 3) % 4]
            body = {
                "source_wallet_id": str(source.id),
                "destination_wallet_id": str(destination.id),
                "amount": 1 + n,
            }
            response = client.post(
                "/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
            )
            statuses.append(response.status_code)
        return statuses

    replies = [
        status
        for statuses in run_concurrently([partial(sender, i) for i in range(12)])
        for status in statuses
    ]

    assert replies == [201] * 48
    result = ledger_verify()
    assert result.ok, result.breaks
    assert result.entries_checked == 4 + 48 * 2
    for wallet in wallets:
        wallet.refresh_from_db()
        assert wallet.entry_count == LedgerEntry.objects.filter(wallet=wallet).count()


# --- the auditor's script ------------------------------------------------------------


def test_the_auditors_script_in_the_docs_verifies_an_export_and_catches_an_edit(books, tmp_path):
    a, _, _, _ = books
    script = re.search(r"```python\n(# verify_export\.py.*?)```", DOC.read_text(), re.S).group(1)
    (tmp_path / "verify_export.py").write_text(script)
    query = re.search(r"\\copy \((SELECT .*?)\) TO", DOC.read_text(), re.S).group(1)

    def export_and_run() -> subprocess.CompletedProcess:
        connection.ensure_connection()
        buffer = io.StringIO()
        sql = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)"
        with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
            for data in copy:
                buffer.write(bytes(data).decode())
        (tmp_path / "entries.csv").write_text(buffer.getvalue())
        assert len(list(csv.DictReader(io.StringIO(buffer.getvalue())))) == 7
        return subprocess.run(
            [sys.executable, "verify_export.py", "entries.csv"], cwd=tmp_path, capture_output=True, text=True
        )

    clean = export_and_run()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    edited = entries_of(a)[2]
    behind_the_triggers(
        (
            "UPDATE transfers_ledgerentry SET amount = amount - 1, balance_after = balance_after - 1"
            " WHERE id = %s",
            [edited.id],
        )
    )
    broken = export_and_run()
    assert broken.returncode == 1
    assert f"entry {edited.id}" in broken.stdout
