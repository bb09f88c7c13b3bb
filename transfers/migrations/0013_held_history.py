"""The history of each wallet's held amount (transfers.models.HeldChange), so the held
amount at an instant is one index seek (transfers.reports.balance_at). SQL in
sql/0013_*.sql.

Safe on a live database (docs/migrations.md):
- transfers_heldchange is new; its key, foreign key and index are built on an empty table;
- the trigger that records each change of `held` and the history's append-only guard are
  created (SHARE ROW EXCLUSIVE on wallets_wallet and transfers_heldchange, no scan of
  either); the lock on wallets_wallet is held until commit, so hold changes wait while the
  history of existing wallets is filled from transfers_hold (one scan of the holds).
"""

from pathlib import Path

import django.db.models.deletion
from django.db import migrations, models

SQL = Path(__file__).resolve().parent / "sql"


class Migration(migrations.Migration):

    dependencies = [
        ('transfers', '0012_entry_wallet_created_index'),
        ('wallets', '0006_ledger_chain_head'),
    ]

    operations = [
        migrations.CreateModel(
            name='HeldChange',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('changed_at', models.DateTimeField(editable=False)),
                ('held_after', models.BigIntegerField(editable=False)),
                ('wallet', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallets.wallet')),
            ],
            options={
                'db_table': 'transfers_heldchange',
                'indexes': [models.Index(fields=['wallet', 'changed_at', 'id', 'held_after'], name='heldchange_wallet_at_idx')],
            },
        ),
        migrations.RunSQL(
            (SQL / "0013_held_history.sql").read_text(),
            (SQL / "0013_held_history_reverse.sql").read_text(),
        ),
    ]
