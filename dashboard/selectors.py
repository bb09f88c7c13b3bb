"""The Ledger overview's reads: each figure of the dashboard from one indexed query.

The dashboard is the one reader of these aggregates, so they live here (a top app that may
read every app's tables) rather than scattered over the apps that own the nouns; each
query's SQL is in sql/ with the index it reads. Sums over time read the hourly totals
before `rolled` (dashboard.rollup) and the rows since; windows start on the hour. Sums come
back from PostgreSQL as numeric (a sum of bigints can exceed bigint) and are returned as
Python ints, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from uuid import UUID

from django.db import connection

from audit.models import AuditEvent
from transfers.models import ReconciliationRun

SQL_DIR = Path(__file__).resolve().parent / "sql"


@cache
def sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def _rows(name: str, params: dict[str, object]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql(name), params)
        return cursor.fetchall()


@dataclass(frozen=True)
class CurrencyPosition:
    currency: str
    user_wallets: int
    user_balance: int
    held: int
    system_position: int
    adjustment_position: int
    under_review: int
    inconsistent: int

    @property
    def imbalance(self) -> int:
        """What the user balances and the service's own positions miss of zero (0: balanced).

        Every transfer's legs sum to zero (PostgreSQL checks it at commit), so the entries of
        a currency sum to zero; a stored user balance that drifted from its entries shows here.
        """
        return self.user_balance + self.system_position + self.adjustment_position


def currency_positions(*, rolled: datetime) -> list[CurrencyPosition]:
    return [
        CurrencyPosition(row[0], *(int(value) for value in row[1:]))
        for row in _rows("currency_positions", {"rolled": rolled})
    ]


def last_reconciliation_run() -> ReconciliationRun | None:
    """The latest run (the primary key's order is the order runs started in)."""
    return ReconciliationRun.objects.order_by("-id").first()


@dataclass(frozen=True)
class Moved:
    kind: str
    currency: str
    day_count: int
    day_amount: int
    month_count: int
    month_amount: int


def _span(now: datetime, day: datetime, month: datetime, rolled: datetime) -> dict[str, object]:
    return {"now": now, "day": day, "month": month, "rolled": rolled, "live_from": max(rolled, month)}


def money_moved(*, now: datetime, day: datetime, month: datetime, rolled: datetime) -> list[Moved]:
    """Transfers by kind and currency since `month`, and since `day` (on the hour, day >= month)."""
    rows = _rows("money_moved", _span(now, day, month, rolled))
    return [Moved(kind, currency, *(int(v) for v in rest)) for kind, currency, *rest in rows]


@dataclass(frozen=True)
class Refused:
    action: str
    outcome: str
    day_count: int
    month_count: int


REFUSAL_ACTIONS = (AuditEvent.Action.MONEY_FAILED.value, AuditEvent.Action.RATE_LIMITED.value)


def refusals(*, now: datetime, day: datetime, month: datetime, rolled: datetime) -> list[Refused]:
    """Refused money requests by error code and rate-limit refusals by quota, since `month`
    and since `day` (on the hour), from the audit trail."""
    params = {**_span(now, day, month, rolled), "actions": list(REFUSAL_ACTIONS)}
    return [Refused(a, o, int(d), int(m)) for a, o, d, m in _rows("refusals", params)]


@dataclass(frozen=True)
class ExpiringHold:
    id: UUID
    wallet_id: UUID
    amount: int
    currency: str
    expires_at: datetime


def holds_expiring(*, until: datetime, limit: int) -> tuple[int, list[ExpiringHold]]:
    """(how many pending holds expire before `until`, the first `limit` of them)."""
    rows = _rows("holds_expiring", {"until": until, "limit": limit})
    total = int(rows[0][-1]) if rows else 0
    return total, [ExpiringHold(*row[:-1]) for row in rows]


@dataclass(frozen=True)
class WaitingProposal:
    id: UUID
    wallet_id: UUID
    amount: int
    currency: str
    reason: str
    created_at: datetime
    proposed_by_id: int


def proposals_waiting(*, limit: int) -> tuple[int, list[WaitingProposal]]:
    """(how many adjustments wait for approval, the `limit` oldest of them)."""
    rows = _rows("proposals_waiting", {"limit": limit})
    total = int(rows[0][-1]) if rows else 0
    return total, [WaitingProposal(*row[:-1]) for row in rows]


@dataclass(frozen=True)
class WebhookFailures:
    error: str  # the last attempt's error code (webhooks.models.WebhookAttempt.error)
    day_count: int
    month_count: int


def webhook_failures(*, day: datetime, month: datetime) -> list[WebhookFailures]:
    """Webhook deliveries given up (failed) since `month` and since `day`, by their last
    error: one range scan of webhook_delivery_finished_idx (status, finished_at)."""
    return [
        WebhookFailures(error, int(d), int(m))
        for error, d, m in _rows("webhook_failures", {"day": day, "month": month})
    ]
