"""One adjustment wallet per currency: a partial unique index built CONCURRENTLY.

No adjustment wallet exists before this release (the kind is new in 0003), so no row
can violate it, and the code before this release never creates one.
"""

from django.db import migrations, models

from foundation.migration_ops import AddUniqueConstraintConcurrently


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("wallets", "0003_holds_limits_review"),
    ]

    operations = [
        AddUniqueConstraintConcurrently(
            model_name="wallet",
            constraint=models.UniqueConstraint(
                condition=models.Q(("kind", "adjustment")),
                fields=("currency",),
                name="wallet_one_adjustment_per_currency",
            ),
        ),
    ]
