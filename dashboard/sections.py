"""The Ledger overview is a list of sections, each made by one provider function.

A provider takes the request's `Window` (the instants the figures are counted from) and
returns a `Section`: figures, bar charts and tables, which dashboard/ledger_overview.html
draws without knowing what they mean. `SECTIONS` lists the providers in page order. To add
a section (webhook delivery failures, say), write one function that reads its figures
with a bounded number of indexed queries and returns a Section, and add it to SECTIONS;
dashboard/tests/test_sections.py holds every provider to the query budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from dashboard import selectors
from dashboard.charts import BarChart, bar_chart
from dashboard.rollup import floor_hour, rolled_until
from foundation.currencies import format_major
from transfers.models import ReconciliationRun, Transfer

DAY = timedelta(hours=24)
MONTH = timedelta(days=30)
EXPIRING_WITHIN = timedelta(hours=24)
LIST_LIMIT = 10

OK, BAD, WARN = "ok", "bad", "warn"  # tones: green, red, amber


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    tone: str = ""
    href: str = ""


@dataclass(frozen=True)
class Cell:
    text: str
    href: str = ""
    numeric: bool = False
    tone: str = ""


@dataclass(frozen=True)
class Table:
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    empty: str = "None."


@dataclass(frozen=True)
class Section:
    key: str  # the section's HTML id
    title: str
    figures: tuple[Figure, ...] = ()
    charts: tuple[BarChart, ...] = ()
    tables: tuple[Table, ...] = ()
    note: str = ""


@dataclass
class Window:
    """The instants one page's figures are counted from, and the reads sections share.

    The day and the month start on the hour (the hourly totals' grain, dashboard.rollup):
    the last 24 hours are 24 to 25 hours long, the last 30 days 30 days and up to an hour."""

    now: datetime = field(default_factory=timezone.now)

    @property
    def day(self) -> datetime:
        return floor_hour(self.now - DAY)

    @property
    def month(self) -> datetime:
        return floor_hour(self.now - MONTH)

    @cached_property
    def rolled(self) -> datetime:
        return rolled_until()

    @cached_property
    def positions(self) -> list[selectors.CurrencyPosition]:
        return selectors.currency_positions(rolled=self.rolled)


SectionProvider = Callable[[Window], Section]


def admin_url(name: str, *args: object, **query: object) -> str:
    url = reverse(f"admin:{name}", args=args)
    return f"{url}?{urlencode(query)}" if query else url


def when(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "-"


def number(value: int) -> str:
    return f"{value:,}"


# --- the providers -------------------------------------------------------------------------


def ledger_positions(window: Window) -> Section:
    """Per currency: user balances, held, the system and adjustment positions, and zero-sum."""
    rows, figures = [], []
    for p in window.positions:
        balanced = p.imbalance == 0
        check = Cell(
            "balanced" if balanced else f"off by {format_major(p.imbalance, p.currency)}",
            tone=OK if balanced else BAD,
        )
        rows.append(
            (
                Cell(p.currency),
                Cell(number(p.user_wallets), numeric=True),
                Cell(format_major(p.user_balance, p.currency), numeric=True),
                Cell(format_major(p.held, p.currency), numeric=True),
                Cell(format_major(p.system_position, p.currency), numeric=True),
                Cell(format_major(p.adjustment_position, p.currency), numeric=True),
                check,
            )
        )
        figures.append(Figure(f"{p.currency} sums to zero", check.text, check.tone))
    table = Table(
        "Positions by currency (user balances + system + adjustments = 0)",
        ("Currency", "User wallets", "User balances", "Held", "System wallet", "Adjustments", "Zero sum"),
        tuple(rows),
        empty="No wallets yet.",
    )
    return Section(
        "positions",
        "Ledger positions",
        figures=tuple(figures),
        tables=(table,),
        note="The system and adjustment wallets keep no row balance: their position is the sum of "
        "their entries. Every transfer sums to zero, so a currency that does not points at a user "
        "wallet whose stored balance drifted from its entries (run reconciliation).",
    )


def reconciliation(window: Window) -> Section:
    """The last reconciliation run and the wallets waiting for an operator."""
    run = selectors.last_reconciliation_run()
    under_review = sum(p.under_review for p in window.positions)
    inconsistent = sum(p.inconsistent for p in window.positions)
    figures = []
    if run is None:
        figures.append(Figure("Last run", "never", BAD))
    else:
        tone = {
            ReconciliationRun.Status.CLEAN: OK,
            ReconciliationRun.Status.RUNNING: WARN,
        }.get(run.status, BAD)
        scope = run.get_scope_display()
        if run.scope == ReconciliationRun.Scope.WALLET and run.wallet_id:
            scope = f"{scope} ({run.wallet_id})"
        elif run.scope == ReconciliationRun.Scope.SINCE:
            scope = f"{scope} {when(run.since)}"
        figures += [
            Figure(
                "Last run",
                f"#{run.pk}, {when(run.started_at)}",
                href=admin_url("transfers_reconciliationrun_change", run.pk),
            ),
            Figure("Scope", scope),
            Figure("Status", run.get_status_display(), tone),
            Figure(
                "Discrepancies",
                number(run.discrepancy_count),
                OK if run.discrepancy_count == 0 else BAD,
                admin_url("transfers_discrepancy_changelist", run__id__exact=run.pk),
            ),
        ]
    figures += [
        Figure(
            "Wallets under review",
            number(under_review),
            OK if under_review == 0 else BAD,
            admin_url("wallets_wallet_changelist", status__exact="under_review"),
        ),
        Figure(
            "Wallets inconsistent with their ledger",
            number(inconsistent),
            OK if inconsistent == 0 else BAD,
            admin_url("wallets_wallet_changelist", ledger="inconsistent"),
        ),
    ]
    return Section("reconciliation", "Reconciliation", figures=tuple(figures))


KINDS = [(kind.value, kind.label) for kind in Transfer.Kind]


def money_moved(window: Window) -> Section:
    """Money moved by kind, per currency, over the last 24 hours and 30 days."""
    moved = selectors.money_moved(now=window.now, day=window.day, month=window.month, rolled=window.rolled)
    by_currency: dict[str, dict[str, selectors.Moved]] = {}
    for row in moved:
        by_currency.setdefault(row.currency, {})[row.kind] = row
    charts, rows = [], []
    for currency, kinds in sorted(by_currency.items()):
        for span, amount_of in (("24 hours", "day_amount"), ("30 days", "month_amount")):
            points = []
            for kind, label in KINDS:
                amount = getattr(kinds[kind], amount_of) if kind in kinds else 0
                points.append((label, amount, format_major(amount, currency)))
            charts.append(bar_chart(f"{currency}, last {span}", points))
        for kind, label in KINDS:
            if kind in kinds:
                r = kinds[kind]
                rows.append(
                    (
                        Cell(currency),
                        Cell(label),
                        Cell(number(r.day_count), numeric=True),
                        Cell(format_major(r.day_amount, currency), numeric=True),
                        Cell(number(r.month_count), numeric=True),
                        Cell(format_major(r.month_amount, currency), numeric=True),
                    )
                )
    table = Table(
        "Money moved by kind",
        ("Currency", "Kind", "Count, 24 h", "Amount, 24 h", "Count, 30 d", "Amount, 30 d"),
        tuple(rows),
        empty="No money moved in the last 30 days.",
    )
    return Section("money-moved", "Money moved", charts=tuple(charts), tables=(table,))


def refusals(window: Window) -> Section:
    """Refused money requests by error code, and rate-limit refusals by quota."""
    found = selectors.refusals(now=window.now, day=window.day, month=window.month, rolled=window.rolled)
    failed = [r for r in found if r.action == selectors.AuditEvent.Action.MONEY_FAILED]
    limited = [r for r in found if r.action == selectors.AuditEvent.Action.RATE_LIMITED]
    charts = (
        bar_chart(
            "Refusals by code, last 24 hours", [(r.outcome, r.day_count, number(r.day_count)) for r in failed]
        ),
        bar_chart(
            "Refusals by code, last 30 days",
            [(r.outcome, r.month_count, number(r.month_count)) for r in failed],
        ),
    )
    audit = "audit_auditevent_changelist"
    refused = Table(
        "Refused money requests by error code",
        ("Code", "24 h", "30 d"),
        tuple(
            (
                Cell(r.outcome, href=admin_url(audit, action__exact=r.action, outcome__exact=r.outcome)),
                Cell(number(r.day_count), numeric=True),
                Cell(number(r.month_count), numeric=True),
            )
            for r in failed
        ),
        empty="No money request was refused in the last 30 days.",
    )
    throttled = Table(
        "Rate-limited clients by quota",
        ("Quota", "24 h", "30 d"),
        tuple(
            (
                Cell(r.outcome, href=admin_url(audit, action__exact=r.action, outcome__exact=r.outcome)),
                Cell(number(r.day_count), numeric=True),
                Cell(number(r.month_count), numeric=True),
            )
            for r in limited
        ),
        empty="No client was rate-limited in the last 30 days.",
    )
    figures = (
        Figure("Refused money requests, 24 h", number(sum(r.day_count for r in failed))),
        Figure("Refused money requests, 30 d", number(sum(r.month_count for r in failed))),
        Figure("Rate-limited clients, 24 h", number(sum(r.day_count for r in limited))),
        Figure("Rate-limited clients, 30 d", number(sum(r.month_count for r in limited))),
    )
    return Section(
        "refusals",
        "Refusals",
        figures=figures,
        charts=charts if failed else (),
        tables=(refused, throttled),
        note="From the audit trail: every refused money request (action money.failed, by its "
        "error code) and the first request each quota refused per client and window (action "
        "ratelimit.rejected); the metric wallet_rate_limit_rejections_total counts every one.",
    )


def holds_expiring(window: Window) -> Section:
    """Pending holds that expire within the next 24 hours."""
    total, holds = selectors.holds_expiring(until=window.now + EXPIRING_WITHIN, limit=LIST_LIMIT)
    table = Table(
        f"Pending holds expiring soonest (first {LIST_LIMIT})",
        ("Hold", "Wallet", "Amount", "Expires at"),
        tuple(
            (
                Cell(str(h.id), href=admin_url("transfers_hold_change", h.id)),
                Cell(str(h.wallet_id), href=admin_url("wallets_wallet_change", h.wallet_id)),
                Cell(format_major(h.amount, h.currency), numeric=True),
                Cell(when(h.expires_at), tone=BAD if h.expires_at <= window.now else ""),
            )
            for h in holds
        ),
        empty="No pending hold expires within 24 hours.",
    )
    figure = Figure(
        "Pending holds expiring within 24 h",
        number(total),
        WARN if total else OK,
        admin_url("transfers_hold_changelist", status__exact="pending"),
    )
    return Section("holds", "Holds expiring soon", figures=(figure,), tables=(table,))


def proposals_waiting(window: Window) -> Section:
    """Adjustments proposed and waiting for a second operator's approval."""
    total, proposals = selectors.proposals_waiting(limit=LIST_LIMIT)
    table = Table(
        f"Adjustments waiting longest (first {LIST_LIMIT})",
        ("Proposal", "Wallet", "Amount", "Reason", "Proposed at"),
        tuple(
            (
                Cell(str(p.id), href=admin_url("corrections_adjustmentproposal_change", p.id)),
                Cell(str(p.wallet_id), href=admin_url("wallets_wallet_change", p.wallet_id)),
                Cell(format_major(p.amount, p.currency), numeric=True),
                Cell(p.reason),
                Cell(when(p.created_at)),
            )
            for p in proposals
        ),
        empty="No adjustment waits for approval.",
    )
    figure = Figure(
        "Adjustments waiting for approval",
        number(total),
        WARN if total else OK,
        admin_url("corrections_adjustmentproposal_changelist", status__exact="proposed"),
    )
    return Section("adjustments", "Adjustments waiting for approval", figures=(figure,), tables=(table,))


def webhook_failures(window: Window) -> Section:
    """Webhook deliveries given up after a day of failed attempts, by their last error."""
    failed = selectors.webhook_failures(day=window.day, month=window.month)
    deliveries = "webhooks_webhookdelivery_changelist"
    day_total, month_total = sum(f.day_count for f in failed), sum(f.month_count for f in failed)
    table = Table(
        "Webhook deliveries given up, by last error",
        ("Last error", "24 h", "30 d"),
        tuple(
            (
                Cell(f.error, href=admin_url(deliveries, status__exact="failed", last_error__exact=f.error)),
                Cell(number(f.day_count), numeric=True),
                Cell(number(f.month_count), numeric=True),
            )
            for f in failed
        ),
        empty="No webhook delivery was given up in the last 30 days.",
    )
    chart = bar_chart(
        "Given up by last error, last 30 days",
        [(f.error, f.month_count, number(f.month_count)) for f in failed],
    )
    figures = (
        Figure("Deliveries given up, 24 h", number(day_total), BAD if day_total else OK,
               admin_url(deliveries, status__exact="failed")),
        Figure("Deliveries given up, 30 d", number(month_total), WARN if month_total else OK),
    )  # fmt: skip
    return Section(
        "webhooks",
        "Webhook delivery failures",
        figures=figures,
        charts=(chart,) if failed else (),
        tables=(table,),
        note="A delivery is given up after WEBHOOK_RETRY_WINDOW_SECONDS of failed attempts; the "
        "backlog and lag are the wallet_webhook_* metrics (docs/webhooks.md). Redeliver from "
        "Webhook deliveries.",
    )


SECTIONS: list[SectionProvider] = [
    ledger_positions,
    reconciliation,
    money_moved,
    refusals,
    webhook_failures,
    holds_expiring,
    proposals_waiting,
]


def build(window: Window, providers: list[SectionProvider] | None = None) -> list[Section]:
    return [provider(window) for provider in (SECTIONS if providers is None else providers)]
