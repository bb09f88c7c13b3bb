"""The ledger's check functions name the trigger and the wallet or transfer in their errors.

Same checks as transfers.0003; each error raised now carries CONSTRAINT (the
constraint trigger's name) and DETAIL (`wallet_id=<uuid>` / `transfer_id=<uuid>`),
which the money path reads to answer `ledger_inconsistent` instead of failing
(transfers/ledger_errors.py `ledger_violation`). The SQL lives next to this file in sql/.
"""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent / "sql"


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0004_reconciliation"),
    ]

    operations = [
        migrations.RunSQL(
            (SQL / "0005_ledger_errors.sql").read_text(),
            (SQL / "0005_ledger_errors_reverse.sql").read_text(),
        ),
    ]
