"""A wallet whose stored balance disagrees with its ledger: refused cleanly, logged, counted, flagged.

The corruption is made the way only a superuser could (the triggers switched off with
`session_replication_role = replica`), then committed, so the money path meets it as
it would in production: PostgreSQL's deferred constraint triggers refuse the commit.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from audit.models import AuditEvent
from conftest import PROBLEM, admin_page, assert_problem, idem
from transfers.ledger_errors import ledger_violation
from transfers.models import IdempotencyRecord, LedgerEntry, Transfer
from transfers.reconciliation import reconciliation_run
from wallets.models import Wallet
from wallets.services import wallet_release

pytestmark = pytest.mark.django_db(transaction=True)

VIOLATIONS = "wallet_ledger_invariant_violations_total"
MOVEMENTS = "wallet_money_movements_total"


def set_balance_behind_the_triggers(wallet: Wallet, balance: int) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute("UPDATE wallets_wallet SET balance = %s WHERE id = %s", [balance, wallet.id])
        finally:
            cursor.execute("SET session_replication_role = origin")


def violations(check: str = "entry_balanced") -> float:
    return REGISTRY.get_sample_value(VIOLATIONS, {"check": check}) or 0.0


def refused_movements(kind: str) -> float:
    labels = {"kind": kind, "currency": "USD", "outcome": "ledger_inconsistent"}
    return REGISTRY.get_sample_value(MOVEMENTS, labels) or 0.0


def state() -> tuple:
    balances = dict(Wallet.objects.values_list("id", "balance"))
    return balances, Transfer.objects.count(), LedgerEntry.objects.count(), IdempotencyRecord.objects.count()


@pytest.fixture
def books(make_user, make_wallet, api_client) -> SimpleNamespace:
    """alice's wallet is corrupted (ledger says 1,000, row says 5,000); bob's is healthy."""
    alice, bob = make_user(), make_user()
    broken = make_wallet(alice, balance=1_000)
    healthy = make_wallet(bob, balance=1_000)
    set_balance_behind_the_triggers(broken, 5_000)
    return SimpleNamespace(
        alice=alice,
        bob=bob,
        broken=broken,
        healthy=healthy,
        as_alice=api_client(alice),
        as_bob=api_client(bob),
    )


def request(books, case: str) -> tuple:
    """(client, path, body, movement kind) for one way of touching the corrupted wallet."""
    broken, healthy = str(books.broken.id), str(books.healthy.id)
    return {
        "deposit": (books.as_alice, f"/api/v1/wallets/{broken}/deposits", {"amount": 100}, "deposit"),
        "withdrawal": (
            books.as_alice,
            f"/api/v1/wallets/{broken}/withdrawals",
            {"amount": 100},
            "withdrawal",
        ),
        "transfer out": (
            books.as_alice,
            "/api/v1/transfers",
            {"source_wallet_id": broken, "destination_wallet_id": healthy, "amount": 100},
            "transfer",
        ),
        "transfer in": (
            books.as_bob,
            "/api/v1/transfers",
            {"source_wallet_id": healthy, "destination_wallet_id": broken, "amount": 100},
            "transfer",
        ),
    }[case]


CASES = ["deposit", "withdrawal", "transfer out", "transfer in"]


@pytest.mark.parametrize("case", CASES)
def test_a_movement_touching_a_corrupted_wallet_is_refused_cleanly(books, case, caplog):
    client, path, body, kind = request(books, case)
    before, counted, refused = state(), violations(), refused_movements(kind)

    with caplog.at_level(logging.INFO):
        response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    problem = assert_problem(response, 409, "ledger_inconsistent")
    assert response["Content-Type"] == PROBLEM
    assert "Retry-After" not in response
    # The answer says nothing about whose wallet it is (the destination may be a stranger's).
    assert str(books.broken.id) not in response.content.decode()
    assert problem["title"]
    assert state() == before  # nothing moved, nothing stored
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert str(books.broken.id) in errors[0].getMessage()
    assert errors[0].wallet_id == str(books.broken.id)
    assert violations() == counted + 1
    assert refused_movements(kind) == refused + 1
    (audited,) = AuditEvent.objects.filter(action=AuditEvent.Action.MONEY_FAILED)
    assert (audited.outcome, audited.amount, audited.currency) == ("ledger_inconsistent", 100, "USD")
    assert audited.details["inconsistent_wallet_id"] == str(books.broken.id)


def test_the_refusal_is_not_stored_so_the_same_key_works_after_the_repair(books):
    client, path, body, _ = request(books, "deposit")
    assert client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 409
    assert client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 409

    set_balance_behind_the_triggers(books.broken, 1_000)  # what the ledger says
    repaired = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert repaired.status_code == 201, repaired.content
    assert repaired.json()["wallet"]["balance"] == 1_100
    assert "Idempotent-Replayed" not in repaired


def test_a_healthy_wallet_keeps_moving_money(books):
    other = Wallet.objects.create(owner=books.bob, currency="USD")
    body = {"source_wallet_id": str(books.healthy.id), "destination_wallet_id": str(other.id), "amount": 10}
    response = books.as_bob.post(
        "/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    assert response.status_code == 201, response.content


def test_only_a_ledger_trigger_counts_as_an_inconsistency(books):
    """A column CHECK constraint raises the same SQLSTATE; it stays an error (a bug), not a refusal."""
    with pytest.raises(IntegrityError) as column_check, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE wallets_wallet SET balance = -1 WHERE id = %s", [books.healthy.id])
    assert ledger_violation(column_check.value) is None

    with pytest.raises(IntegrityError) as at_commit, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE wallets_wallet SET balance = 7 WHERE id = %s", [books.healthy.id])
    violation = ledger_violation(at_commit.value)
    assert violation is not None
    assert (violation.check, violation.wallet_id) == ("wallet_balance_matches_ledger", str(books.healthy.id))


# --- the admin --------------------------------------------------------------------------


def test_reconciliation_flags_the_wallet_in_the_admin_until_a_run_finds_it_consistent(books, admin_client):
    inconsistent = "/admin/wallets/wallet/?ledger=inconsistent"
    assert str(books.broken.id)[:8] not in admin_page(admin_client, inconsistent)  # nothing flagged yet

    reconciliation_run()

    flagged = Wallet.objects.filter(inconsistent_since__isnull=False)
    assert list(flagged.values_list("id", flat=True)) == [books.broken.id]
    page = admin_page(admin_client, inconsistent)
    assert str(books.broken.id)[:8] in page and str(books.healthy.id)[:8] not in page
    everything = admin_page(admin_client, "/admin/wallets/wallet/")
    assert everything.count("icon-no.svg") == 1  # the marker, on the corrupted wallet's row only
    assert str(books.healthy.id)[:8] in admin_page(admin_client, "/admin/wallets/wallet/?ledger=consistent")
    first_found = Wallet.objects.get(pk=books.broken.id).inconsistent_since

    reconciliation_run(wallet_id=books.broken.id)  # still broken: the first finding's time is kept
    assert Wallet.objects.get(pk=books.broken.id).inconsistent_since == first_found

    # Repaired behind the ledger's back, so the wallet's updated_at does not move; and
    # nothing else changed recently. An incremental run still re-checks the flagged wallet.
    set_balance_behind_the_triggers(books.broken, 1_000)
    Wallet.objects.update(updated_at=F("updated_at") - timedelta(days=1))
    run = reconciliation_run(incremental=True)

    assert (run.scope, run.wallets_checked, run.discrepancy_count) == ("since", 1, 0)
    assert not Wallet.objects.filter(inconsistent_since__isnull=False).exists()
    assert str(books.broken.id)[:8] not in admin_page(admin_client, inconsistent)


def test_the_wallet_list_costs_the_same_queries_for_any_number_of_rows(
    books, admin_client, make_user, make_wallet
):
    reconciliation_run()

    def queries_for_the_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            admin_page(admin_client, "/admin/wallets/wallet/")
        return len(queries)

    few = queries_for_the_list()
    for _ in range(5):
        make_wallet(make_user(), balance=10)  # more rows, and more entries on the system wallet
    assert queries_for_the_list() == few


# --- the runbook's one manual repair ------------------------------------------------------

RESYNC = Path(settings.BASE_DIR) / "ops" / "runbooks" / "resync_wallet_balance.sql"


def run_resync(wallet: Wallet, operator_id: int, reason: str) -> list[tuple]:
    """ops/runbooks/resync_wallet_balance.sql as psql runs it, its -v variables bound as parameters."""
    script = RESYNC.read_text()
    statement = script.split("BEGIN;", 1)[1].rsplit("COMMIT;", 1)[0]
    for name in ("wallet", "operator", "reason"):
        statement = statement.replace(f":'{name}'", f"%({name})s")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, {"wallet": str(wallet.id), "operator": operator_id, "reason": reason})
        return cursor.fetchall()


def test_the_runbook_resync_restores_the_ledger_balance_and_audits_it(books, make_user):
    operator = make_user(username="operator")
    reconciliation_run(wallet_id=books.broken.id)
    assert Wallet.objects.get(pk=books.broken.id).inconsistent_since is not None

    (row,) = run_resync(books.broken, operator.id, "INC-42")

    books.broken.refresh_from_db()
    assert books.broken.balance == 1_000  # what the ledger says, committed past the triggers' check
    assert row[0] == str(books.broken.id)
    (event,) = AuditEvent.objects.filter(
        action=AuditEvent.Action.WALLET_UPDATED, target_id=str(books.broken.id)
    )
    assert event.actor_id == operator.id
    assert event.details == {"balance": {"old": 5_000, "new": 1_000}, "reason": "INC-42"}
    run = reconciliation_run(wallet_id=books.broken.id)
    assert run.discrepancy_count == 0
    assert Wallet.objects.get(pk=books.broken.id).inconsistent_since is None
    # Reconciliation put it under review; consistent again, the operator releases it.
    client, path, body, _ = request(books, "transfer in")
    assert_problem(client.post(path, body, format="json", **idem()), 409, "wallet_under_review")
    assert wallet_release(wallet_id=books.broken.id, actor_id=operator.id).status == Wallet.Status.ACTIVE
    assert client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="after-resync").status_code == 201


def test_the_runbook_resync_touches_no_system_wallet_and_no_other_wallet(books, make_user):
    system = Wallet.objects.get(kind=Wallet.Kind.SYSTEM, currency="USD")
    assert run_resync(system, make_user().id, "wrong wallet") == []
    assert Wallet.objects.get(pk=books.healthy.id).balance == 1_000
    assert Wallet.objects.get(pk=books.broken.id).balance == 5_000
