"""Add up every finished hour not in the Ledger overview's totals yet, with no time budget.

A page view adds up at most BUDGET_SECONDS of hours; on a large ledger that has never been
added up (the first deploy of the overview), run this once instead (docs/operations.md).
"""

from django.core.management.base import BaseCommand
from django.utils import timezone

from dashboard.rollup import rolled_until, rollup


class Command(BaseCommand):
    help = "Add up the Ledger overview's hourly totals up to the last settled hour."

    def handle(self, *args, **options) -> None:
        before = rolled_until()
        after = rollup(now=timezone.now(), budget=None)
        self.stdout.write(f"hourly totals: rolled up until {after.isoformat()} (was {before.isoformat()})")
