"""Holds, refunds and adjustments: the Hold table, `Transfer.refund_of`, the new kinds and
entry types, and the triggers that hold them to the ledger (SQL in sql/0007_*.sql).

Safe on a live database (docs/migrations.md):
- transfers_hold is new; its indexes and constraints are built on an empty table;
- `refund_of` is a new nullable column; its foreign key is added NOT VALID (no scan of
  transfers_transfer under the lock) and validated by 0009; its index is built
  CONCURRENTLY by 0008;
- the kind and entry-type checks are replaced by wider ones added NOT VALID and
  validated by 0009; every existing row already satisfies them;
- the check functions are replaced (no table lock) and the new triggers created (SHARE
  ROW EXCLUSIVE on their table for an instant, no scan).
"""

from pathlib import Path

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.conf import settings
from django.contrib.postgres.operations import AddConstraintNotValid
from django.db import migrations, models

SQL = Path(__file__).resolve().parent / "sql"
REFUND_OF_FK = "transfer_refund_of_fk"


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0006_verbose_names"),
        ("wallets", "0005_validate_constraints"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Hold",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("amount", models.BigIntegerField()),
                ("captured_amount", models.BigIntegerField(default=0)),
                ("currency", models.CharField(max_length=3)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("captured", "Captured"),
                            ("voided", "Voided"),
                            ("expired", "Expired"),
                        ],
                        default="pending",
                        max_length=8,
                    ),
                ),
                ("expires_at", models.DateTimeField()),
                ("reference", models.CharField(blank=True, max_length=128, null=True)),
                ("description", models.CharField(blank=True, default="", max_length=255)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "capture_transfer",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="captured_hold",
                        to="transfers.transfer",
                    ),
                ),
                (
                    "created_by",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "wallet",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="holds",
                        to="wallets.wallet",
                    ),
                ),
            ],
            options={
                "db_table": "transfers_hold",
                "indexes": [
                    models.Index(fields=["wallet", "-created_at", "-id"], name="hold_wallet_created_idx"),
                    models.Index(
                        condition=models.Q(("status", "pending")), fields=["wallet"], name="hold_wallet_pending_idx"
                    ),
                    models.Index(
                        condition=models.Q(("status", "pending")), fields=["expires_at"], name="hold_pending_expiry_idx"
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("amount__gt", 0)), name="hold_amount_positive"),
                    models.CheckConstraint(
                        condition=models.Q(("status__in", ["pending", "captured", "voided", "expired"])),
                        name="hold_status_valid",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("capture_transfer__isnull", True),
                                ("captured_amount", 0),
                                ("finished_at__isnull", True),
                                ("status", "pending"),
                            ),
                            models.Q(
                                ("capture_transfer__isnull", False),
                                ("captured_amount__gt", 0),
                                ("captured_amount__lte", models.F("amount")),
                                ("finished_at__isnull", False),
                                ("status", "captured"),
                            ),
                            models.Q(
                                ("capture_transfer__isnull", True),
                                ("captured_amount", 0),
                                ("finished_at__isnull", False),
                                ("status__in", ["voided", "expired"]),
                            ),
                            _connector="OR",
                        ),
                        name="hold_status_fields_valid",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("currency__regex", "^[A-Z]{3}$")), name="hold_currency_iso_format"
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("reference__isnull", False)),
                        fields=("wallet", "reference"),
                        name="hold_reference_unique_per_wallet",
                    ),
                ],
            },
        ),
        migrations.RemoveConstraint(model_name="ledgerentry", name="entry_type_valid"),
        migrations.RemoveConstraint(model_name="transfer", name="transfer_kind_valid"),
        # The column, then its foreign key NOT VALID: Django's AddField would add the key
        # validated, scanning transfers_transfer under the lock.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="transfer",
                    name="refund_of",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="refunds",
                        to="transfers.transfer",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    [
                        "ALTER TABLE transfers_transfer ADD COLUMN refund_of_id uuid NULL",
                        f"ALTER TABLE transfers_transfer ADD CONSTRAINT {REFUND_OF_FK} FOREIGN KEY (refund_of_id)"
                        " REFERENCES transfers_transfer (id) DEFERRABLE INITIALLY DEFERRED NOT VALID",
                    ],
                    [
                        f"ALTER TABLE transfers_transfer DROP CONSTRAINT {REFUND_OF_FK}",
                        "ALTER TABLE transfers_transfer DROP COLUMN refund_of_id",
                    ],
                ),
            ],
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="type",
            field=models.CharField(
                choices=[
                    ("deposit", "Deposit"),
                    ("withdrawal", "Withdrawal"),
                    ("transfer_in", "Transfer in"),
                    ("transfer_out", "Transfer out"),
                    ("refund_in", "Refund in"),
                    ("refund_out", "Refund out"),
                    ("adjustment", "Adjustment"),
                ],
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="transfer",
            name="kind",
            field=models.CharField(
                choices=[
                    ("deposit", "Deposit"),
                    ("withdrawal", "Withdrawal"),
                    ("transfer", "Transfer"),
                    ("refund", "Refund"),
                    ("adjustment", "Adjustment"),
                ],
                max_length=10,
            ),
        ),
        AddConstraintNotValid(
            model_name="ledgerentry",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "type__in",
                        [
                            "deposit",
                            "withdrawal",
                            "transfer_in",
                            "transfer_out",
                            "refund_in",
                            "refund_out",
                            "adjustment",
                        ],
                    )
                ),
                name="entry_type_valid_v2",
            ),
        ),
        AddConstraintNotValid(
            model_name="ledgerentry",
            constraint=models.CheckConstraint(
                condition=models.Q(models.Q(("type", "refund_in"), _negated=True), ("amount__gt", 0), _connector="OR"),
                name="entry_refund_in_positive",
            ),
        ),
        AddConstraintNotValid(
            model_name="ledgerentry",
            constraint=models.CheckConstraint(
                condition=models.Q(models.Q(("type", "refund_out"), _negated=True), ("amount__lt", 0), _connector="OR"),
                name="entry_refund_out_negative",
            ),
        ),
        AddConstraintNotValid(
            model_name="transfer",
            constraint=models.CheckConstraint(
                condition=models.Q(("kind__in", ["deposit", "withdrawal", "transfer", "refund", "adjustment"])),
                name="transfer_kind_valid_v2",
            ),
        ),
        AddConstraintNotValid(
            model_name="transfer",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "refund"), ("refund_of__isnull", False)),
                    models.Q(models.Q(("kind", "refund"), _negated=True), ("refund_of__isnull", True)),
                    _connector="OR",
                ),
                name="transfer_refund_of_only_refunds",
            ),
        ),
        migrations.RunSQL(
            (SQL / "0007_holds_refunds.sql").read_text(),
            (SQL / "0007_holds_refunds_reverse.sql").read_text(),
        ),
    ]
