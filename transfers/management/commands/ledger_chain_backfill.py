from __future__ import annotations

from django.core.management.base import BaseCommand

from transfers.ledger_chain import ledger_chain_backfill


class Command(BaseCommand):
    help = (
        "Link the wallets from before the hash chain: hash their entries in id order and set "
        "their head, one wallet per short transaction under its row lock. Run as the owner role "
        "once every process runs the release that chains (docs/ledger.md)."
    )

    def handle(self, *args, **options) -> None:
        linked = ledger_chain_backfill()
        self.stdout.write(f"Linked {linked} wallets.")
