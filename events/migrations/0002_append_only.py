"""Events are append-only: PostgreSQL rejects UPDATE and DELETE on them. The SQL is in sql/."""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent / "sql"


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
        ("audit", "0002_append_only"),  # ledger_reject_change()
    ]

    operations = [
        migrations.RunSQL(
            (SQL / "0002_append_only.sql").read_text(),
            (SQL / "0002_append_only_reverse.sql").read_text(),
        ),
    ]
