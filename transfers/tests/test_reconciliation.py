"""Reconciliation: clean ledgers pass, corrupted ones are reported exactly, nothing is fixed.

Corruption is done the way only a superuser could: raw SQL with
`session_replication_role = replica`, which keeps the append-only and
balance-matches-ledger triggers of transfers.0003 from firing. Tests are
transactional so that what they write (and corrupt) is really committed, as it
would be on a production database the reconciliation reads.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, transaction
from django.db.models import Sum

from foundation.db import is_cancelled, is_lock_timeout
from testing.threads import JOIN_TIMEOUT  # a hang detector, never a timing assertion
from transfers import services as ledger
from transfers.models import Discrepancy, LedgerEntry, ReconciliationRun, Transfer
from transfers.reconciliation import INCREMENTAL_OVERLAP, reconciliation_run
from wallets.errors import WalletError
from wallets.models import Wallet

pytestmark = pytest.mark.django_db(transaction=True)

Kind = Discrepancy.Kind
CLEAN = ReconciliationRun.Status.CLEAN
DISCREPANCIES = ReconciliationRun.Status.DISCREPANCIES


def without_triggers(*statements: tuple[str, list]) -> None:
    """Run raw SQL with the ledger's triggers off, then switch them back on."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            for sql, params in statements:
                cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = origin")


def corrupt_balance(wallet: Wallet, delta: int) -> None:
    without_triggers(("UPDATE wallets_wallet SET balance = balance + %s WHERE id = %s", [delta, wallet.id]))


def backdate_everything(days: int = 1) -> None:
    """Make every wallet and transfer look `days` old, so only later changes are 'recent'.
    (Entries keep their stamps: they are hashed into the wallet's chain, and the scope is
    chosen by wallets and transfers.)"""
    shift = timedelta(days=days)
    without_triggers(
        ("UPDATE wallets_wallet SET updated_at = updated_at - %s", [shift]),
        ("UPDATE transfers_transfer SET created_at = created_at - %s", [shift]),
    )


def found(run: ReconciliationRun) -> set[tuple]:
    """What a run reported: (kind, wallet, transfer, entry, currency, expected, actual) per row."""
    return {
        (d.kind, d.wallet_id, d.transfer_id, d.entry_id, d.currency, int(d.expected), int(d.actual))
        for d in Discrepancy.objects.filter(run=run)
    }


def entry_sum(wallet: Wallet) -> int:
    return LedgerEntry.objects.filter(wallet=wallet).aggregate(total=Sum("amount"))["total"] or 0


def last_run() -> ReconciliationRun:
    return ReconciliationRun.objects.order_by("-id").first()


@pytest.fixture
def books(make_user, make_wallet) -> SimpleNamespace:
    """Two users, wallets in USD and EUR, deposits, transfers both ways and withdrawals.

    7 wallets (5 user, 2 system), 9 transfers, 18 entries.
    """
    alice, bob = make_user("alice"), make_user("bob")
    a_usd = make_wallet(alice, "USD", balance=10_000)
    b_usd = make_wallet(bob, "USD", balance=5_000)
    a_eur = make_wallet(alice, "EUR", balance=7_000)
    b_eur = make_wallet(bob, "EUR")
    a_usd_empty = make_wallet(alice, "USD")
    t_ab = ledger.transfer_create(
        source_wallet_id=a_usd.id, destination_wallet_id=b_usd.id, initiated_by_id=alice.id, amount=2_500
    )
    ledger.transfer_create(
        source_wallet_id=b_usd.id, destination_wallet_id=a_usd.id, initiated_by_id=bob.id, amount=1_000
    )
    ledger.transfer_create(
        source_wallet_id=a_eur.id, destination_wallet_id=b_eur.id, initiated_by_id=alice.id, amount=3_000
    )
    ledger.withdrawal_create(wallet_id=b_usd.id, owner_id=bob.id, amount=700)
    ledger.withdrawal_create(wallet_id=b_eur.id, owner_id=bob.id, amount=500)
    ledger.deposit_create(wallet_id=a_usd.id, owner_id=alice.id, amount=1_234)
    for wallet in (a_usd, b_usd, a_eur, b_eur, a_usd_empty):
        wallet.refresh_from_db()
    # The fixture's own arithmetic, so a wrong expectation below cannot hide behind it.
    assert (a_usd.balance, b_usd.balance, a_eur.balance, b_eur.balance) == (9_734, 5_800, 4_000, 2_500)
    assert (Wallet.objects.count(), Transfer.objects.count(), LedgerEntry.objects.count()) == (7, 9, 18)
    return SimpleNamespace(
        alice=alice,
        bob=bob,
        a_usd=a_usd,
        b_usd=b_usd,
        a_eur=a_eur,
        b_eur=b_eur,
        a_usd_empty=a_usd_empty,
        t_ab=t_ab,
    )


# --- what a run finds -------------------------------------------------------------------


def test_clean_ledger_finds_nothing_and_counts_what_it_checked(books):
    run = reconciliation_run()

    assert run.status == CLEAN
    assert run.scope == ReconciliationRun.Scope.FULL
    assert (run.wallets_checked, run.transfers_checked, run.entries_checked) == (7, 9, 18)
    assert run.discrepancy_count == 0
    assert not Discrepancy.objects.exists()
    assert run.finished_at is not None
    stored = ReconciliationRun.objects.get(pk=run.pk)
    assert (stored.status, stored.wallets_checked, stored.transfers_checked) == (CLEAN, 7, 9)


def test_corrupted_balance_is_reported_alone(books):
    corrupt_balance(books.b_usd, +1)

    run = reconciliation_run()

    assert run.status == DISCREPANCIES
    assert run.discrepancy_count == 1
    assert found(run) == {(Kind.BALANCE_MISMATCH, books.b_usd.id, None, None, "USD", 5_800, 5_801)}


def test_corrupted_entry_is_reported_on_its_wallet_transfer_and_currency(books):
    # a_usd's entries: +10000 (10000), -2500 (7500), +1000 (8500), +1234 (9734).
    # The second one becomes -2400: its wallet, its transfer and USD are all off by 100.
    entry = LedgerEntry.objects.get(transfer=books.t_ab, wallet=books.a_usd)
    assert (entry.amount, entry.balance_after) == (-2_500, 7_500)
    without_triggers(("UPDATE transfers_ledgerentry SET amount = -2400 WHERE id = %s", [entry.id]))

    run = reconciliation_run()

    assert run.status == DISCREPANCIES
    assert found(run) == {
        (Kind.BALANCE_MISMATCH, books.a_usd.id, None, None, "USD", 9_834, 9_734),
        # The first entry off the running sum is the corrupted one, not an earlier or later one.
        (Kind.RUNNING_BALANCE, books.a_usd.id, books.t_ab.id, entry.id, "USD", 7_600, 7_500),
        (Kind.UNBALANCED_TRANSFER, None, books.t_ab.id, None, "USD", 0, 100),
        (Kind.CURRENCY_IMBALANCE, None, None, None, "USD", 0, 100),
        # The hash chain breaks at the same entry: #2 of the wallet, after 1 verified.
        (Kind.CHAIN_BROKEN, books.a_usd.id, None, entry.id, "", 2, 1),
    }
    assert run.discrepancy_count == 5
    running = Discrepancy.objects.get(run=run, kind=Kind.RUNNING_BALANCE)
    assert "3 entries" in running.detail  # 7500, 8500 and 9734 are all off now


def test_runs_report_but_never_fix_balances(books):
    corrupt_balance(books.b_usd, +1)
    entries_before = list(LedgerEntry.objects.order_by("id").values_list("id", "amount", "balance_after"))

    first = reconciliation_run()
    second = reconciliation_run()

    books.b_usd.refresh_from_db()
    assert books.b_usd.balance == 5_801
    assert list(LedgerEntry.objects.order_by("id").values_list("id", "amount", "balance_after")) == (
        entries_before
    )
    assert (
        found(first)
        == found(second)
        == {(Kind.BALANCE_MISMATCH, books.b_usd.id, None, None, "USD", 5_800, 5_801)}
    )


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_batches_smaller_than_the_ledger_still_check_everything(books, batch_size):
    user_wallets = list(Wallet.objects.filter(kind=Wallet.Kind.USER).order_by("pk"))
    first, last = user_wallets[0], user_wallets[-1]
    corrupt_balance(first, +3)
    corrupt_balance(last, +5)

    run = reconciliation_run(batch_size=batch_size)

    assert (run.wallets_checked, run.transfers_checked, run.entries_checked) == (7, 9, 18)
    assert {(kind, wallet_id) for kind, wallet_id, *_ in found(run)} == {
        (Kind.BALANCE_MISMATCH, first.id),
        (Kind.BALANCE_MISMATCH, last.id),
    }


# --- scope ------------------------------------------------------------------------------


def test_incremental_run_checks_only_what_changed_since_the_previous_run(books):
    backdate_everything()
    first = reconciliation_run(incremental=True)
    assert (first.scope, first.wallets_checked, first.transfers_checked) == (
        ReconciliationRun.Scope.FULL,
        7,
        9,
    )
    # A one-wallet run in between is not a baseline for the next incremental run.
    reconciliation_run(wallet_id=books.a_usd.id)
    corrupt_balance(books.b_usd, +1)  # an old wallet: out of the incremental scope
    ledger.deposit_create(wallet_id=books.a_eur.id, owner_id=books.alice.id, amount=10)

    second = reconciliation_run(incremental=True)

    assert second.scope == ReconciliationRun.Scope.SINCE
    assert second.since == first.started_at - INCREMENTAL_OVERLAP
    assert (second.wallets_checked, second.transfers_checked) == (1, 1)
    assert second.entries_checked == LedgerEntry.objects.filter(wallet=books.a_eur).count() == 3
    assert second.status == CLEAN
    assert reconciliation_run().status == DISCREPANCIES  # the full run still sees the old wallet


# --- the management command ---------------------------------------------------------------


def reconcile(*args: str) -> tuple[int, str]:
    """call_command("reconcile", ...) -> (exit code, output)."""
    out = StringIO()
    try:
        call_command("reconcile", *args, stdout=out)
    except SystemExit as exit_:
        return exit_.code, out.getvalue()
    return 0, out.getvalue()


def test_command_returns_normally_on_a_clean_ledger(books):
    out = StringIO()

    call_command("reconcile", stdout=out)  # no SystemExit

    summary = out.getvalue()
    assert "7 wallets, 9 transfers, 18 entries checked" in summary
    assert "0 discrepancies" in summary
    assert "status clean" in summary


def test_command_exits_1_and_prints_a_summary_when_anything_is_wrong(books):
    corrupt_balance(books.b_usd, +1)
    out = StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile", stdout=out)

    assert exit_.value.code == 1
    summary = out.getvalue()
    assert "1 discrepancies" in summary
    assert "status discrepancies" in summary
    assert f"balance_mismatch: {books.b_usd.id} expected 5800 actual 5801" in summary


def test_command_wallet_checks_only_that_wallet(books):
    corrupt_balance(books.b_usd, +1)

    code, summary = reconcile("--wallet", str(books.a_usd.id))

    assert code == 0, summary
    run = last_run()
    assert (run.scope, run.wallet_id, run.status) == (ReconciliationRun.Scope.WALLET, books.a_usd.id, CLEAN)
    # a_usd: 2 deposits and 2 transfers, one leg each on this wallet.
    assert (run.wallets_checked, run.transfers_checked, run.entries_checked) == (1, 4, 4)

    code, summary = reconcile("--wallet", str(books.b_usd.id))

    assert code == 1
    assert found(last_run()) == {(Kind.BALANCE_MISMATCH, books.b_usd.id, None, None, "USD", 5_800, 5_801)}


def test_command_since_checks_only_wallets_changed_since(books):
    backdate_everything()
    corrupt_balance(books.b_usd, +1)  # not changed by any service since: out of scope
    ledger.deposit_create(wallet_id=books.a_eur.id, owner_id=books.alice.id, amount=10)
    since = datetime.now(UTC) - timedelta(hours=1)

    code, summary = reconcile("--since", since.isoformat())

    assert code == 0, summary
    run = last_run()
    assert (run.scope, run.since, run.status) == (ReconciliationRun.Scope.SINCE, since, CLEAN)
    assert (run.wallets_checked, run.transfers_checked) == (1, 1)
    assert reconcile()[0] == 1  # the full run does see b_usd


def test_command_since_accepts_a_time_without_offset_as_utc(books):
    code, summary = reconcile("--since", "2024-01-01T00:00:00")

    assert code == 0, summary
    run = last_run()
    assert (run.scope, run.since) == (ReconciliationRun.Scope.SINCE, datetime(2024, 1, 1, tzinfo=UTC))
    assert run.wallets_checked == 7


@pytest.mark.parametrize(
    "args",
    [
        ("--wallet", "not-a-uuid"),
        ("--wallet", "42"),
        ("--since", "yesterday"),
        ("--since", "2024-13-01"),
    ],
    ids=["wallet-word", "wallet-number", "since-word", "since-month-13"],
)
def test_command_rejects_bad_arguments(books, args):
    with pytest.raises(CommandError):
        call_command("reconcile", *args, stdout=StringIO())

    assert not ReconciliationRun.objects.exists()


# --- concurrency --------------------------------------------------------------------------


def test_money_moving_during_runs_produces_no_false_discrepancy(make_user, make_wallet):
    users = [make_user() for _ in range(3)]
    wallets = {
        user.id: [make_wallet(user, currency, balance=50_000) for currency in ("USD", "USD", "EUR")]
        for user in users
    }
    every_wallet = [w for owned in wallets.values() for w in owned]
    moves = [0] * len(users)
    failures: list[str] = []
    stop = threading.Event()

    def mover(index: int, user_id: int) -> None:
        rng = random.Random(index)
        try:
            while not stop.is_set():
                source = rng.choice(wallets[user_id])
                amount = rng.randint(1, 900)
                action = rng.choice(["transfer", "transfer", "deposit", "withdrawal"])
                try:
                    if action == "transfer":
                        destination = rng.choice(
                            [w for w in every_wallet if w.currency == source.currency and w.id != source.id]
                        )
                        ledger.transfer_create(
                            source_wallet_id=source.id,
                            destination_wallet_id=destination.id,
                            initiated_by_id=user_id,
                            amount=amount,
                        )
                    elif action == "deposit":
                        ledger.deposit_create(wallet_id=source.id, owner_id=user_id, amount=amount)
                    else:
                        ledger.withdrawal_create(wallet_id=source.id, owner_id=user_id, amount=amount)
                except WalletError:
                    pass  # e.g. insufficient funds: a refusal, not a failure
                except OperationalError as exc:
                    # A service called directly makes one lock attempt (the executor
                    # retries them); a busy wallet is a refusal here, not a failure.
                    if not (is_lock_timeout(exc) or is_cancelled(exc)):
                        raise
                moves[index] += 1
        except BaseException:
            failures.append(traceback.format_exc())
        finally:
            connection.close()

    def wait_for_moves(at_least: int) -> None:
        # Bounded, so a stuck mover fails the assertions below instead of hanging the test.
        for _ in range(JOIN_TIMEOUT * 200):
            if sum(moves) >= at_least or failures or not any(t.is_alive() for t in threads):
                return
            time.sleep(0.005)

    threads = [threading.Thread(target=mover, args=(i, user.id), daemon=True) for i, user in enumerate(users)]
    runs: list[ReconciliationRun] = []
    progress: list[tuple[int, int]] = []
    for thread in threads:
        thread.start()
    try:
        for _ in range(6):
            wait_for_moves(sum(moves) + len(users))  # money keeps moving between runs
            before = sum(moves)
            runs.append(reconciliation_run(batch_size=2))
            progress.append((before, sum(moves)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=JOIN_TIMEOUT)

    assert not any(t.is_alive() for t in threads), "a mover never finished (deadlock or lock wait)"
    assert not failures, failures[0]
    reported = {run.id: sorted(found(run)) for run in runs if run.status != CLEAN}
    assert not reported, f"false discrepancies while money moved: {reported}"
    assert [run.status for run in runs] == [CLEAN] * 6
    # Money really moved while the runs read the ledger (not only before or after them).
    assert any(after > before for before, after in progress), progress
    assert Transfer.objects.count() > len(every_wallet) + 6
    final = reconciliation_run()
    assert final.status == CLEAN
    assert final.wallets_checked == Wallet.objects.count()
    assert final.entries_checked == LedgerEntry.objects.count() == 2 * Transfer.objects.count()
