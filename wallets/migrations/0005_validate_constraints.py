"""Validate the check constraints 0003 added NOT VALID.

VALIDATE CONSTRAINT scans the table under SHARE UPDATE EXCLUSIVE: reads and writes go
on. Every existing wallet satisfies them: `held` and `outgoing_today` are 0, the limits
are empty, and kinds and statuses are the old ones.
"""

from django.contrib.postgres.operations import ValidateConstraint
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0004_adjustment_wallet_unique"),
    ]

    operations = [
        ValidateConstraint(model_name="wallet", name=name)
        for name in (
            "wallet_balance_held_valid",
            "wallet_owner_matches_kind_v2",
            "wallet_limits_valid",
            "wallet_status_valid_v2",
        )
    ]
