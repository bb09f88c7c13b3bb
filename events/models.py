"""The outbox: what happened to a wallet, for its owner to read (GET /api/v1/events) and,
later, to be delivered to their webhook endpoints.

An event is written in the same transaction as the change it describes, by the same
statement on the money path (transfers.statements), so there is never an event without
its change nor a change without its event. Append-only (migration 0002).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Event(models.Model):
    """One change to one wallet, as its owner sees it.

    A movement between two users' wallets (a transfer, a refund, a capture paid to another
    wallet) writes one event per user wallet it changes, each owned by that wallet's
    owner and naming that wallet: each party reads only events about their own wallets.

    `sequence` orders events: every event of a wallet is written while the wallet's row
    is locked, so a wallet's events commit in sequence order, the order of its ledger.
    `uuid` is the event's stable id (the API's `id`; receivers deduplicate on it).
    `data` is the resource as the API renders it (the bytes the request answered with,
    where the change had a request).
    """

    class Type(models.TextChoices):
        DEPOSIT_CREATED = "deposit.created", "Deposit created"
        WITHDRAWAL_CREATED = "withdrawal.created", "Withdrawal created"
        TRANSFER_CREATED = "transfer.created", "Transfer created"
        REFUND_CREATED = "refund.created", "Refund created"
        ADJUSTMENT_POSTED = "adjustment.posted", "Adjustment posted"
        HOLD_CREATED = "hold.created", "Hold created"
        HOLD_CAPTURED = "hold.captured", "Hold captured"
        HOLD_VOIDED = "hold.voided", "Hold voided"
        HOLD_EXPIRED = "hold.expired", "Hold expired"
        WALLET_STATUS_CHANGED = "wallet.status_changed", "Wallet status changed"

    sequence = models.BigAutoField(primary_key=True)
    uuid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=32, choices=Type.choices)
    created_at = models.DateTimeField()
    # No foreign keys: the events layer sits below wallets, and an append-only row must
    # outlive what it mentions (as the audit trail does).
    wallet_id = models.UUIDField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # event_owner_sequence_idx starts with it
        related_name="+",
    )
    data = models.JSONField()

    class Meta:
        db_table = "events_event"
        indexes = [
            # GET /events: the caller's events, newest first or forward from a sequence.
            models.Index(fields=["owner", "-sequence"], name="event_owner_sequence_idx"),
            # GET /events?wallet=: one wallet's events, the gap-free way to catch up.
            models.Index(fields=["wallet_id", "-sequence"], name="event_wallet_sequence_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.sequence} on wallet {self.wallet_id}"
