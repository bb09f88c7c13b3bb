"""The dispatcher's cursor (one row, starting after the events written before webhooks
existed: no endpoint could want them) and the database's rules for deliveries:

- attempts are append-only (ledger_reject_change, audit.0002);
- a delivery's attempt count only grows, and a finished delivery (succeeded, failed,
  cancelled) changes only by being made pending again (redelivery);
- a delivery is for an event of its endpoint's owner, about the wallet it names (no
  receiver is ever sent someone else's event, whatever the code above does).

The SQL is in sql/.
"""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent / "sql"


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("events", "0002_append_only"),
        ("audit", "0002_append_only"),  # ledger_reject_change()
    ]

    operations = [
        migrations.RunSQL(
            (SQL / "0002_cursor_and_rules.sql").read_text(),
            (SQL / "0002_cursor_and_rules_reverse.sql").read_text(),
        ),
    ]
