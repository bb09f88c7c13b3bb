"""Reconciliation: prove that every stored balance is backed by its ledger.

For the wallets in scope it checks, batch by batch:
- a user wallet's stored balance equals the sum of its entries;
- each of its entries' balance_after equals the running sum up to that entry
  (in id order, which is the order the entries were written under the wallet's lock);
- a system or adjustment wallet's legs carry no balance_after and its row balance stays 0
  (both keep no row balance: their balance is the sum of their entries);
- a wallet's `held` equals the sum of its pending holds;
- each of its captured holds captured at most its amount, by a transfer or withdrawal
  that moved exactly that out of the hold's wallet;
and, for the transfers in scope, that each has exactly two legs summing to zero, and
that each refund goes back the way its original transfer came and, with the original's
other refunds, returns no more than the original moved;
and, unless one wallet is asked for, that each currency's entries (system and adjustment
wallets included) sum to zero.

No wallet is locked while it is checked. Each batch is one SQL statement, so it reads one
consistent snapshot: a wallet's balance and its entries are committed together,
so a transfer committing mid-run is seen entirely or not at all and never shows
up as a false discrepancy. Memory is bounded by the batch size; the sums are
computed by the database. Runs report; they never change a balance. What they write on
a wallet, after each batch and only where it changes, is its `inconsistent_since` flag
(set when the run finds a discrepancy on it, cleared when it checks it clean) and, for a
user wallet found inconsistent while active or frozen, its status: under review, which
keeps it off the money path until an operator releases it
(wallets.services.wallets_mark_reconciled; docs/operations.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.db import connection, reset_queries
from django.db.models import Q
from django.utils import timezone

from foundation.metrics import registry as metrics
from transfers.ledger_chain import chain_discrepancies
from transfers.models import Discrepancy, ReconciliationRun, Transfer
from wallets.models import Wallet
from wallets.services import wallets_mark_reconciled

logger = logging.getLogger(__name__)

# An incremental run looks back this much further than the previous run's start,
# so a transaction that was in flight when that run began is not missed.
INCREMENTAL_OVERLAP = timedelta(minutes=5)

# One statement, so a wallet's row, its entries and its holds come from one snapshot (a
# movement or a hold change commits the row and the rows it changes together).
_WALLET_SQL = """
SELECT w.id, w.kind, w.currency, w.balance,
       COALESCE(agg.total, 0), COALESCE(agg.n, 0), COALESCE(agg.breaks, 0), agg.first_break,
       w.held, COALESCE(holds.pending, 0), COALESCE(holds.bad_captures, 0), holds.first_bad_capture
  FROM wallets_wallet w
  LEFT JOIN (
        SELECT x.wallet_id,
               SUM(x.amount) AS total,
               COUNT(*) AS n,
               SUM(CASE WHEN x.bad THEN 1 ELSE 0 END) AS breaks,
               MIN(CASE WHEN x.bad THEN x.id END) AS first_break
          FROM (
                SELECT e.wallet_id, e.id, e.amount,
                       CASE WHEN w2.kind <> 'user' THEN e.balance_after IS NOT NULL
                            ELSE e.balance_after IS NULL OR e.balance_after <> SUM(e.amount)
                                 OVER (PARTITION BY e.wallet_id ORDER BY e.id ROWS UNBOUNDED PRECEDING)
                       END AS bad
                  FROM transfers_ledgerentry e
                  JOIN wallets_wallet w2 ON w2.id = e.wallet_id
                 WHERE e.wallet_id IN ({ids})
               ) x
         GROUP BY x.wallet_id
       ) agg ON agg.wallet_id = w.id
  LEFT JOIN (
        SELECT h.wallet_id,
               SUM(h.amount) FILTER (WHERE h.status = 'pending') AS pending,
               COUNT(*) FILTER (WHERE h.bad) AS bad_captures,
               (ARRAY_AGG(h.id ORDER BY h.created_at, h.id) FILTER (WHERE h.bad))[1] AS first_bad_capture
          FROM (
                SELECT h.wallet_id, h.id, h.amount, h.status, h.created_at,
                       h.status = 'captured' AND (
                           h.captured_amount > h.amount
                           OR t.id IS NULL
                           OR t.kind NOT IN ('transfer', 'withdrawal')
                           OR t.source_wallet_id <> h.wallet_id
                           OR t.amount <> h.captured_amount) AS bad
                  FROM transfers_hold h
                  LEFT JOIN transfers_transfer t ON t.id = h.capture_transfer_id
                 WHERE h.wallet_id IN ({ids})
               ) h
         GROUP BY h.wallet_id
       ) holds ON holds.wallet_id = w.id
 WHERE w.id IN ({ids})
"""

_BAD_CAPTURE_SQL = """
SELECT h.amount, h.captured_amount, h.capture_transfer_id, t.amount
  FROM transfers_hold h LEFT JOIN transfers_transfer t ON t.id = h.capture_transfer_id
 WHERE h.id = %s
"""

_BREAK_SQL = """
SELECT x.id, x.transfer_id, x.running, x.balance_after FROM (
    SELECT e.id, e.transfer_id, e.balance_after,
           SUM(e.amount) OVER (ORDER BY e.id ROWS UNBOUNDED PRECEDING) AS running
      FROM transfers_ledgerentry e WHERE e.wallet_id = %s AND e.id <= %s
) x WHERE x.id = %s
"""

_TRANSFER_SQL = """
SELECT t.id, t.currency, COUNT(e.id), COALESCE(SUM(e.amount), 0)
  FROM transfers_transfer t
  LEFT JOIN transfers_ledgerentry e ON e.transfer_id = t.id
 WHERE t.id IN ({ids})
 GROUP BY t.id, t.currency
HAVING COUNT(e.id) <> 2 OR COALESCE(SUM(e.amount), 0) <> 0
"""

# The originals of the refunds among the batch's transfers, each with every one of its
# refunds (not only the batch's): those that returned more than the original moved, or
# that do not go back the way it came (from its destination to its source, in its currency).
_REFUND_SQL = """
SELECT x.original_id, x.currency, x.kind, x.amount, SUM(x.refunded), COUNT(*),
       COUNT(*) FILTER (WHERE x.misdirected),
       (ARRAY_AGG(x.refund_id ORDER BY x.created_at, x.refund_id) FILTER (WHERE x.misdirected))[1]
  FROM (
        SELECT o.id AS original_id, o.currency, o.kind, o.amount,
               r.id AS refund_id, r.amount AS refunded, r.created_at,
               o.kind <> 'transfer'
               OR r.source_wallet_id <> o.destination_wallet_id
               OR r.destination_wallet_id <> o.source_wallet_id
               OR r.currency <> o.currency AS misdirected
          FROM transfers_transfer o
          JOIN transfers_transfer r ON r.refund_of_id = o.id
         WHERE o.id IN (SELECT b.refund_of_id FROM transfers_transfer b
                         WHERE b.id IN ({ids}) AND b.refund_of_id IS NOT NULL)
       ) x
 GROUP BY x.original_id, x.currency, x.kind, x.amount
HAVING SUM(x.refunded) > x.amount OR BOOL_OR(x.misdirected)
"""

_CURRENCY_SQL = """
SELECT w.currency, SUM(e.amount)
  FROM transfers_ledgerentry e JOIN wallets_wallet w ON w.id = e.wallet_id
 GROUP BY w.currency
HAVING SUM(e.amount) <> 0
"""


def _batches(queryset, batch_size: int) -> Iterator[list[UUID]]:
    """Keyset-paginate primary keys: each batch is a fresh, short query."""
    last = None
    while True:
        page = queryset.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        ids = list(page.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def _previous_run_start() -> datetime | None:
    previous = (
        ReconciliationRun.objects.exclude(
            status__in=[ReconciliationRun.Status.RUNNING, ReconciliationRun.Status.FAILED]
        )
        .filter(scope__in=[ReconciliationRun.Scope.FULL, ReconciliationRun.Scope.SINCE])
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    return previous


def _check_wallets(run: ReconciliationRun, ids: list[UUID]) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    placeholders = ", ".join(["%s"] * len(ids))
    params = list(ids)
    with connection.cursor() as cursor:
        cursor.execute(_WALLET_SQL.format(ids=placeholders), params * 3)
        rows = cursor.fetchall()
    for (
        wallet_id,
        kind,
        currency,
        balance,
        total,
        count,
        breaks,
        first_break,
        held,
        pending,
        bad_captures,
        first_bad_capture,
    ) in rows:
        run.entries_checked += int(count)
        if kind == Wallet.Kind.USER and int(balance) != int(total):
            found.append(
                Discrepancy(
                    run=run,
                    kind=Discrepancy.Kind.BALANCE_MISMATCH,
                    wallet_id=wallet_id,
                    currency=currency,
                    expected=Decimal(int(total)),
                    actual=Decimal(int(balance)),
                    detail=f"stored balance {balance} but entries sum to {total}",
                )
            )
        if kind != Wallet.Kind.USER and int(balance) != 0:
            found.append(
                Discrepancy(
                    run=run,
                    kind=Discrepancy.Kind.SYSTEM_BALANCE,
                    wallet_id=wallet_id,
                    currency=currency,
                    expected=Decimal(0),
                    actual=Decimal(int(balance)),
                    detail=f"{kind} wallets keep no row balance",
                )
            )
        if int(held) != int(pending):
            found.append(
                Discrepancy(
                    run=run,
                    kind=Discrepancy.Kind.HELD_MISMATCH,
                    wallet_id=wallet_id,
                    currency=currency,
                    expected=Decimal(int(pending)),
                    actual=Decimal(int(held)),
                    detail=f"stored held {held} but pending holds sum to {pending}",
                )
            )
        if int(bad_captures):
            found.append(_bad_capture(run, wallet_id, currency, int(bad_captures), first_bad_capture))
        if int(breaks):
            with connection.cursor() as cursor:
                cursor.execute(_BREAK_SQL, [wallet_id, first_break, first_break])
                entry_id, transfer_id, running, balance_after = cursor.fetchone()
            found.append(
                Discrepancy(
                    run=run,
                    kind=Discrepancy.Kind.RUNNING_BALANCE,
                    wallet_id=wallet_id,
                    entry_id=entry_id,
                    transfer_id=transfer_id,
                    currency=currency,
                    expected=Decimal(int(running)) if kind == Wallet.Kind.USER else Decimal(0),
                    actual=Decimal(int(balance_after)) if balance_after is not None else Decimal(0),
                    detail=f"{breaks} entries off the running sum; the first is #{entry_id}",
                )
            )
    return found


def _bad_capture(
    run: ReconciliationRun, wallet_id: UUID, currency: str, count: int, hold_id: UUID
) -> Discrepancy:
    with connection.cursor() as cursor:
        cursor.execute(_BAD_CAPTURE_SQL, [hold_id])
        amount, captured, transfer_id, moved = cursor.fetchone()
    return Discrepancy(
        run=run,
        kind=Discrepancy.Kind.HOLD_CAPTURE_MISMATCH,
        wallet_id=wallet_id,
        transfer_id=transfer_id,
        currency=currency,
        expected=Decimal(int(captured)),
        actual=Decimal(int(moved)) if moved is not None else Decimal(0),
        detail=(
            f"{count} captured holds do not match their capture; the first is hold {hold_id} "
            f"(amount {amount}, captured {captured})"
        )[:255],
    )


def _check_transfers(run: ReconciliationRun, ids: list[UUID]) -> list[Discrepancy]:
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(_TRANSFER_SQL.format(ids=placeholders), list(ids))
        rows = cursor.fetchall()
    return [
        Discrepancy(
            run=run,
            kind=Discrepancy.Kind.UNBALANCED_TRANSFER,
            transfer_id=transfer_id,
            currency=currency,
            expected=Decimal(0),
            actual=Decimal(int(total)),
            detail=f"{count} legs summing to {total}",
        )
        for transfer_id, currency, count, total in rows
    ]


def _check_refunds(run: ReconciliationRun, ids: list[UUID], seen: set[UUID]) -> list[Discrepancy]:
    """The originals of the batch's refunds; each original is reported once per run (`seen`)."""
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(_REFUND_SQL.format(ids=placeholders), list(ids))
        rows = cursor.fetchall()
    found: list[Discrepancy] = []
    for original_id, currency, kind, amount, refunded, count, misdirected, first_misdirected in rows:
        if original_id in seen:
            continue
        seen.add(original_id)
        if int(refunded) > int(amount):
            found.append(
                Discrepancy(
                    run=run,
                    kind=Discrepancy.Kind.REFUNDS_EXCEED_ORIGINAL,
                    transfer_id=original_id,
                    currency=currency,
                    expected=Decimal(int(amount)),
                    actual=Decimal(int(refunded)),
                    detail=f"{count} refunds return {refunded}, more than the original's {amount}",
                )
            )
        if int(misdirected):
            found.append(
                Discrepancy(
                    run=run,
                    kind=Discrepancy.Kind.REFUND_MISDIRECTED,
                    transfer_id=first_misdirected,
                    currency=currency,
                    expected=Decimal(0),
                    actual=Decimal(int(misdirected)),
                    detail=(
                        f"{misdirected} refunds of {kind} {original_id} do not return it to its "
                        f"source; the first is {first_misdirected}"
                    )[:255],
                )
            )
    return found


def _check_currencies(run: ReconciliationRun) -> list[Discrepancy]:
    with connection.cursor() as cursor:
        cursor.execute(_CURRENCY_SQL)
        rows = cursor.fetchall()
    return [
        Discrepancy(
            run=run,
            kind=Discrepancy.Kind.CURRENCY_IMBALANCE,
            currency=currency,
            expected=Decimal(0),
            actual=Decimal(int(total)),
            detail=f"all {currency} entries sum to {total}",
        )
        for currency, total in rows
    ]


def reconciliation_run(
    *,
    wallet_id: UUID | None = None,
    since: datetime | None = None,
    incremental: bool = False,
    batch_size: int | None = None,
) -> ReconciliationRun:
    """Check the ledger and store a ReconciliationRun with its discrepancies.

    Scope: one wallet (`wallet_id`), wallets changed and transfers made since
    `since` (plus the wallets flagged inconsistent, to notice their repair), those
    since the previous run (`incremental`; the first run is full), or everything.
    Each batch autocommits; nothing is locked while it is read.
    """
    batch_size = batch_size or settings.RECONCILE_BATCH_SIZE
    if incremental and since is None and wallet_id is None:
        previous = _previous_run_start()
        since = previous - INCREMENTAL_OVERLAP if previous else None
    if wallet_id is not None:
        scope = ReconciliationRun.Scope.WALLET
    elif since is not None:
        scope = ReconciliationRun.Scope.SINCE
    else:
        scope = ReconciliationRun.Scope.FULL
    run = ReconciliationRun.objects.create(scope=scope, wallet_id=wallet_id, since=since)

    # Only what existed when the run started: transfer ids are random UUIDs, so new ones
    # land on both sides of the keyset cursor, and a run that took them in too could chase
    # a busy ledger for ever. The next run checks them.
    wallets = Wallet.objects.filter(created_at__lte=run.started_at)
    transfers = Transfer.objects.filter(created_at__lte=run.started_at)
    if wallet_id is not None:
        wallets = wallets.filter(pk=wallet_id)
        transfers = transfers.filter(Q(source_wallet_id=wallet_id) | Q(destination_wallet_id=wallet_id))
    elif since is not None:
        # Flagged wallets too, so a repair that did not go through the ledger is noticed.
        wallets = wallets.filter(Q(updated_at__gte=since) | Q(inconsistent_since__isnull=False))
        transfers = transfers.filter(created_at__gte=since)

    refunded_originals: set[UUID] = set()
    try:
        for ids in _batches(wallets, batch_size):
            # Stored rows against each other, then the hash chains (the entries against
            # their own history): a frequent run reads only what came after the latest
            # checkpoint, the full one walks every chain.
            found = _check_wallets(run, ids) + chain_discrepancies(
                run=run, wallet_ids=ids, full=scope == ReconciliationRun.Scope.FULL
            )
            run.wallets_checked += len(ids)
            _save_found(run, found)
            findings: dict[UUID, list[str]] = {}
            for discrepancy in found:
                findings.setdefault(discrepancy.wallet_id, []).append(discrepancy.kind)
            wallets_mark_reconciled(
                checked=set(ids),
                inconsistent=set(findings),
                found_at=run.started_at,
                findings=findings,
                run_id=run.id,
            )
            reset_queries()  # with DEBUG on, Django would keep every batch's SQL text
        for ids in _batches(transfers, batch_size):
            found = _check_transfers(run, ids) + _check_refunds(run, ids, refunded_originals)
            run.transfers_checked += len(ids)
            _save_found(run, found)
            reset_queries()
        if wallet_id is None:
            _save_found(run, _check_currencies(run))
    except Exception as exc:
        run.status = ReconciliationRun.Status.FAILED
        run.error = f"{type(exc).__name__}: {exc}"[:2000]
        run.finished_at = timezone.now()
        run.save()
        _record_metrics(run)
        logger.exception("reconciliation run %s failed", run.id)
        raise
    run.status = (
        ReconciliationRun.Status.DISCREPANCIES if run.discrepancy_count else ReconciliationRun.Status.CLEAN
    )
    run.finished_at = timezone.now()
    run.save()
    _record_metrics(run)
    log = logger.error if run.discrepancy_count else logger.info
    log(
        "reconciliation run %s: %s wallets, %s transfers, %s discrepancies",
        run.id,
        run.wallets_checked,
        run.transfers_checked,
        run.discrepancy_count,
    )
    return run


def _record_metrics(run: ReconciliationRun) -> None:
    metrics.record_reconciliation(
        status=run.status, finished_at=run.finished_at, discrepancies=run.discrepancy_count, scope=run.scope
    )


def _save_found(run: ReconciliationRun, found: list[Discrepancy]) -> None:
    if found:
        Discrepancy.objects.bulk_create(found)
        run.discrepancy_count += len(found)
    run.save(update_fields=["wallets_checked", "transfers_checked", "entries_checked", "discrepancy_count"])
