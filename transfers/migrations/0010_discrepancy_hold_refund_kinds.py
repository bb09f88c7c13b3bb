"""Reconciliation reports holds and refunds: new Discrepancy kinds. Only the field's
choices change (Django state); PostgreSQL sees no statement."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('transfers', '0009_validate_constraints'),
    ]

    operations = [
        migrations.AlterField(
            model_name='discrepancy',
            name='kind',
            field=models.CharField(choices=[('balance_mismatch', 'Stored balance != sum of entries'), ('running_balance', 'Entry balance_after != running sum'), ('unbalanced_transfer', 'Transfer legs do not sum to zero / not two legs'), ('currency_imbalance', 'Entries of a currency do not sum to zero'), ('system_balance', 'System or adjustment wallet row balance is not zero'), ('held_mismatch', 'Stored held != sum of pending holds'), ('hold_capture_mismatch', 'Captured hold does not match its capture transfer'), ('refunds_exceed_original', 'Refunds return more than their original moved'), ('refund_misdirected', 'Refund does not go back the way its original came')], max_length=24),
        ),
    ]
