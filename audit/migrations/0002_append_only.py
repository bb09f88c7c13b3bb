"""The audit trail is append-only: PostgreSQL rejects UPDATE and DELETE on it.

Also defines ledger_reject_change(), the trigger function every append-only table uses
(transfers.0003 depends on this migration for it). The SQL is in sql/.
"""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent / "sql"


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            (SQL / "0002_append_only.sql").read_text(),
            (SQL / "0002_append_only_reverse.sql").read_text(),
        ),
    ]
