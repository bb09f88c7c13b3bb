"""Adding up finished hours into the dashboard's totals (dashboard.models), once each.

`rollup(now=...)` adds every hour that ended at least SETTLE before `now` and is not in the
totals yet, in one transaction: the transfers, the refusal audit rows and the system and
adjustment wallets' entries of those hours, then moves Rollup.rolled_until to the end of the
last one. A page view of the overview calls it first, so the totals are never more than an
hour and SETTLE behind and no scheduler is needed; the work is the hours since the last
view (the first view on a ledger adds up its whole history of house-wallet entries once).
Two views at once: one adds up (a transaction-level advisory lock), the other reads with
the mark as it was, which is as correct, only slower.

SETTLE: a row is stamped (created_at) before its transaction commits. An hour is added up
only once every transaction stamped in it has committed; a money transaction holds its
locks for milliseconds and waits for a lock at most DB_LOCK_TIMEOUT_MS, far below SETTLE.
Rows inserted later with an older stamp (a bulk load, an import) are not in the totals:
empty the dashboard_* tables to add everything up again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from dashboard.models import Rollup
from dashboard.selectors import REFUSAL_ACTIONS, sql

SETTLE = timedelta(minutes=10)
# Hourly totals are kept a little longer than the longest window the page shows (30 days).
KEEP = timedelta(days=32)
# pg_try_advisory_xact_lock's key: "dash" in ASCII.
LOCK_KEY = 0x64617368
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rolled_until() -> datetime:
    """Every hour before this is in the totals (EPOCH: none is)."""
    return Rollup.objects.values_list("rolled_until", flat=True).first() or EPOCH


def rollup(*, now: datetime) -> datetime:
    """Add up the finished hours not in the totals yet; the mark after (see the module docstring)."""
    target = floor_hour(now - SETTLE)
    current = rolled_until()
    if current >= target:
        return current
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
        if not cursor.fetchone()[0]:
            return current  # another view is adding up
        current = rolled_until()
        if current >= target:
            return current
        recent = max(current, floor_hour(target - KEEP))
        cursor.execute(sql("rollup_movements"), {"from": recent, "to": target})
        cursor.execute(
            sql("rollup_refusals"), {"from": recent, "to": target, "actions": list(REFUSAL_ACTIONS)}
        )
        cursor.execute(sql("rollup_positions"), {"from": current, "to": target})
        cursor.execute("DELETE FROM dashboard_movementhour WHERE hour < %s", [target - KEEP])
        cursor.execute("DELETE FROM dashboard_refusalhour WHERE hour < %s", [target - KEEP])
        Rollup.objects.update_or_create(id=1, defaults={"rolled_until": target})
    return target
