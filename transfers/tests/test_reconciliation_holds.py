"""Reconciliation of holds, refunds and adjustment wallets, and the quarantine it triggers.

Corruption is made the way only a superuser could (the triggers off with
`session_replication_role = replica`) and committed, as in test_reconciliation.py; CHECK
constraints still apply, so `held` stays within the balance.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from audit.models import AuditEvent
from conftest import assert_problem, idem
from transfers import holds
from transfers import services as ledger
from transfers.models import Discrepancy, Hold, ReconciliationRun, Transfer
from transfers.reconciliation import reconciliation_run
from wallets.errors import WalletStillInconsistent
from wallets.models import Wallet
from wallets.services import adjustment_wallet_id, wallet_release

pytestmark = pytest.mark.django_db(transaction=True)

Kind = Discrepancy.Kind
CLEAN = ReconciliationRun.Status.CLEAN
DISCREPANCIES = ReconciliationRun.Status.DISCREPANCIES
RESYNC_HELD = Path(settings.BASE_DIR) / "ops" / "runbooks" / "resync_wallet_held.sql"


def without_triggers(*statements: tuple[str, list]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            for sql, params in statements:
                cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = origin")


def set_held(wallet: Wallet, held: int) -> None:
    without_triggers(("UPDATE wallets_wallet SET held = %s WHERE id = %s", [held, wallet.id]))


def found(run: ReconciliationRun) -> set[tuple]:
    return {
        (d.kind, d.wallet_id, d.transfer_id, d.currency, int(d.expected), int(d.actual))
        for d in Discrepancy.objects.filter(run=run)
    }


def status(wallet: Wallet) -> str:
    return Wallet.objects.get(pk=wallet.pk).status


@pytest.fixture
def books(make_user, make_wallet, api_client) -> SimpleNamespace:
    """alice (USD 1,000) holds 300 pending, captured 150 of a 200 hold to bob, voided one;
    bob (USD 500) refunded 100 of alice's 400; carol got an operator's +50 adjustment."""
    alice, bob, carol, operator = make_user("alice"), make_user("bob"), make_user("carol"), make_user("op")
    a = make_wallet(alice, balance=1_000)
    b = make_wallet(bob, balance=500)
    c = make_wallet(carol)
    pending = holds.hold_create(wallet_id=a.id, owner_id=alice.id, amount=300)
    captured = holds.hold_create(wallet_id=a.id, owner_id=alice.id, amount=200)
    holds.hold_capture(hold_id=captured.id, owner_id=alice.id, amount=150, destination_wallet_id=b.id)
    voided = holds.hold_create(wallet_id=a.id, owner_id=alice.id, amount=50)
    holds.hold_void(hold_id=voided.id, owner_id=alice.id)
    paid = ledger.transfer_create(
        source_wallet_id=a.id, destination_wallet_id=b.id, initiated_by_id=alice.id, amount=400
    )
    refund = ledger.refund_create(transfer_id=paid.id, owner_id=bob.id, amount=100)
    ledger.adjustment_post(wallet_id=c.id, amount=50, operator_id=operator.id, reason="goodwill")
    for wallet in (a, b, c):
        wallet.refresh_from_db()
    # The fixture's own arithmetic, so a wrong expectation below cannot hide behind it.
    assert (a.balance, a.held, b.balance, c.balance) == (1_000 - 150 - 400 + 100, 300, 500 + 150 + 300, 50)
    return SimpleNamespace(
        alice=alice,
        bob=bob,
        operator=operator,
        a=a,
        b=b,
        c=c,
        pending=pending,
        captured=Hold.objects.get(pk=captured.id),
        paid=paid,
        refund=refund,
        as_alice=api_client(alice),
        as_bob=api_client(bob),
    )


def test_holds_refunds_and_adjustments_reconcile_clean(books):
    run = reconciliation_run()

    assert found(run) == set()
    assert run.status == CLEAN
    # The adjustment wallet's legs carry no balance_after, like the system wallet's: not a break.
    adjustment = Wallet.objects.get(pk=adjustment_wallet_id(currency="USD"))
    assert adjustment.kind == Wallet.Kind.ADJUSTMENT
    assert run.wallets_checked == Wallet.objects.count() == 5  # 3 users, system, adjustment
    assert not Wallet.objects.exclude(status=Wallet.Status.ACTIVE).exists()


def test_a_held_mismatch_is_found_and_the_wallet_goes_under_review(books):
    set_held(books.a, 500)  # pending holds still add up to 300

    run = reconciliation_run()

    assert run.status == DISCREPANCIES
    assert found(run) == {(Kind.HELD_MISMATCH, books.a.id, None, "USD", 300, 500)}
    assert status(books.a) == Wallet.Status.UNDER_REVIEW
    assert {status(books.b), status(books.c)} == {Wallet.Status.ACTIVE}
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_UNDER_REVIEW)
    assert (event.target_id, event.actor_id, event.currency) == (str(books.a.id), None, "USD")
    assert event.details["status"] == {"old": "active", "new": "under_review"}
    assert event.details["discrepancies"] == ["held_mismatch"]
    assert event.details["reconciliation_run"] == run.id


def test_a_wallet_without_holds_but_with_held_money_is_found(books):
    set_held(books.b, 200)

    run = reconciliation_run(wallet_id=books.b.id)

    assert found(run) == {(Kind.HELD_MISMATCH, books.b.id, None, "USD", 0, 200)}
    assert status(books.b) == Wallet.Status.UNDER_REVIEW


def test_under_review_the_money_api_refuses_the_wallet_on_either_side(books):
    set_held(books.a, 500)
    reconciliation_run()

    out = books.as_alice.post(
        "/api/v1/transfers",
        {"source_wallet_id": str(books.a.id), "destination_wallet_id": str(books.b.id), "amount": 10},
        format="json",
        **idem(),
    )
    into = books.as_bob.post(
        "/api/v1/transfers",
        {"source_wallet_id": str(books.b.id), "destination_wallet_id": str(books.a.id), "amount": 10},
        format="json",
        **idem(),
    )
    deposit = books.as_alice.post(
        f"/api/v1/wallets/{books.a.id}/deposits", {"amount": 10}, format="json", **idem()
    )

    for response in (out, into, deposit):
        assert_problem(response, 409, "wallet_under_review")
    assert Wallet.objects.get(pk=books.a.id).balance == books.a.balance  # nothing moved
    # A final answer: stored under its key and replayed (after the release: a new key).
    key = {"HTTP_IDEMPOTENCY_KEY": "under-review"}
    path = f"/api/v1/wallets/{books.a.id}/withdrawals"
    first = books.as_alice.post(path, {"amount": 10}, format="json", **key)
    again = books.as_alice.post(path, {"amount": 10}, format="json", **key)
    assert_problem(first, 409, "wallet_under_review")
    assert (again.status_code, again["Idempotent-Replayed"]) == (409, "true")


def test_an_adjustment_posts_on_a_wallet_under_review_once_its_figures_are_resynced(books):
    set_held(books.a, 500)
    reconciliation_run()
    run_resync_held(books.a, books.operator.id, "INC-8")

    ledger.adjustment_post(wallet_id=books.a.id, amount=-40, operator_id=books.operator.id, reason="INC-8")

    stored = Wallet.objects.get(pk=books.a.id)
    assert (stored.status, stored.balance, stored.held) == (
        Wallet.Status.UNDER_REVIEW,
        books.a.balance - 40,
        300,
    )
    assert reconciliation_run(wallet_id=books.a.id).status == CLEAN
    assert wallet_release(wallet_id=books.a.id, actor_id=books.operator.id).status == Wallet.Status.ACTIVE


def run_resync_held(wallet: Wallet, operator_id: int, reason: str) -> list[tuple]:
    """ops/runbooks/resync_wallet_held.sql as psql runs it, its -v variables bound as parameters."""
    body = RESYNC_HELD.read_text().split("BEGIN;", 1)[1].rsplit("COMMIT;", 1)[0]
    for name in ("wallet", "operator", "reason"):
        body = body.replace(f":'{name}'", f"%({name})s")
    params = {"wallet": str(wallet.id), "operator": operator_id, "reason": reason}
    rows: list[tuple] = []
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in (s.strip() for s in body.split(";")):
            if statement:
                cursor.execute(statement, params)
                rows = cursor.fetchall()
    return rows


def test_release_is_refused_while_inconsistent_and_allowed_after_the_fix_and_a_clean_run(books):
    set_held(books.a, 500)
    reconciliation_run()
    assert status(books.a) == Wallet.Status.UNDER_REVIEW

    with pytest.raises(WalletStillInconsistent):
        wallet_release(wallet_id=books.a.id, actor_id=books.operator.id)
    assert status(books.a) == Wallet.Status.UNDER_REVIEW

    (row,) = run_resync_held(books.a, books.operator.id, "INC-7")

    assert Wallet.objects.get(pk=books.a.id).held == 300
    assert row[0] == str(books.a.id)
    (resynced,) = AuditEvent.objects.filter(
        action=AuditEvent.Action.WALLET_UPDATED, target_id=str(books.a.id)
    )
    assert resynced.details == {"held": {"old": 500, "new": 300}, "reason": "INC-7"}
    # Fixed but not yet reconciled: still refused (the flag is what a run found).
    with pytest.raises(WalletStillInconsistent):
        wallet_release(wallet_id=books.a.id, actor_id=books.operator.id)

    assert reconciliation_run(wallet_id=books.a.id).status == CLEAN
    released = wallet_release(wallet_id=books.a.id, actor_id=books.operator.id)

    assert released.status == Wallet.Status.ACTIVE
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_RELEASED)
    assert (event.actor_id, event.target_id) == (books.operator.id, str(books.a.id))
    assert event.details == {"status": {"old": "under_review", "new": "active"}}
    response = books.as_alice.post(
        "/api/v1/transfers",
        {"source_wallet_id": str(books.a.id), "destination_wallet_id": str(books.b.id), "amount": 10},
        format="json",
        **idem(),
    )
    assert response.status_code == 201, response.content


def test_the_held_resync_cannot_set_anything_but_the_pending_sum(books):
    """The triggers stay on: a `held` other than the pending holds' sum fails at COMMIT."""
    with (
        pytest.raises(IntegrityError, match="pending holds add up to 300"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE wallets_wallet SET held = 250 WHERE id = %s", [books.a.id])
    assert Wallet.objects.get(pk=books.a.id).held == 300


def test_a_captured_hold_that_does_not_match_its_capture_is_found(books):
    # The capture moved 150; the hold now claims 120 (still within its amount of 200).
    without_triggers(("UPDATE transfers_hold SET captured_amount = 120 WHERE id = %s", [books.captured.id]))

    run = reconciliation_run()

    capture = books.captured.capture_transfer_id
    assert found(run) == {(Kind.HOLD_CAPTURE_MISMATCH, books.a.id, capture, "USD", 120, 150)}
    assert str(books.captured.id) in Discrepancy.objects.get(run=run).detail
    assert status(books.a) == Wallet.Status.UNDER_REVIEW


def repoint_a_refund(books) -> Transfer:
    """Another 200 from alice to bob, 150 of it refunded; then `paid`'s refund of 100 claims
    to return it instead: its refunds add up to 250, over its 200."""
    other = ledger.transfer_create(
        source_wallet_id=books.a.id,
        destination_wallet_id=books.b.id,
        initiated_by_id=books.alice.id,
        amount=200,
    )
    ledger.refund_create(transfer_id=other.id, owner_id=books.bob.id, amount=150)
    without_triggers(
        ("UPDATE transfers_transfer SET refund_of_id = %s WHERE id = %s", [other.id, books.refund.id])
    )
    return other


def test_refunds_adding_up_to_more_than_their_original_are_found(books):
    other = repoint_a_refund(books)

    run = reconciliation_run()

    assert found(run) == {(Kind.REFUNDS_EXCEED_ORIGINAL, None, other.id, "USD", 200, 250)}
    assert "2 refunds return 250" in Discrepancy.objects.get(run=run).detail
    # A finding about transfers, not about a wallet's stored figures: no wallet goes under review.
    assert not Wallet.objects.exclude(status=Wallet.Status.ACTIVE).exists()


@pytest.mark.parametrize("batch_size", [1, 2])
def test_an_original_is_reported_once_however_the_batches_split_its_refunds(books, batch_size):
    other = repoint_a_refund(books)

    run = reconciliation_run(batch_size=batch_size)

    assert found(run) == {(Kind.REFUNDS_EXCEED_ORIGINAL, None, other.id, "USD", 200, 250)}
    assert run.discrepancy_count == 1


def test_a_refund_that_does_not_return_its_original_is_found(books):
    deposit = Transfer.objects.filter(kind=Transfer.Kind.DEPOSIT, destination_wallet=books.b).first()
    without_triggers(
        ("UPDATE transfers_transfer SET refund_of_id = %s WHERE id = %s", [deposit.id, books.refund.id])
    )

    run = reconciliation_run()

    assert found(run) == {(Kind.REFUND_MISDIRECTED, None, books.refund.id, "USD", 0, 1)}
    assert str(deposit.id) in Discrepancy.objects.get(run=run).detail


def test_an_incremental_run_checks_an_old_original_through_its_new_refund(books):
    without_triggers(
        ("UPDATE transfers_transfer SET created_at = created_at - interval '2 days'", []),
        ("UPDATE wallets_wallet SET updated_at = updated_at - interval '2 days'", []),
    )
    first = reconciliation_run(incremental=True)
    assert first.status == CLEAN
    refund = ledger.refund_create(transfer_id=books.paid.id, owner_id=books.bob.id, amount=200)
    # 300 of 400 are back; the new refund's row now claims 350 (its legs still move 200).
    without_triggers(("UPDATE transfers_transfer SET amount = 350 WHERE id = %s", [refund.id]))

    second = reconciliation_run(incremental=True)

    assert second.scope == ReconciliationRun.Scope.SINCE
    assert second.transfers_checked == 1  # only the new refund; its old original is looked up
    assert found(second) == {(Kind.REFUNDS_EXCEED_ORIGINAL, None, books.paid.id, "USD", 400, 450)}


def test_the_command_names_the_wallets_under_review(books):
    set_held(books.a, 500)
    out = StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile", stdout=out)

    assert exit_.value.code == 1
    printed = out.getvalue()
    assert f"held_mismatch: {books.a.id} expected 300 actual 500" in printed
    assert f"wallet {books.a.id} is under review" in printed
    assert str(books.b.id) not in printed
