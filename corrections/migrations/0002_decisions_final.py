"""Decisions are final: PostgreSQL refuses any change to an approved or rejected
proposal, any change of what was proposed, and deleting a proposal. The SQL is in sql/."""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent / "sql"


class Migration(migrations.Migration):
    dependencies = [
        ("corrections", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            (SQL / "0002_decisions_final.sql").read_text(),
            (SQL / "0002_decisions_final_reverse.sql").read_text(),
        ),
    ]
