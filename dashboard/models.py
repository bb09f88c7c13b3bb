"""Hourly totals behind the Ledger overview, so its figures cost the same on any ledger.

Money moved and refusals over 30 days, and the positions of the system and adjustment
wallets (the sums of all their entries), would otherwise each scan everything in their
window: a million transfers are a million rows to add up on every page view. Instead each
hour, once it is over (and SETTLE after, so every transaction stamped in it has committed),
is added up once into these tables (dashboard.rollup); a page reads them and adds only the
rows since, at most an hour and SETTLE of them, through the indexes the apps already have.

They are a cache of the ledger and the audit trail, never a source: the rows are derived,
and emptying these tables (all four) only makes the next page view add everything up again.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Rollup(models.Model):
    """How far the totals reach: every hour before `rolled_until` is in them, none after."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    rolled_until = models.DateTimeField()

    class Meta:
        db_table = "dashboard_rollup"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="dashboard_rollup_one_row")]

    def __str__(self) -> str:
        return f"rolled up until {self.rolled_until}"


class MovementHour(models.Model):
    """Transfers of one kind and currency created in one hour: how many and how much."""

    id = models.BigAutoField(primary_key=True)
    hour = models.DateTimeField()
    kind = models.CharField(max_length=10)
    currency = models.CharField(max_length=3)
    count = models.BigIntegerField()
    # Integer-valued: an hour's sum of bigints can exceed bigint.
    amount = models.DecimalField(max_digits=40, decimal_places=0)

    class Meta:
        db_table = "dashboard_movementhour"
        constraints = [
            models.UniqueConstraint(fields=["hour", "kind", "currency"], name="movementhour_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.kind} {self.currency}: {self.count}"


class RefusalHour(models.Model):
    """Audit rows of one refusal action and outcome (error code or quota) in one hour."""

    id = models.BigAutoField(primary_key=True)
    hour = models.DateTimeField()
    action = models.CharField(max_length=32)
    outcome = models.CharField(max_length=64)
    count = models.BigIntegerField()

    class Meta:
        db_table = "dashboard_refusalhour"
        constraints = [
            models.UniqueConstraint(fields=["hour", "action", "outcome"], name="refusalhour_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.action} {self.outcome}: {self.count}"


class HousePosition(models.Model):
    """The sum of a system or adjustment wallet's entries stamped before Rollup.rolled_until.

    No foreign key: a derived total, kept apart from the wallets' migrations."""

    wallet_id = models.UUIDField(primary_key=True)
    amount = models.DecimalField(max_digits=40, decimal_places=0)

    class Meta:
        db_table = "dashboard_houseposition"

    def __str__(self) -> str:
        return f"{self.wallet_id}: {self.amount}"
