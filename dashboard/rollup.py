"""Adding up finished hours into the dashboard's totals (dashboard.models), once each.

`rollup(now=...)` adds up every hour that ended at least SETTLE before `now` and is not in
the totals yet: the transfers, the refusal audit rows and the system and adjustment
wallets' entries of those hours, then moves Rollup.rolled_until to the end of the last one.
It goes a day of the ledger at a time, each day in one transaction, from the first
transfer's hour on the first call. A page view of the overview calls it first with a time
budget (BUDGET_SECONDS), so the totals are never more than an hour and SETTLE behind and no
scheduler is needed; a view that runs out of budget leaves the rest to the next view, and
reads the rows after the mark meanwhile (correct, only slower). On a large existing ledger,
`manage.py dashboard_rollup` adds up its whole history at once, with no budget. Two at
once: one adds up (a transaction-level advisory lock), the other keeps the mark it found.

SETTLE: a row is stamped (created_at) before its transaction commits. An hour is added up
only once every transaction stamped in it has committed; a money transaction holds its
locks for milliseconds and waits for a lock at most DB_LOCK_TIMEOUT_MS, far below SETTLE.
Rows inserted later with an older stamp (a bulk load, an import) are not in the totals:
empty the dashboard_* tables to add everything up again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from dashboard.models import Rollup
from dashboard.selectors import REFUSAL_ACTIONS, sql

SETTLE = timedelta(minutes=10)
# Hourly totals are kept a little longer than the longest window the page shows (30 days).
KEEP = timedelta(days=32)
# How much of the ledger's time one transaction adds up, and how long a page view may spend.
STEP = timedelta(days=1)
BUDGET_SECONDS = 2.0
# pg_try_advisory_xact_lock's key: "dash" in ASCII.
LOCK_KEY = 0x64617368
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rolled_until() -> datetime:
    """Every hour before this is in the totals (EPOCH: none is)."""
    return Rollup.objects.values_list("rolled_until", flat=True).first() or EPOCH


def rollup(*, now: datetime, budget: float | None = BUDGET_SECONDS) -> datetime:
    """Add up the finished hours not in the totals yet, a day at a time, until done or the
    budget (seconds; None: no limit) is spent; the mark after (see the module docstring)."""
    target = floor_hour(now - SETTLE)
    current = rolled_until()
    if current >= target:
        return current
    # The first time, from the history's start (a ledger with none yet: one empty step).
    start = _first_hour(target) if current == EPOCH else current
    deadline = None if budget is None else time.monotonic() + budget
    while True:
        reached = _step(start, min(target, start + STEP), target)
        if reached is None:
            return current  # another view is adding up
        current = start = reached
        if current >= target or (deadline is not None and time.monotonic() > deadline):
            return current


def _first_hour(target: datetime) -> datetime:
    """Where the history starts: the first transfer's hour (entries are stamped with it), or
    `target` for a ledger with none before it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(created_at) FROM transfers_transfer")  # transfer_created_idx
        first = cursor.fetchone()[0]
    return min(floor_hour(first), target) if first is not None else target


def _step(start: datetime, end: datetime, target: datetime) -> datetime | None:
    """Add up [start, end) in one transaction, under the lock; the mark after, or None if
    another connection holds the lock. A first step also takes everything before `start`."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
        if not cursor.fetchone()[0]:
            return None
        current = rolled_until()
        if current > start:
            return current  # added up meanwhile: go on from there
        recent = max(current, floor_hour(target - KEEP))
        if recent < end:
            cursor.execute(sql("rollup_movements"), {"from": recent, "to": end})
            params = {"from": recent, "to": end, "actions": list(REFUSAL_ACTIONS)}
            cursor.execute(sql("rollup_refusals"), params)
        cursor.execute(sql("rollup_positions"), {"from": current, "to": end})
        cursor.execute("DELETE FROM dashboard_movementhour WHERE hour < %s", [target - KEEP])
        cursor.execute("DELETE FROM dashboard_refusalhour WHERE hour < %s", [target - KEEP])
        Rollup.objects.update_or_create(id=1, defaults={"rolled_until": end})
    return end
