"""Validate what 0007 added NOT VALID: the kind and entry-type checks and the foreign key
of `refund_of`. Each scan takes SHARE UPDATE EXCLUSIVE (the key's also ROW SHARE on the
referenced table): reads and writes go on. Existing rows satisfy them: they are of the
old kinds and types, and no transfer is a refund yet.
"""

from django.contrib.postgres.operations import ValidateConstraint
from django.db import migrations

REFUND_OF_FK = "transfer_refund_of_fk"


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0008_refund_of_index"),
    ]

    operations = [
        *(
            ValidateConstraint(model_name=model, name=name)
            for model, name in (
                ("ledgerentry", "entry_type_valid_v2"),
                ("ledgerentry", "entry_refund_in_positive"),
                ("ledgerentry", "entry_refund_out_negative"),
                ("transfer", "transfer_kind_valid_v2"),
                ("transfer", "transfer_refund_of_only_refunds"),
            )
        ),
        migrations.RunSQL(
            f"ALTER TABLE transfers_transfer VALIDATE CONSTRAINT {REFUND_OF_FK}",
            migrations.RunSQL.noop,
        ),
    ]
