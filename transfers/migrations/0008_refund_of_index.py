"""The index behind a transfer's refunds (their sum, their list), built CONCURRENTLY."""

from django.db import migrations, models

from foundation.migration_ops import AddIndexConcurrently


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("transfers", "0007_holds_refunds"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="transfer",
            index=models.Index(
                condition=models.Q(("refund_of__isnull", False)), fields=["refund_of"], name="transfer_refund_of_idx"
            ),
        ),
    ]
