"""dashboard.selectors: each figure of the Ledger overview, read straight from PostgreSQL.

The scene (conftest): alice deposits 150.00 USD and 20.00 EUR, withdraws 12.50 USD, sends
30.00 USD to bob and holds 7.00 USD for an hour; one EUR withdrawal is refused, bob is
rate-limited, an adjustment for bob waits, and one reconciliation run is recorded.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from corrections.models import AdjustmentProposal
from dashboard.rollup import EPOCH, floor_hour
from dashboard.selectors import (
    SQL_DIR,
    CurrencyPosition,
    ExpiringHold,
    Moved,
    Refused,
    WebhookFailures,
    currency_positions,
    holds_expiring,
    last_reconciliation_run,
    money_moved,
    proposals_waiting,
    refusals,
    sql,
    webhook_failures,
)
from transfers import holds
from transfers import services as ledger
from transfers.models import Hold
from transfers.reconciliation import reconciliation_run
from webhooks.dispatch import fan_out_settled
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db


def span(now=None) -> dict:
    """The instants the overview counts from, nothing rolled up (every sum from the rows)."""
    now = now or timezone.now()
    day, month = floor_hour(now - timedelta(days=1)), floor_hour(now - timedelta(days=30))
    return {"now": now, "day": day, "month": month, "rolled": EPOCH}


def test_sql_is_the_file_beside_the_selectors():
    assert sql("money_moved") == (SQL_DIR / "money_moved.sql").read_text()
    with pytest.raises(FileNotFoundError):
        sql("no_such_query")


def test_currency_positions_sum_users_holds_and_the_house(scene):
    positions = {p.currency: p for p in currency_positions(rolled=EPOCH)}
    assert positions == {
        "EUR": CurrencyPosition("EUR", 1, 2000, 0, -2000, 0, 0, 0),
        "USD": CurrencyPosition("USD", 2, 13750, 700, -13750, 0, 0, 0),
    }
    assert {p.imbalance for p in positions.values()} == {0}
    assert all(type(v) is int for p in positions.values() for v in vars(p).values() if v != p.currency)


def test_an_imbalance_is_what_misses_zero():
    assert CurrencyPosition("USD", 1, 1000, 0, -900, -50, 0, 0).imbalance == 50
    assert CurrencyPosition("USD", 1, 1000, 0, -1200, 200, 0, 0).imbalance == 0


def test_wallets_under_review_are_counted(scene):
    scene.bob_usd.status = "under_review"
    scene.bob_usd.save(update_fields=["status"])
    (usd,) = [p for p in currency_positions(rolled=EPOCH) if p.currency == "USD"]
    assert (usd.under_review, usd.inconsistent) == (1, 0)


def test_the_last_reconciliation_run_is_the_latest_started(db):
    assert last_reconciliation_run() is None
    first = reconciliation_run()
    assert last_reconciliation_run() == first
    second = reconciliation_run()
    assert last_reconciliation_run() == second != first


def test_money_moved_by_kind_and_currency_in_the_day_and_the_month(scene):
    moved = money_moved(**span())
    assert sorted(moved, key=lambda m: (m.currency, m.kind)) == [
        Moved("deposit", "EUR", 1, 2000, 1, 2000),
        Moved("deposit", "USD", 1, 15000, 1, 15000),
        Moved("transfer", "USD", 1, 3000, 1, 3000),
        Moved("withdrawal", "USD", 1, 1250, 1, 1250),
    ]


def test_money_moved_before_the_day_counts_only_in_the_month(scene):
    # Seen from two days on, the scene is in the month but no longer in the day.
    later = money_moved(**span(timezone.now() + timedelta(days=2)))
    assert {(m.kind, m.currency): (m.day_count, m.month_count) for m in later} == {
        ("deposit", "EUR"): (0, 1), ("deposit", "USD"): (0, 1),
        ("transfer", "USD"): (0, 1), ("withdrawal", "USD"): (0, 1),
    }  # fmt: skip
    assert money_moved(**span(timezone.now() + timedelta(days=40))) == []


def test_refusals_by_code_and_by_quota(scene):
    assert sorted(refusals(**span()), key=lambda r: r.action) == [
        Refused("money.failed", "insufficient_funds", 1, 1),
        Refused("ratelimit.rejected", "user", 1, 1),
    ]


def test_holds_expiring_counts_all_and_lists_the_soonest(scene):
    now = timezone.now()
    assert holds_expiring(until=now + timedelta(minutes=30), limit=5) == (0, [])
    total, shown = holds_expiring(until=now + timedelta(hours=2), limit=5)
    hold = Hold.objects.get()
    assert (total, shown) == (1, [ExpiringHold(hold.id, scene.usd.id, 700, "USD", hold.expires_at)])

    sooner = holds.hold_create(
        wallet_id=scene.usd.id, owner_id=scene.alice.id, amount=100, expires_at=now + timedelta(minutes=40)
    )
    total, shown = holds_expiring(until=now + timedelta(hours=2), limit=1)
    assert (total, [h.id for h in shown]) == (2, [sooner.id])  # counted beyond the limit, soonest first


def test_proposals_waiting_counts_all_and_lists_the_oldest(scene):
    (waiting,) = AdjustmentProposal.objects.all()
    newer = AdjustmentProposal.objects.create(
        wallet=scene.usd, amount=250, currency="USD", reason="missed refund", proposed_by=scene.staff
    )
    total, shown = proposals_waiting(limit=1)
    assert total == 2
    assert [(p.id, p.wallet_id, p.amount, p.currency, p.reason, p.proposed_by_id) for p in shown] == [
        (waiting.id, scene.bob_usd.id, -500, "USD", "duplicate payout", scene.staff.id)
    ]
    assert [p.id for p in proposals_waiting(limit=5)[1]] == [waiting.id, newer.id]


def test_webhook_failures_by_last_error_in_the_day_and_the_month(scene):
    endpoint, _ = endpoint_create(owner_id=scene.bob.id, url="https://93.184.215.14/hooks", event_types=["*"])
    for amount in (1, 2, 3, 4):
        ledger.deposit_create(wallet_id=scene.bob_usd.id, owner_id=scene.bob.id, amount=amount)
    fan_out_settled()
    deliveries = list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id"))
    now = timezone.now()
    for delivery, error, days in zip(
        deliveries[:3], ["timeout", "http_error", "http_error"], [0, 0, 3], strict=True
    ):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status="failed", attempts=30, last_error=error, finished_at=now - timedelta(days=days)
        )
    # The fourth is still pending: not a failure.

    found = webhook_failures(day=span(now)["day"], month=span(now)["month"])
    assert sorted(found, key=lambda f: f.error) == [
        WebhookFailures("http_error", 1, 2),
        WebhookFailures("timeout", 1, 1),
    ]
