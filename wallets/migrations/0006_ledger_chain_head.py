"""The head of each wallet's hash chain (transfers.ledger_chain): `head_hash` and
`entry_count`, both nullable columns added without a default, so PostgreSQL only
updates its catalogue (no rewrite, no scan) and the running release ignores them.

Existing wallets keep NULL (not linked yet: the new code leaves their entries unhashed
until `manage.py ledger_chain_backfill` links them); wallets created from now on start
at 0 (the model's default, which Django sets on insert).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0005_validate_constraints"),
    ]

    operations = [
        migrations.AddField(
            model_name="wallet",
            name="head_hash",
            field=models.BinaryField(blank=True, editable=False, null=True),
        ),
        migrations.SeparateDatabaseAndState(
            # No default in the database: existing rows stay NULL (not linked).
            database_operations=[
                migrations.AddField(
                    model_name="wallet",
                    name="entry_count",
                    field=models.BigIntegerField(blank=True, editable=False, null=True),
                ),
            ],
            state_operations=[
                migrations.AddField(
                    model_name="wallet",
                    name="entry_count",
                    field=models.BigIntegerField(blank=True, default=0, editable=False, null=True),
                ),
            ],
        ),
    ]
