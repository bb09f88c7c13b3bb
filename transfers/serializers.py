import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

from django.conf import settings
from rest_framework import serializers

from foundation.serializers import (
    AmountField,
    QueryFilterSerializer,
    ReferenceField,
    StrictCharField,
    StrictDateTimeField,
    StrictIntegerField,
    StrictSerializer,
    StrictUUIDField,
)
from transfers.holds import PreparedHoldChange
from transfers.models import Hold, IdempotencyRecord, LedgerEntry, Transfer
from transfers.rendering import hold_data, render_json, transfer_data
from transfers.reports import BalanceAt, IdempotencyKeyLookup, Statement, statement_csv_chunks
from transfers.services import PreparedMovement
from wallets.serializers import WalletSerializer, wallet_data


class MovementSerializer(StrictSerializer):
    amount = AmountField(help_text="Minor units (e.g. cents); 1 to 10^15.")
    reference = ReferenceField()
    description = StrictCharField(required=False, allow_blank=True, max_length=255, default="")


class TransferCreateSerializer(MovementSerializer):
    source_wallet_id = StrictUUIDField()
    destination_wallet_id = StrictUUIDField()


class TransferSerializer(serializers.ModelSerializer):
    source_wallet_id = serializers.UUIDField()
    destination_wallet_id = serializers.UUIDField()
    refund_of = serializers.UUIDField(
        source="refund_of_id", allow_null=True, help_text="A refund's original transfer; null otherwise."
    )
    refunded_amount = serializers.IntegerField(
        help_text="What the transfer's refunds add up to (minor units)."
    )

    class Meta:
        model = Transfer
        fields = [
            "id",
            "kind",
            "source_wallet_id",
            "destination_wallet_id",
            "amount",
            "currency",
            "status",
            "reference",
            "description",
            "refund_of",
            "refunded_amount",
            "created_at",
        ]
        read_only_fields = fields


class RefundCreateSerializer(StrictSerializer):
    amount = AmountField(required=False, help_text="Minor units; default: all that is left to refund.")
    reason = StrictCharField(required=False, allow_blank=True, max_length=255, default="")
    reference = ReferenceField()


class HoldCreateSerializer(StrictSerializer):
    amount = AmountField(help_text="Minor units to reserve; 1 to 10^15.")
    expires_at = StrictDateTimeField(
        required=False,
        help_text="When the hold lapses (ISO 8601 with offset); default: HOLD_DEFAULT_SECONDS.",
    )
    expires_in_seconds = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=settings.HOLD_MAX_SECONDS,
        help_text="Or: lapse this many seconds from now.",
    )
    reference = ReferenceField(
        help_text="Your own reference, unique forever within the wallet's holds (1-128 printable characters)."
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=255, default="")


class HoldCaptureSerializer(StrictSerializer):
    amount = AmountField(
        required=False, help_text="Minor units to capture, at most the held amount; default: all."
    )
    destination_wallet_id = StrictUUIDField(
        required=False,
        help_text="A wallet to pay (a transfer); without it the money leaves the service (a withdrawal).",
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=255)


class HoldVoidSerializer(StrictSerializer):
    """An empty object (or no body): a void takes no options."""


class HoldSerializer(serializers.ModelSerializer):
    wallet_id = serializers.UUIDField()
    capture_transfer_id = serializers.UUIDField(
        allow_null=True, help_text="The transfer or withdrawal a capture made."
    )

    class Meta:
        model = Hold
        fields = [
            "id",
            "wallet_id",
            "amount",
            "captured_amount",
            "currency",
            "status",
            "expires_at",
            "reference",
            "description",
            "capture_transfer_id",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class HoldFilterSerializer(QueryFilterSerializer):
    wallet = StrictUUIDField(required=False)
    status = serializers.ChoiceField(choices=Hold.Status.choices, required=False)


class MovementResultSerializer(serializers.Serializer):
    transfer = TransferSerializer()
    wallet = WalletSerializer()


class LedgerEntrySerializer(serializers.ModelSerializer):
    transfer_id = serializers.UUIDField()
    reference = serializers.CharField(source="transfer.reference", allow_null=True)
    description = serializers.CharField(source="transfer.description")

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "type",
            "amount",
            "balance_after",
            "transfer_id",
            "reference",
            "description",
            "created_at",
        ]
        read_only_fields = fields


class HistoryFilterSerializer(QueryFilterSerializer):
    type = serializers.ChoiceField(choices=LedgerEntry.Type.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class TransferFilterSerializer(QueryFilterSerializer):
    wallet = StrictUUIDField(required=False)


# --- balances at an instant, statements, idempotency keys (transfers.reports) --------------


class BalanceAtFilterSerializer(QueryFilterSerializer):
    at = StrictDateTimeField(
        required=False,
        help_text="The instant (ISO 8601 with offset); default: now. A future instant is answered as of now.",
    )


class StatementFilterSerializer(QueryFilterSerializer):
    """`from` and `to` (a Python keyword, so the fields are named in get_fields)."""

    def get_fields(self) -> dict:
        return {
            "from": StrictDateTimeField(
                required=False,
                help_text="Start of the period, included (ISO 8601 with offset); default: the first entry.",
            ),
            "to": StrictDateTimeField(
                required=False,
                help_text="End of the period, excluded (ISO 8601 with offset); default and latest: now.",
            ),
        }

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("from"), attrs.get("to")
        if start is not None and end is not None and start >= end:
            raise serializers.ValidationError({"to": ["Must be after from."]})
        return attrs


class BalanceAtSerializer(serializers.Serializer):
    wallet_id = serializers.UUIDField()
    at = serializers.DateTimeField(help_text="The instant answered for (now, if a future one was asked).")
    currency = serializers.CharField()
    exponent = serializers.IntegerField(help_text="The currency's minor-unit digits (ISO 4217): 2 for USD.")
    balance = serializers.IntegerField(help_text="Minor units, from the ledger at that instant.")
    held = serializers.IntegerField(help_text="Minor units reserved by the holds pending at that instant.")
    available = serializers.IntegerField(help_text="balance - held.")
    entry_id = serializers.IntegerField(
        allow_null=True, help_text="The last ledger entry the balance counts; null before the first."
    )


class StatementSerializer(serializers.Serializer):
    """A statement page: the period's figures (the same on every page) and a page of entries."""

    def get_fields(self) -> dict:
        return {
            "wallet_id": serializers.UUIDField(),
            "currency": serializers.CharField(),
            "exponent": serializers.IntegerField(help_text="The currency's minor-unit digits (ISO 4217)."),
            "from": serializers.DateTimeField(
                allow_null=True, help_text="Start of the period (included); null: the wallet's first entry."
            ),
            "to": serializers.DateTimeField(help_text="End of the period (excluded); at most now."),
            "opening_balance": serializers.IntegerField(help_text="Minor units, just before `from`."),
            "closing_balance": serializers.IntegerField(
                help_text="Minor units, just before `to`: opening_balance + total_in - total_out."
            ),
            "total_in": serializers.IntegerField(help_text="Sum of the period's credits (minor units)."),
            "total_out": serializers.IntegerField(help_text="Sum of the period's debits (positive)."),
            "count": serializers.IntegerField(help_text="Entries in the period."),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": LedgerEntrySerializer(many=True, help_text="Entries, oldest first."),
        }


class IdempotencyResourceSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["transfer", "hold"])
    id = serializers.UUIDField()
    href = serializers.CharField(help_text="Its path in this API.")


class IdempotencyKeySerializer(serializers.Serializer):
    key = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["completed", "in_progress", "unknown"],
        help_text=(
            "`completed`: the request finished and its answer is stored (a retry with the key replays it). "
            "`in_progress`: a request with this key has not finished yet. `unknown`: no request of yours "
            "with this key is known (never sent, rolled back, or past its retention): retrying is safe."
        ),
    )
    response_status = serializers.IntegerField(
        allow_null=True, help_text="The stored answer's HTTP status (`completed` only)."
    )
    resource = IdempotencyResourceSerializer(
        allow_null=True, help_text="What the request made or changed (a successful `completed` only)."
    )
    created_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="When the stored answer may be deleted (IDEMPOTENCY_KEY_TTL_HOURS on)."
    )


# The API renders its answers from these plain dicts: a ModelSerializer rebuilds its fields
# for every instance, which cost more than the rest of a read. The serializers above
# describe the same shapes for the OpenAPI document; tests/test_serializers.py holds
# each dict to its serializer's output. A transfer's and a hold's (what the outbox's
# events carry too) are in transfers.rendering, which the money path can import.


def entry_data(entry: LedgerEntry) -> dict:
    """A history entry as the API shows it (LedgerEntrySerializer)."""
    return {
        "id": entry.id,
        "type": entry.type,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "transfer_id": entry.transfer_id,
        "reference": entry.transfer.reference,
        "description": entry.transfer.description,
        "created_at": entry.created_at,
    }


def response_body(prepared: PreparedMovement | PreparedHoldChange) -> bytes:
    """The success body of a money POST, rendered before the write so it is stored with
    the idempotency record (and replayed byte for byte): the hold, for a hold's creation,
    capture or void; the transfer, for a transfer or refund; `{transfer, wallet}` (the
    caller's wallet after the movement) for deposits and withdrawals."""
    if isinstance(prepared, PreparedHoldChange):
        return render_json(hold_data(prepared.hold))
    if prepared.hold is not None:
        return render_json(hold_data(prepared.hold))
    transfer = transfer_data(prepared.transfer)
    if prepared.movement.kind in (Transfer.Kind.TRANSFER, Transfer.Kind.REFUND):
        return render_json(transfer)
    return render_json({"transfer": transfer, "wallet": wallet_data(prepared.own_wallet)})


def balance_at_data(found: BalanceAt) -> dict:
    """A balance at an instant as the API shows it (BalanceAtSerializer)."""
    return {
        "wallet_id": found.wallet_id,
        "at": found.at,
        "currency": found.currency,
        "exponent": found.exponent,
        "balance": found.balance,
        "held": found.held,
        "available": found.available,
        "entry_id": found.entry_id,
    }


def statement_data(statement: Statement) -> dict:
    """A statement's figures as the API shows them (StatementSerializer, without the page)."""
    return {
        "wallet_id": statement.wallet_id,
        "currency": statement.currency,
        "exponent": statement.exponent,
        "from": statement.period_from,
        "to": statement.period_to,
        "opening_balance": statement.opening_balance,
        "closing_balance": statement.closing_balance,
        "total_in": statement.total_in,
        "total_out": statement.total_out,
        "count": statement.count,
    }


def idempotency_key_data(found: IdempotencyKeyLookup) -> dict:
    """An Idempotency-Key's status as the API shows it (IdempotencyKeySerializer): the same
    members whatever the status."""
    record = found.record
    return {
        "key": found.key,
        "status": found.status,
        "response_status": record.status_code if record is not None else None,
        "resource": _idempotency_resource(record) if record is not None else None,
        "created_at": record.created_at if record is not None else None,
        "expires_at": found.expires_at,
    }


def _idempotency_resource(record: IdempotencyRecord) -> dict | None:
    """The hold (a hold's creation, capture or void: the stored answer is the hold) or the
    transfer a successful request made; None for a refusal."""
    if record.status_code >= 400:
        return None
    if "/holds" in record.path:
        hold_id = json.loads(bytes(record.response_body))["id"]
        return {"type": "hold", "id": hold_id, "href": f"/api/v1/holds/{hold_id}"}
    if record.transfer_id is None:
        return None
    return {"type": "transfer", "id": record.transfer_id, "href": f"/api/v1/transfers/{record.transfer_id}"}


# A statement as CSV (the format: transfers.api.CSV_DESCRIPTION; README "Statements").
STATEMENT_CSV_COLUMNS = (
    "record",
    "entry_id",
    "created_at",
    "type",
    "amount",
    "balance_after",
    "currency",
    "transfer_id",
    "reference",
    "description",
)


def statement_csv(statement: Statement) -> Iterator[bytes]:
    """The statement's CSV, a piece at a time: the header and the opening record, every
    entry oldest first (written by PostgreSQL: transfers.reports.statement_csv_chunks), the
    closing record. Memory holds one piece, whatever the period's length."""
    start = _csv_time(statement.period_from) if statement.period_from is not None else ""
    yield _csv_lines(
        STATEMENT_CSV_COLUMNS,
        ("opening", "", start, "", "", statement.opening_balance, statement.currency, "", "", ""),
    )
    yield from statement_csv_chunks(statement)
    end = _csv_time(statement.period_to)
    yield _csv_lines(("closing", "", end, "", "", statement.closing_balance, statement.currency, "", "", ""))


def _csv_lines(*rows: tuple) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def _csv_time(moment: datetime) -> str:
    """UTC with microseconds and a Z, as the entries' times are written."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
