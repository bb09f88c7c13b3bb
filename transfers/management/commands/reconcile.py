from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from django.core.management.base import BaseCommand, CommandError

from transfers.models import ReconciliationRun
from transfers.reconciliation import reconciliation_run
from wallets.models import Wallet


def _since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since must be an ISO 8601 date or time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _wallet(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise CommandError(f"--wallet must be a wallet id (UUID), got {value!r}") from None


class Command(BaseCommand):
    help = "Prove stored balances against the ledger. Exits 1 if anything is wrong."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wallet", type=_wallet, help="Check only this wallet.")
        parser.add_argument("--since", type=_since, help="Only wallets changed / transfers made since then.")
        parser.add_argument(
            "--incremental", action="store_true", help="Only what changed since the previous run."
        )
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, **options) -> None:
        run = reconciliation_run(
            wallet_id=options["wallet"],
            since=options["since"],
            incremental=options["incremental"],
            batch_size=options["batch_size"],
        )
        self.stdout.write(
            f"Reconciliation run #{run.id} ({run.scope}): {run.wallets_checked} wallets, "
            f"{run.transfers_checked} transfers, {run.entries_checked} entries checked; "
            f"{run.discrepancy_count} discrepancies; status {run.status}."
        )
        for d in run.discrepancies.order_by("id")[:50]:
            target = d.wallet_id or d.transfer_id or d.currency
            self.stdout.write(f"  {d.kind}: {target} expected {d.expected} actual {d.actual} ({d.detail})")
        if run.discrepancy_count > 50:
            self.stdout.write(f"  ... and {run.discrepancy_count - 50} more (see the admin)")
        under_review = Wallet.objects.filter(
            pk__in=run.discrepancies.filter(wallet__isnull=False).values("wallet_id"),
            status=Wallet.Status.UNDER_REVIEW,
        ).order_by("pk")
        for wallet_id in under_review.values_list("pk", flat=True)[:50]:
            self.stdout.write(
                f"  wallet {wallet_id} is under review (docs/operations.md, A wallet under review)"
            )
        if run.status != ReconciliationRun.Status.CLEAN:
            raise SystemExit(1)
