"""The index behind a wallet's balance at an instant and its statements' opening and closing
balances (transfers.reports), built CONCURRENTLY."""

from django.db import migrations, models

from foundation.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("transfers", "0011_ledger_chain"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="ledgerentry",
            index=models.Index(
                fields=["wallet", "created_at", "id"], include=("balance_after",), name="entry_wallet_created_idx"
            ),
        ),
    ]
