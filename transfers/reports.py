"""Reads on a wallet's ledger over time: its balance at an instant and its statements.

Time and the ledger's order
---------------------------
A user wallet's entries form a chain in id order: each entry's `balance_after` is the
previous one's plus its amount (PostgreSQL checks it at commit, transfers.0003). An
entry's id is drawn while the movement holds the wallet's row lock, so a wallet's ids
follow the order its movements committed in. Its `created_at` is the application
server's clock, read just after it locked the wallet (transfers.services): with one
clock it grows with the id, but two servers whose clocks disagree by more than the
time between two movements of the same wallet can stamp them out of order.

So an instant selects a position in the chain: the wallet's last entry stamped at or
before it, ties broken by id (one backward seek of entry_wallet_created_idx); now (or a
future instant) selects the chain's end, the wallet's last entry. The
balance at that instant is that entry's `balance_after`. A statement for [from, to) is
the piece of the chain between two such positions (the entries after the last one
stamped before `from`, up to the last one stamped before `to`), listed in id order, so
its opening balance plus what came in minus what went out is its closing balance,
always. Where clocks agreed, which is every entry of a wallet served by one clock,
that piece is exactly the entries stamped in [from, to), and consecutive statements
chain (one's closing balance is the next one's opening). Where they did not, an entry
stamped within the skew of a boundary is listed on the side its place in the chain puts
it, and a statement whose ends the skew reverses is empty (its closing entry is never
before its opening one), so two neighbours may then not chain exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from psycopg import sql

from foundation.currencies import exponent
from foundation.db import is_cancelled, is_lock_timeout
from transfers.models import IdempotencyRecord, LedgerEntry
from transfers.selectors import PinnedExact
from wallets.errors import WalletNotFound

_SQL = Path(__file__).resolve().parent / "sql"
# The wallet's entry at an instant: its last stamped at or before it (< for a period's end).
_LAST_STAMPED = (
    "SELECT id, balance_after FROM transfers_ledgerentry WHERE wallet_id = w.id AND created_at {op} %({at})s"
    " ORDER BY created_at DESC, id DESC LIMIT 1"
)
# Its entry now: its last, by id. ORDER BY is entry_wallet_id_idx's key (wallet_id, id DESC),
# which `= ANY` keeps whole (transfers.selectors.PinnedExact): one seek, even in a generic plan.
_LAST = (
    "SELECT id, balance_after FROM transfers_ledgerentry WHERE wallet_id = ANY(ARRAY[w.id])"
    " ORDER BY wallet_id, id DESC LIMIT 1"
)
_BALANCE_SQL = (_SQL / "balance_at.sql").read_text()
BALANCE_AT_SQL = _BALANCE_SQL.format(entry=_LAST_STAMPED.format(op="<=", at="at"))
BALANCE_NOW_SQL = _BALANCE_SQL.format(entry=_LAST)
_SUMMARY_SQL = (_SQL / "statement_summary.sql").read_text()
STATEMENT_SUMMARY_SQL = _SUMMARY_SQL.format(closing=_LAST_STAMPED.format(op="<", at="to"))
STATEMENT_SUMMARY_NOW_SQL = _SUMMARY_SQL.format(closing=_LAST)
STATEMENT_TOTALS_SQL = (_SQL / "statement_totals.sql").read_text()
STATEMENT_CSV_SQL = (_SQL / "statement_csv.sql").read_text()
# The last entry of a chunk of `skip` + 1 entries after `after` (None: fewer are left): a
# backward range of entry_wallet_id_idx (wallet_id, id DESC), whose order (wallet_id DESC,
# id) is the ORDER BY, so no sort.
CHUNK_END_SQL = (
    "SELECT id FROM transfers_ledgerentry WHERE wallet_id = ANY(ARRAY[%(wallet)s]::uuid[])"
    " AND id > %(after)s AND id <= %(last)s ORDER BY wallet_id DESC, id OFFSET %(skip)s LIMIT 1"
)

# Entries per COPY when a statement is streamed as CSV.
STATEMENT_CHUNK_SIZE = 50_000
# Bytes of CSV gathered before they are handed to the server to send.
CSV_PIECE_BYTES = 64 * 1024


def _not_yours() -> WalletNotFound:
    return WalletNotFound("No wallet with this id belongs to you.")


@dataclass(frozen=True)
class BalanceAt:
    """A user wallet's balance and held money at `at` (minor units)."""

    wallet_id: UUID
    at: datetime
    currency: str
    balance: int
    held: int
    # The last entry the balance counts (None: the wallet had none yet).
    entry_id: int | None

    @property
    def exponent(self) -> int:
        return exponent(self.currency)

    @property
    def available(self) -> int:
        return self.balance - self.held


def balance_at(*, wallet_id: UUID, owner_id: int, at: datetime | None = None) -> BalanceAt:
    """The caller's wallet's balance and held amount at `at` (default: now), in one query.

    Now, or an instant in the future, is answered with the wallet's last entry and pending
    holds (the result's `at` says now): entries that will be stamped before a future
    instant do not exist yet. An instant before the wallet's first entry has a balance of
    0. Cost: one index seek for the balance, whatever the wallet's history; the held
    amount reads the wallet's holds created before `at`.
    WalletNotFound unless the caller owns this user wallet.
    """
    now = timezone.now()
    sql = BALANCE_AT_SQL
    if at is None or at >= now:
        at, sql = now, BALANCE_NOW_SQL
    with connection.cursor() as cursor:
        cursor.execute(sql, {"wallet": wallet_id, "owner": owner_id, "at": at})
        row = cursor.fetchone()
    if row is None:
        raise _not_yours()
    currency, entry_id, balance, held = row
    return BalanceAt(
        wallet_id=wallet_id, at=at, currency=currency, balance=balance, held=int(held), entry_id=entry_id
    )


@dataclass(frozen=True)
class Statement:
    """The figures of a statement of a user wallet for [period_from, period_to).

    The entries are those with `after_entry_id < id <= last_entry_id` (statement_entries,
    statement_csv_chunks). opening_balance + total_in - total_out == closing_balance.
    """

    wallet_id: UUID
    currency: str
    period_from: datetime | None
    period_to: datetime
    opening_balance: int
    closing_balance: int
    total_in: int
    total_out: int
    count: int
    # The opening entry (0: none) and the closing entry (None: the period holds none and
    # nothing came before it).
    after_entry_id: int
    last_entry_id: int | None

    @property
    def exponent(self) -> int:
        return exponent(self.currency)


def statement_get(
    *, wallet_id: UUID, owner_id: int, period_from: datetime | None = None, period_to: datetime | None = None
) -> Statement:
    """The caller's wallet's statement for [period_from, period_to).

    No `period_from`: from the wallet's first entry (opening balance 0). No `period_to`, or
    one in the future: up to now, that is up to the wallet's last entry. Ends are positions
    in the wallet's chain (module docstring). Two queries: the ends (two index seeks), then
    the totals, which read the period's id range once (none if the period has no entry).
    WalletNotFound unless the caller owns this user wallet.
    """
    now = timezone.now()
    sql = STATEMENT_SUMMARY_SQL
    if period_to is None or period_to >= now:
        period_to, sql = now, STATEMENT_SUMMARY_NOW_SQL
    if period_from is not None and period_from > period_to:
        period_from = period_to
    params = {"wallet": wallet_id, "owner": owner_id, "from": period_from, "to": period_to}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            raise _not_yours()
        currency, opening_id, opening, closing_id, closing = row
        count, total_in, total_out = 0, 0, 0
        if closing_id is not None and closing_id != opening_id:
            totals = STATEMENT_TOTALS_SQL.format(after=int(opening_id or 0), last=int(closing_id))
            cursor.execute(totals, {"wallet": wallet_id})
            count, total_in, total_out = cursor.fetchone()
    return Statement(
        wallet_id=wallet_id,
        currency=currency,
        period_from=period_from,
        period_to=period_to,
        opening_balance=opening,
        closing_balance=closing,
        total_in=int(total_in),
        total_out=int(total_out),
        count=count,
        after_entry_id=opening_id or 0,
        last_entry_id=closing_id,
    )


def statement_entries(statement: Statement) -> QuerySet[LedgerEntry]:
    """The statement's entries, for keyset pages ordered by ("-wallet_id", "id"): the order
    of entry_wallet_id_idx (wallet_id, id DESC) read backwards (transfers.selectors.PinnedExact)."""
    if statement.last_entry_id is None:
        return LedgerEntry.objects.none()
    return (
        LedgerEntry.objects.filter(
            PinnedExact(F("wallet_id"), statement.wallet_id),
            id__gt=statement.after_entry_id,
            id__lte=statement.last_entry_id,
        )
        .select_related("transfer")
        .only(
            "id",
            "type",
            "amount",
            "balance_after",
            "transfer_id",
            "created_at",
            "transfer__reference",
            "transfer__description",
        )
    )


def statement_csv_chunks(statement: Statement, *, chunk_size: int | None = None) -> Iterator[bytes]:
    """The statement's entries as CSV rows (no header), oldest first, in pieces of about
    CSV_PIECE_BYTES.

    PostgreSQL writes the rows (COPY ... TO STDOUT: statement_csv.sql), `chunk_size` entries
    per COPY, and psycopg hands them over a message at a time, so the worker's memory holds
    one piece whatever the period's length. Each chunk is its own short statement: no
    transaction, server-side cursor or snapshot stays open across the download (a slow
    client would otherwise hold back vacuum for its duration), and it works the same
    through a transaction-pooling PgBouncer. The chunks need no common snapshot: the entries
    up to the closing one are committed and never change (the ledger is append-only, and a
    wallet's ids commit in order under its lock), so they are exactly the piece the
    statement's figures were taken from.
    """
    if statement.last_entry_id is None:
        return
    chunk_size = chunk_size or STATEMENT_CHUNK_SIZE
    after, last = statement.after_entry_id, statement.last_entry_id
    piece = bytearray()
    while after < last:
        with connection.cursor() as cursor:
            cursor.execute(
                CHUNK_END_SQL,
                {"wallet": statement.wallet_id, "after": after, "last": last, "skip": chunk_size - 1},
            )
            row = cursor.fetchone()
            end = row[0] if row is not None else last
            copy = sql.SQL(STATEMENT_CSV_SQL).format(
                currency=sql.Literal(statement.currency),
                wallet=sql.Literal(str(statement.wallet_id)),
                after=sql.Literal(after),
                last=sql.Literal(end),
            )
            with cursor.cursor.copy(copy) as rows:
                for data in rows:
                    piece += data
                    if len(piece) >= CSV_PIECE_BYTES:
                        yield bytes(piece)
                        piece.clear()
        after = end
    if piece:
        yield bytes(piece)


# --- what happened to a request -------------------------------------------------------------


class KeyStatus:
    COMPLETED = "completed"
    IN_PROGRESS = "in_progress"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class IdempotencyKeyLookup:
    """What the service knows of one of the caller's Idempotency-Keys."""

    key: str
    status: str
    record: IdempotencyRecord | None = None

    @property
    def expires_at(self) -> datetime | None:
        """When the stored answer may be deleted (transfers.idempotency.idempotency_cleanup)."""
        if self.record is None:
            return None
        return self.record.created_at + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


# A request under way has written its idempotency record in its open transaction: the row
# is invisible until it commits, but an INSERT of the same (user, key) waits for it. The
# probe waits this long (at most) before calling the key in progress.
PROBE_WAIT_MS = 50
PROBE_SQL = (
    "INSERT INTO transfers_idempotencyrecord"
    " (user_id, key, method, path, request_hash, status_code, response_body, created_at)"
    " VALUES (%s, %s, '', '', '', 0, ''::bytea, now())"
    " ON CONFLICT (user_id, key) DO NOTHING RETURNING id"
)


class _RollBack(Exception):
    """Leaves the probe's transaction, undoing its INSERT."""


def idempotency_key_lookup(*, user_id: int, key: str) -> IdempotencyKeyLookup:
    """The outcome of the caller's request made with `key`: `completed` (its stored answer
    exists), `in_progress` (a request with it has not committed yet) or `unknown` (neither:
    never used, expired and deleted, or rolled back; a retry with the key is safe).

    Keys are scoped to their user, so another user's key takes exactly the path of a key
    never used: it is `unknown` and costs the same queries. Nothing is ever written: the
    in-progress probe's INSERT is rolled back.
    """
    record = IdempotencyRecord.objects.filter(user_id=user_id, key=key).first()
    if record is not None:
        return IdempotencyKeyLookup(key=key, status=KeyStatus.COMPLETED, record=record)
    status = KeyStatus.UNKNOWN
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{PROBE_WAIT_MS}ms"])
                cursor.execute(PROBE_SQL, [user_id, key])
                inserted = cursor.fetchone() is not None
            if not inserted:  # the request committed while we waited: its answer is there
                status = KeyStatus.COMPLETED
            raise _RollBack
    except _RollBack:
        pass
    except DatabaseError as exc:
        # A lock timeout that fires as the lock is granted is reported as a cancel.
        if not (is_lock_timeout(exc) or is_cancelled(exc)):
            raise
        status = KeyStatus.IN_PROGRESS
    if status == KeyStatus.COMPLETED:
        record = IdempotencyRecord.objects.filter(user_id=user_id, key=key).first()
        if record is None:  # deleted in between by the cleanup: nothing is known any more
            status = KeyStatus.UNKNOWN
    return IdempotencyKeyLookup(key=key, status=status, record=record)
