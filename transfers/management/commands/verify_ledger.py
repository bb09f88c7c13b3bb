from __future__ import annotations

from uuid import UUID

from django.core.management.base import BaseCommand, CommandError

from transfers.ledger_chain import ledger_verify
from transfers.models import LedgerCheckpoint


def _root(value: str) -> tuple[int, bytes]:
    checkpoint, _, root = value.partition(":")
    try:
        parsed = (int(checkpoint), bytes.fromhex(root))
    except ValueError:
        parsed = None
    if parsed is None or len(parsed[1]) != 32:
        raise CommandError(f"--root must be CHECKPOINT:HEX (a 64-digit SHA-256), got {value!r}")
    return parsed


def _wallet(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise CommandError(f"--wallet must be a wallet id (UUID), got {value!r}") from None


class Command(BaseCommand):
    help = (
        "Recompute the ledger's hash chains, wallet heads, checkpoints and checkpoint roots "
        "(docs/ledger.md). Exits 1 naming the first entry that does not match on each wallet."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--wallet", type=_wallet, action="append", help="Only this wallet (repeatable).")
        parser.add_argument(
            "--since",
            type=int,
            metavar="CHECKPOINT",
            help="Trust each wallet's head as of this checkpoint id; check what came after it.",
        )
        parser.add_argument(
            "--root",
            type=_root,
            action="append",
            metavar="CHECKPOINT:HEX",
            help="A checkpoint's root as logged or exported (kept outside the database); repeatable.",
        )

    def handle(self, *args, **options) -> None:
        since = options["since"]
        if since is not None and not LedgerCheckpoint.objects.filter(id=since).exists():
            raise CommandError(f"No ledger checkpoint {since}.")
        result = ledger_verify(
            wallet_ids=options["wallet"], since_checkpoint_id=since, known_roots=dict(options["root"] or [])
        )
        self.stdout.write(
            f"Ledger verification: {result.wallets_checked} wallets, {result.entries_checked} entries, "
            f"{result.checkpoints_checked} checkpoints checked; {result.unlinked_wallets} wallets not "
            f"linked yet; {len(result.breaks)} breaks."
        )
        for item in result.breaks:
            self.stdout.write(f"  BROKEN: {item.detail}")
        if result.breaks:
            raise SystemExit(1)
