"""Reads on the ledger, from the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import BigIntegerField, Case, F, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact

from transfers.errors import HoldNotFound, TransferNotFound
from transfers.models import Hold, LedgerEntry, Transfer
from wallets.models import Wallet
from wallets.selectors import wallet_check_owner

_TRANSFER_FIELDS = Transfer.PUBLIC_FIELDS


class PinnedExact(Exact):
    """`column = value`, written for PostgreSQL as `column = ANY(ARRAY[value])`.

    PostgreSQL folds a plain `column = constant` into an equivalence class and then drops
    the column from ORDER BY as redundant. History pages order by (wallet_id, -id), the
    exact key of entry_wallet_id_idx (wallet_id, id DESC): only that index can return the
    rows in that order if wallet_id stays in the ORDER BY. With `wallet_id = X`, the
    ORDER BY shrinks to `id DESC`, which a backward scan of the primary key also
    provides, and the planner takes it (it guesses the wallet's rows are spread evenly
    over the table). On the last pages of a big wallet that scan reads every older row
    of every other wallet. A one-element array keeps the same selectivity and the same
    index condition, but is not folded, so wallet_id stays in the ORDER BY.
    (transfers/tests/test_history_plan.py checks the plan.)
    """

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        array_type = f"{self.lhs.output_field.db_type(connection)}[]"  # typed even for a str value
        return f"{lhs} = ANY(ARRAY[{rhs}]::{array_type})", (*lhs_params, *rhs_params)


# What a ledger entry shows in a history or a statement (LedgerEntrySerializer), read with
# its transfer's reference and description in the same query.
ENTRY_FIELDS = (
    "id",
    "type",
    "amount",
    "balance_after",
    "transfer_id",
    "created_at",
    "transfer__reference",
    "transfer__description",
)


def wallet_history(
    *,
    wallet_id: UUID,
    owner_id: int,
    entry_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[LedgerEntry]:
    """The caller's wallet's entries, newest first (keyset-paginated on id).

    Order it by ("wallet_id", "-id") (wallets.api.HistoryPagination does) so that every
    page, the last included, reads entry_wallet_id_idx: see PinnedExact.
    """
    wallet_check_owner(wallet_id=wallet_id, owner_id=owner_id)
    entries = LedgerEntry.objects.filter(PinnedExact(F("wallet_id"), wallet_id)).select_related("transfer")
    if entry_type:
        entries = entries.filter(type=entry_type)
    if created_after:
        entries = entries.filter(created_at__gte=created_after)
    if created_before:
        entries = entries.filter(created_at__lt=created_before)
    return entries.only(*ENTRY_FIELDS)


def _visible_transfers(*, user_id: int) -> QuerySet[Transfer]:
    mine = Wallet.objects.filter(owner_id=user_id).values("id")
    return Transfer.objects.filter(Q(source_wallet_id__in=mine) | Q(destination_wallet_id__in=mine))


def transfer_list(*, user_id: int, wallet_id: UUID | None = None) -> QuerySet[Transfer]:
    """Transfers touching the caller's wallets, optionally one of them, each with its
    `refunded_amount`."""
    if wallet_id is not None:
        wallet_check_owner(wallet_id=wallet_id, owner_id=user_id)
        transfers = Transfer.objects.filter(
            Q(source_wallet_id=wallet_id) | Q(destination_wallet_id=wallet_id)
        )
    else:
        transfers = _visible_transfers(user_id=user_id)
    return with_refunded_amount(transfers)


def with_refunded_amount(transfers: QuerySet[Transfer]) -> QuerySet[Transfer]:
    """Annotate `refunded_amount`: the sum of each transfer's refunds (transfer_refund_of_idx)."""
    refunds = (
        Transfer.objects.filter(refund_of_id=OuterRef("pk"))
        .order_by()
        .values("refund_of_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return transfers.annotate(
        refunded_amount=Coalesce(Subquery(refunds, output_field=BigIntegerField()), Value(0))
    )


# Written as SQL, like wallets.selectors' reads: the ORM's query building cost more CPU
# than the query (transfers/tests/test_selectors.py holds the columns to the model).
TRANSFER_GET_SQL = (
    "SELECT t.id, t.kind, t.source_wallet_id, t.destination_wallet_id, t.amount, t.currency, t.status,"
    " t.reference, t.description, t.refund_of_id, t.created_at,"
    " (SELECT coalesce(sum(r.amount), 0) FROM transfers_transfer r WHERE r.refund_of_id = t.id)"
    " FROM transfers_transfer t"
    " JOIN wallets_wallet s ON s.id = t.source_wallet_id"
    " JOIN wallets_wallet d ON d.id = t.destination_wallet_id"
    " WHERE t.id = %s AND (s.owner_id = %s OR d.owner_id = %s)"
)


def transfer_get(*, transfer_id: UUID, user_id: int) -> Transfer:
    """A transfer touching one of the caller's wallets, with its `refunded_amount`, in one
    query (its wallets' owners joined)."""
    with connection.cursor() as cursor:
        cursor.execute(TRANSFER_GET_SQL, [transfer_id, user_id, user_id])
        row = cursor.fetchone()
    if row is None:
        raise TransferNotFound("No transfer with this id involves your wallets.")
    transfer = Transfer.from_db(DEFAULT_DB_ALIAS, _TRANSFER_FIELDS, row[:-1])
    transfer.refunded_amount = int(row[-1])
    return transfer


def refund_list(*, transfer_id: UUID, user_id: int) -> QuerySet[Transfer]:
    """The refunds of a transfer touching one of the caller's wallets, newest first."""
    transfer_get(transfer_id=transfer_id, user_id=user_id)  # not_found unless the caller is a party
    return with_refunded_amount(Transfer.objects.filter(refund_of_id=transfer_id))


def refunded_amount(*, transfer_id: UUID) -> tuple[int, int]:
    """(the transfer's amount, what its refunds add up to). The money path reads it under
    the refunder's wallet lock (transfers.services)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.amount, (SELECT coalesce(sum(r.amount), 0) FROM transfers_transfer r"
            " WHERE r.refund_of_id = t.id) FROM transfers_transfer t WHERE t.id = %s",
            [transfer_id],
        )
        amount, refunded = cursor.fetchone()
    return amount, int(refunded)


def refundable_transfer(*, transfer_id: UUID, user_id: int) -> Transfer:
    """A transfer the caller received (they own its destination) with its `refunded_amount`:
    what a refund is asked of. not_found for any other."""
    transfer = transfer_get(transfer_id=transfer_id, user_id=user_id)
    owner = (
        Wallet.objects.filter(pk=transfer.destination_wallet_id).values_list("owner_id", flat=True).first()
    )
    if owner != user_id:
        raise TransferNotFound("No transfer with this id reached a wallet of yours.")
    return transfer


def find_reference_use(
    *, wallet_id: UUID, reference: str, owner_id: int | None = None
) -> tuple[UUID, str] | None:
    """(id, currency) of the transfer that used `reference` on the wallet.

    With `owner_id`, only if that user owns the wallet.
    """
    found = Transfer.objects.filter(reference_wallet_id=wallet_id, reference=reference)
    if owner_id is not None:
        found = found.filter(reference_wallet__owner_id=owner_id)
    return found.values_list("id", "currency").first()


def system_wallet_balance(*, wallet_id: UUID) -> int:
    """A system or adjustment wallet's balance is the sum of its entries (it keeps no row balance)."""
    return LedgerEntry.objects.filter(wallet_id=wallet_id).aggregate(total=Sum("amount"))["total"] or 0


def with_ledger_balance(queryset: QuerySet[Wallet]) -> QuerySet[Wallet]:
    """Annotate `ledger_balance`: a user wallet's stored balance, a system or adjustment
    wallet's sum of entries.

    One query for any number of rows: the sum is a subquery inside a CASE, which
    PostgreSQL evaluates only for those rows (two per currency).
    """
    entries = (
        LedgerEntry.objects.filter(wallet_id=OuterRef("pk"))
        .order_by()
        .values("wallet_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return queryset.annotate(
        ledger_balance=Case(
            When(~Q(kind=Wallet.Kind.USER), then=Coalesce(Subquery(entries), Value(0))),
            default=F("balance"),
            output_field=BigIntegerField(),
        )
    )


# --- holds -----------------------------------------------------------------------------


def find_hold_reference_use(
    *, wallet_id: UUID, reference: str, owner_id: int | None = None
) -> tuple[UUID, str] | None:
    """(id, currency) of the hold that used `reference` on the wallet. With `owner_id`,
    only if that user owns the wallet."""
    found = Hold.objects.filter(wallet_id=wallet_id, reference=reference)
    if owner_id is not None:
        found = found.filter(wallet__owner_id=owner_id)
    return found.values_list("id", "currency").first()


def hold_get(*, hold_id: UUID, user_id: int) -> Hold:
    """A hold on one of the caller's wallets."""
    hold = Hold.objects.filter(pk=hold_id, wallet__owner_id=user_id).first()
    if hold is None:
        raise HoldNotFound("No hold with this id is on a wallet of yours.")
    return hold


def hold_list(*, user_id: int, wallet_id: UUID | None = None, status: str | None = None) -> QuerySet[Hold]:
    """Holds on the caller's wallets (or one of them), optionally of one status."""
    if wallet_id is not None:
        wallet_check_owner(wallet_id=wallet_id, owner_id=user_id)
        holds = Hold.objects.filter(wallet_id=wallet_id)
    else:
        holds = Hold.objects.filter(wallet__owner_id=user_id)
    if status:
        holds = holds.filter(status=status)
    return holds
