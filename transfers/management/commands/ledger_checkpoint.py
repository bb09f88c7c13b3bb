from __future__ import annotations

from django.core.management.base import BaseCommand

from transfers.ledger_chain import ledger_checkpoint_create


class Command(BaseCommand):
    help = (
        "Record the chain head of every user wallet that changed since its last checkpoint, "
        "with one root hash over them (logged and exported as metrics; docs/ledger.md)."
    )

    def handle(self, *args, **options) -> None:
        checkpoint = ledger_checkpoint_create()
        self.stdout.write(
            f"Ledger checkpoint #{checkpoint.id}: {checkpoint.wallet_count} wallets, "
            f"root {bytes(checkpoint.root_hash).hex()}"
        )
