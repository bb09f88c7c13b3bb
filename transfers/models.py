import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Transfer(models.Model):
    """One movement of money between two wallets: the unit of double entry.

    Each transfer has exactly two LedgerEntry rows, -amount on the source and
    +amount on the destination. Both tables are append-only; PostgreSQL enforces
    that, the zero sum and the legs' shape (migration 0003, its SQL in migrations/sql/).
    """

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        WITHDRAWAL = "withdrawal", "Withdrawal"
        TRANSFER = "transfer", "Transfer"
        # Money a transfer's recipient returns to its sender (`refund_of` names the transfer).
        REFUND = "refund", "Refund"
        # An operator's approved correction, against the currency's adjustment wallet.
        ADJUSTMENT = "adjustment", "Adjustment"

    class Status(models.TextChoices):
        COMPLETED = "completed", "Completed"

    # The columns a transfer's detail read selects (transfers.selectors.TRANSFER_GET_SQL).
    PUBLIC_FIELDS = (
        "id",
        "kind",
        "source_wallet_id",
        "destination_wallet_id",
        "amount",
        "currency",
        "status",
        "reference",
        "description",
        "refund_of_id",
        "created_at",
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    source_wallet = models.ForeignKey(
        "wallets.Wallet", on_delete=models.PROTECT, related_name="outgoing_transfers"
    )
    destination_wallet = models.ForeignKey(
        "wallets.Wallet", on_delete=models.PROTECT, related_name="incoming_transfers"
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETED)
    # The client's reference, unique forever within `reference_wallet`: the user
    # wallet the request was made on (destination of a deposit, source otherwise).
    reference = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001 NULL = no reference; "" would collide
    reference_wallet = models.ForeignKey(
        "wallets.Wallet", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    description = models.CharField(max_length=255, blank=True, default="")
    initiated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    # A refund's original transfer. The sum of a transfer's refunds never exceeds its
    # amount, and a refund goes back the way the original came (transfers.0007's trigger).
    refund_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="refunds", db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "transfers_transfer"
        indexes = [
            models.Index(fields=["-created_at"], name="transfer_created_idx"),
            models.Index(
                fields=["refund_of"], name="transfer_refund_of_idx", condition=Q(refund_of__isnull=False)
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(
                condition=~Q(source_wallet=models.F("destination_wallet")),
                name="transfer_distinct_wallets",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["deposit", "withdrawal", "transfer", "refund", "adjustment"]),
                name="transfer_kind_valid_v2",
            ),
            models.CheckConstraint(
                condition=Q(kind="refund", refund_of__isnull=False)
                | (~Q(kind="refund") & Q(refund_of__isnull=True)),
                name="transfer_refund_of_only_refunds",
            ),
            models.UniqueConstraint(
                fields=["reference_wallet", "reference"],
                condition=Q(reference__isnull=False),
                name="transfer_reference_unique_per_wallet",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class LedgerEntry(models.Model):
    """One leg of a transfer on one wallet. Signed amount; never updated or deleted.

    `balance_after` is the wallet's balance once this entry applied; it is NULL
    only on system-wallet legs, whose running balance is not tracked row by row
    (that is what keeps system wallets off the lock path).
    """

    class Type(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        WITHDRAWAL = "withdrawal", "Withdrawal"
        TRANSFER_IN = "transfer_in", "Transfer in"
        TRANSFER_OUT = "transfer_out", "Transfer out"
        REFUND_IN = "refund_in", "Refund in"
        REFUND_OUT = "refund_out", "Refund out"
        ADJUSTMENT = "adjustment", "Adjustment"

    id = models.BigAutoField(primary_key=True)
    transfer = models.ForeignKey(Transfer, on_delete=models.PROTECT, related_name="entries")
    wallet = models.ForeignKey(
        "wallets.Wallet", on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    type = models.CharField(max_length=12, choices=Type.choices)
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField(null=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # SHA-256 of the wallet's previous entry_hash and this entry's fields (transfers.
    # ledger_chain, docs/ledger.md). NULL on system and adjustment wallets' legs, and on
    # entries from before the chain until `manage.py ledger_chain_backfill` links them.
    entry_hash = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "transfers_ledgerentry"
        verbose_name_plural = "ledger entries"
        indexes = [
            # History pages (newest first, keyset on id) and the running-balance check.
            models.Index(fields=["wallet", "-id"], name="entry_wallet_id_idx"),
            # Balance at an instant (transfers.reports): one seek to the wallet's last entry
            # stamped at or before it, balance_after read from the index itself.
            models.Index(
                fields=["wallet", "created_at", "id"],
                include=["balance_after"],
                name="entry_wallet_created_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_non_zero"),
            models.CheckConstraint(
                condition=Q(
                    type__in=[
                        "deposit",
                        "withdrawal",
                        "transfer_in",
                        "transfer_out",
                        "refund_in",
                        "refund_out",
                        "adjustment",
                    ]
                ),
                name="entry_type_valid_v2",
            ),
            # Transfer legs have a fixed sign. Deposit and withdrawal legs are named
            # after the movement on both sides (the system leg has the opposite sign);
            # the deferred trigger of 0003 checks each leg against its transfer.
            models.CheckConstraint(
                condition=~Q(type="transfer_in") | Q(amount__gt=0), name="entry_transfer_in_positive"
            ),
            models.CheckConstraint(
                condition=~Q(type="transfer_out") | Q(amount__lt=0), name="entry_transfer_out_negative"
            ),
            models.CheckConstraint(
                condition=~Q(type="refund_in") | Q(amount__gt=0), name="entry_refund_in_positive"
            ),
            models.CheckConstraint(
                condition=~Q(type="refund_out") | Q(amount__lt=0), name="entry_refund_out_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.amount} on {self.wallet_id}"


class Hold(models.Model):
    """Money reserved on a user wallet: authorized now, captured, voided or expired later.

    While pending, its amount counts in the wallet's `held`, so the wallet cannot spend it
    elsewhere (PostgreSQL checks at commit that `held` is the sum of the pending holds).
    A capture moves `captured_amount` (at most `amount`) out as one transfer or withdrawal
    and releases the rest; a void or expiry releases it all. Only a pending hold changes,
    once; its amount, wallet and currency never do (transfers.0007's triggers).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CAPTURED = "captured", "Captured"
        VOIDED = "voided", "Voided"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    wallet = models.ForeignKey(
        "wallets.Wallet", on_delete=models.PROTECT, related_name="holds", db_index=False
    )
    amount = models.BigIntegerField()
    captured_amount = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    expires_at = models.DateTimeField()
    # The client's reference, unique forever within the wallet's holds.
    reference = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001 NULL = no reference; "" would collide
    description = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # The transfer or withdrawal a capture made.
    capture_transfer = models.OneToOneField(
        Transfer, null=True, blank=True, on_delete=models.PROTECT, related_name="captured_hold"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # When it stopped being pending (captured, voided or expired).
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "transfers_hold"
        indexes = [
            # A wallet's holds, newest first (GET /holds?wallet=), and the sum of its pending ones.
            models.Index(fields=["wallet", "-created_at", "-id"], name="hold_wallet_created_idx"),
            # The sum of a wallet's pending holds (transfers.0007's held check).
            models.Index(fields=["wallet"], name="hold_wallet_pending_idx", condition=Q(status="pending")),
            # What the expiry task looks for.
            models.Index(
                fields=["expires_at"], name="hold_pending_expiry_idx", condition=Q(status="pending")
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="hold_amount_positive"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "captured", "voided", "expired"]), name="hold_status_valid"
            ),
            # Pending: nothing captured, not finished. Captured: some of it, by one transfer.
            # Voided or expired: nothing captured.
            models.CheckConstraint(
                condition=(
                    Q(
                        status="pending",
                        captured_amount=0,
                        capture_transfer__isnull=True,
                        finished_at__isnull=True,
                    )
                    | Q(
                        status="captured",
                        captured_amount__gt=0,
                        captured_amount__lte=models.F("amount"),
                        capture_transfer__isnull=False,
                        finished_at__isnull=False,
                    )
                    | Q(
                        status__in=["voided", "expired"],
                        captured_amount=0,
                        capture_transfer__isnull=True,
                        finished_at__isnull=False,
                    )
                ),
                name="hold_status_fields_valid",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="hold_currency_iso_format"
            ),
            models.UniqueConstraint(
                fields=["wallet", "reference"],
                condition=Q(reference__isnull=False),
                name="hold_reference_unique_per_wallet",
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.id} ({self.status})"


class IdempotencyRecord(models.Model):
    """The stored outcome of one money-moving request, keyed by (user, key).

    Written in the same transaction as the movement it records, so the two can
    never disagree. Replays return `response_body` byte for byte.
    """

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.BinaryField()
    transfer = models.ForeignKey(
        Transfer, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "transfers_idempotencyrecord"
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"


class ReconciliationRun(models.Model):
    """One pass of the reconciliation service: what it checked and what it found.

    Runs report; they never change a balance.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        CLEAN = "clean", "Clean"
        DISCREPANCIES = "discrepancies", "Discrepancies found"
        FAILED = "failed", "Failed"

    class Scope(models.TextChoices):
        FULL = "full", "Every wallet"
        WALLET = "wallet", "One wallet"
        SINCE = "since", "Wallets changed since"

    id = models.BigAutoField(primary_key=True)
    scope = models.CharField(max_length=8, choices=Scope.choices)
    wallet = models.ForeignKey(
        "wallets.Wallet", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    since = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    wallets_checked = models.PositiveIntegerField(default=0)
    transfers_checked = models.PositiveBigIntegerField(default=0)
    entries_checked = models.PositiveBigIntegerField(default=0)
    discrepancy_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "transfers_reconciliationrun"
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["status", "-started_at"], name="recon_run_status_idx")]

    def __str__(self) -> str:
        return f"reconciliation #{self.id} ({self.status})"


class Discrepancy(models.Model):
    """One thing a reconciliation run could not prove. Amounts in minor units."""

    class Kind(models.TextChoices):
        BALANCE_MISMATCH = "balance_mismatch", "Stored balance != sum of entries"
        RUNNING_BALANCE = "running_balance", "Entry balance_after != running sum"
        UNBALANCED_TRANSFER = "unbalanced_transfer", "Transfer legs do not sum to zero / not two legs"
        CURRENCY_IMBALANCE = "currency_imbalance", "Entries of a currency do not sum to zero"
        SYSTEM_BALANCE = "system_balance", "System or adjustment wallet row balance is not zero"
        HELD_MISMATCH = "held_mismatch", "Stored held != sum of pending holds"
        HOLD_CAPTURE_MISMATCH = "hold_capture_mismatch", "Captured hold does not match its capture transfer"
        REFUNDS_EXCEED_ORIGINAL = "refunds_exceed_original", "Refunds return more than their original moved"
        REFUND_MISDIRECTED = "refund_misdirected", "Refund does not go back the way its original came"
        CHAIN_BROKEN = "chain_broken", "Entry or head hash does not match the recomputed chain"

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="discrepancies")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    wallet = models.ForeignKey(
        "wallets.Wallet", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    transfer_id = models.UUIDField(null=True, blank=True)
    entry_id = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    # Integer-valued decimals: a sum over many wallets can exceed bigint.
    expected = models.DecimalField(max_digits=40, decimal_places=0)
    actual = models.DecimalField(max_digits=40, decimal_places=0)
    detail = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "transfers_discrepancy"
        verbose_name_plural = "discrepancies"
        indexes = [models.Index(fields=["kind"], name="discrepancy_kind_idx")]

    def __str__(self) -> str:
        return f"{self.kind}: expected {self.expected}, actual {self.actual}"


class LedgerCheckpoint(models.Model):
    """A daily record of user wallets' chain heads, with one root hash over them.

    Each checkpoint lists the wallets whose chain grew since they were last checkpointed
    (LedgerCheckpointWallet), read in one REPEATABLE READ snapshot. `root_hash` is
    SHA-256 of the previous checkpoint's root and the sorted list (docs/ledger.md); it is
    logged and exported as a metric, so a copy lives outside the database. Append-only.
    """

    id = models.BigAutoField(primary_key=True)
    # The checkpoint before this one (NULL: the first); one checkpoint follows each.
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    wallet_count = models.PositiveIntegerField(default=0)
    root_hash = models.BinaryField(editable=False)

    class Meta:
        db_table = "transfers_ledgercheckpoint"
        constraints = [
            # One checkpoint follows each, and there is one first (NULLs count as equal).
            models.UniqueConstraint(
                fields=["previous"], name="checkpoint_one_successor", nulls_distinct=False
            ),
        ]

    def __str__(self) -> str:
        return f"ledger checkpoint #{self.id}"


class LedgerCheckpointWallet(models.Model):
    """One wallet's chain head at a checkpoint: its entry count, head hash and last entry."""

    id = models.BigAutoField(primary_key=True)
    checkpoint = models.ForeignKey(LedgerCheckpoint, on_delete=models.PROTECT, related_name="wallets")
    wallet = models.ForeignKey("wallets.Wallet", on_delete=models.PROTECT, related_name="+", db_index=False)
    entry_count = models.BigIntegerField()
    head_hash = models.BinaryField(editable=False)
    last_entry_id = models.BigIntegerField()

    class Meta:
        db_table = "transfers_ledgercheckpointwallet"
        indexes = [
            # A wallet's checkpointed heads (verification; "already checkpointed at this count?").
            models.Index(fields=["wallet", "entry_count"], name="checkpoint_wallet_count_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "wallet"], name="checkpoint_wallet_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.wallet_id} at {self.entry_count} (checkpoint #{self.checkpoint_id})"
