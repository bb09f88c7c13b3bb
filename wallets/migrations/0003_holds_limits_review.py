"""Wallets learn holds (`held`), operators' limits, the adjustment kind and the
`under_review` status.

Safe on a live table (docs/migrations.md):
- the new columns are nullable or have a database default (`db_default`), so the code
  still running inserts wallets without naming them;
- kind and status widen from varchar(8) to varchar(12) / varchar(16): PostgreSQL only
  changes the catalogue (no rewrite, no scan) for a longer varchar;
- the replaced check constraints are added NOT VALID (new and updated rows are checked
  from now on, no scan under the lock) and validated by 0005, which only takes SHARE
  UPDATE EXCLUSIVE; the one-adjustment-wallet-per-currency index is built CONCURRENTLY
  by 0004.
"""

from django.contrib.postgres.operations import AddConstraintNotValid
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0002_inconsistent_since"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="wallet", name="wallet_balance_valid"),
        migrations.RemoveConstraint(model_name="wallet", name="wallet_owner_matches_kind"),
        migrations.RemoveConstraint(model_name="wallet", name="wallet_status_valid"),
        migrations.AddField(
            model_name="wallet",
            name="held",
            field=models.BigIntegerField(db_default=0, default=0, editable=False),
        ),
        migrations.AddField(
            model_name="wallet",
            name="max_outgoing_amount",
            field=models.BigIntegerField(blank=True, help_text="Largest single outgoing movement.", null=True),
        ),
        migrations.AddField(
            model_name="wallet",
            name="max_outgoing_per_day",
            field=models.BigIntegerField(
                blank=True, help_text="Largest total of outgoing movements in one UTC day.", null=True
            ),
        ),
        migrations.AddField(
            model_name="wallet",
            name="outgoing_day",
            field=models.DateField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="wallet",
            name="outgoing_today",
            field=models.BigIntegerField(db_default=0, default=0, editable=False),
        ),
        migrations.AlterField(
            model_name="wallet",
            name="kind",
            field=models.CharField(
                choices=[("user", "User"), ("system", "System"), ("adjustment", "Adjustment")],
                default="user",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="wallet",
            name="status",
            field=models.CharField(
                choices=[
                    ("active", "Active"),
                    ("frozen", "Frozen"),
                    ("closed", "Closed"),
                    ("under_review", "Under review"),
                ],
                default="active",
                max_length=16,
            ),
        ),
        AddConstraintNotValid(
            model_name="wallet",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("kind", "user"), ("balance__gte", 0), ("held__gte", 0), ("held__lte", models.F("balance"))
                    ),
                    models.Q(("kind__in", ["system", "adjustment"]), ("balance", 0), ("held", 0)),
                    _connector="OR",
                ),
                name="wallet_balance_held_valid",
            ),
        ),
        AddConstraintNotValid(
            model_name="wallet",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "user"), ("owner__isnull", False)),
                    models.Q(("kind__in", ["system", "adjustment"]), ("owner__isnull", True)),
                    _connector="OR",
                ),
                name="wallet_owner_matches_kind_v2",
            ),
        ),
        AddConstraintNotValid(
            model_name="wallet",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("max_outgoing_amount__isnull", True), ("max_outgoing_amount__gt", 0), _connector="OR"),
                    models.Q(
                        ("max_outgoing_per_day__isnull", True), ("max_outgoing_per_day__gt", 0), _connector="OR"
                    ),
                    ("outgoing_today__gte", 0),
                ),
                name="wallet_limits_valid",
            ),
        ),
        AddConstraintNotValid(
            model_name="wallet",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["active", "frozen", "closed", "under_review"])),
                name="wallet_status_valid_v2",
            ),
        ),
    ]
