"""The tamper-evident ledger (transfers.ledger_chain, docs/ledger.md): `entry_hash` on
ledger entries, the checkpoint tables, and the triggers that guard them (SQL in
sql/0011_*.sql).

Safe on a live database (docs/migrations.md):
- `entry_hash` is a nullable column without a default: catalogue only; existing entries
  keep NULL until `manage.py ledger_chain_backfill` links their wallets;
- the checkpoint tables are new; their keys and indexes are built on empty tables;
- the entry guard replaces the append-only trigger of transfers_ledgerentry with one that
  also lets a missing entry_hash be set once (what the backfill does); the wallet guard
  refuses a chain head that goes back; the checkpoint tables are append-only. Each
  CREATE/DROP TRIGGER takes SHARE ROW EXCLUSIVE on its table for an instant, no scan.
"""

from pathlib import Path

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

SQL = Path(__file__).resolve().parent / "sql"


class Migration(migrations.Migration):

    dependencies = [
        ('transfers', '0010_discrepancy_hold_refund_kinds'),
        ('wallets', '0006_ledger_chain_head'),
    ]

    operations = [
        migrations.AddField(
            model_name='ledgerentry',
            name='entry_hash',
            field=models.BinaryField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name="discrepancy",
            name="kind",
            field=models.CharField(
                choices=[
                    ("balance_mismatch", "Stored balance != sum of entries"),
                    ("running_balance", "Entry balance_after != running sum"),
                    ("unbalanced_transfer", "Transfer legs do not sum to zero / not two legs"),
                    ("currency_imbalance", "Entries of a currency do not sum to zero"),
                    ("system_balance", "System or adjustment wallet row balance is not zero"),
                    ("held_mismatch", "Stored held != sum of pending holds"),
                    ("hold_capture_mismatch", "Captured hold does not match its capture transfer"),
                    ("refunds_exceed_original", "Refunds return more than their original moved"),
                    ("refund_misdirected", "Refund does not go back the way its original came"),
                    ("chain_broken", "Entry or head hash does not match the recomputed chain"),
                ],
                max_length=24,
            ),
        ),
        migrations.CreateModel(
            name='LedgerCheckpoint',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('wallet_count', models.PositiveIntegerField(default=0)),
                ('root_hash', models.BinaryField(editable=False)),
                ('previous', models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='transfers.ledgercheckpoint')),
            ],
            options={
                'db_table': 'transfers_ledgercheckpoint',
            },
        ),
        migrations.CreateModel(
            name='LedgerCheckpointWallet',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('entry_count', models.BigIntegerField()),
                ('head_hash', models.BinaryField(editable=False)),
                ('last_entry_id', models.BigIntegerField()),
                ('checkpoint', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='wallets', to='transfers.ledgercheckpoint')),
                ('wallet', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='wallets.wallet')),
            ],
            options={
                'db_table': 'transfers_ledgercheckpointwallet',
            },
        ),
        migrations.AddConstraint(
            model_name='ledgercheckpoint',
            constraint=models.UniqueConstraint(fields=('previous',), name='checkpoint_one_successor', nulls_distinct=False),
        ),
        migrations.AddIndex(
            model_name='ledgercheckpointwallet',
            index=models.Index(fields=['wallet', 'entry_count'], name='checkpoint_wallet_count_idx'),
        ),
        migrations.AddConstraint(
            model_name='ledgercheckpointwallet',
            constraint=models.UniqueConstraint(fields=('checkpoint', 'wallet'), name='checkpoint_wallet_unique'),
        ),
        migrations.RunSQL(
            (SQL / "0011_ledger_chain.sql").read_text(),
            (SQL / "0011_ledger_chain_reverse.sql").read_text(),
        ),
    ]
