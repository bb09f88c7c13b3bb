"""Ledger invariants enforced by the database itself, whatever the caller.

- transfers and ledger entries are append-only: UPDATE and DELETE are rejected;
- at commit (deferred constraint triggers), every new transfer has exactly two
  legs, -amount on its source and +amount on its destination, summing to zero,
  in wallets of its currency whose kinds fit the transfer kind (deposit:
  system -> user, withdrawal: user -> system, transfer: user -> user), with leg
  types that fit the kind; no leg can be added to an existing transfer;
- a user wallet's legs chain: balance_after = previous balance_after + amount,
  and the wallet's stored balance equals its latest balance_after (checked
  whenever an entry is written or a balance changes); system legs carry none.
Column-level rules (amount > 0, user balance >= 0, uniqueness) are
CheckConstraint/UniqueConstraint on the models.

The SQL is in sql/; the append-only trigger function comes from audit.0002.
"""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent / "sql"


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0002_initial"),
        ("wallets", "0001_initial"),
        # ledger_reject_change(), the append-only trigger function, is defined there.
        ("audit", "0002_append_only"),
    ]

    operations = [
        migrations.RunSQL(
            (SQL / "0003_ledger_invariants.sql").read_text(),
            (SQL / "0003_ledger_invariants_reverse.sql").read_text(),
        ),
    ]
