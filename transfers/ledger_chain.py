"""The tamper-evident ledger: each user wallet's entries form a SHA-256 hash chain, and a
daily checkpoint records every wallet's chain head with one root hash over them.

- `entry_hash = SHA-256(previous entry_hash of the wallet || encoding of the entry)`,
  the encoding being the entry's fields as ASCII text in a fixed order, separated by
  `|` (entry_encoding; docs/ledger.md is the specification an auditor works from). The
  first entry's previous hash is 32 zero bytes. The wallet row keeps the head
  (`head_hash`, `entry_count`), so the money path computes the next link from the row it
  has locked anyway (link(), called by transfers.services) and writes it in its one
  statement: no extra read, lock or round trip.
- System and adjustment wallets are not chained: they are never locked (wallets.locks),
  and a chain needs one writer at a time. Each of their legs is the negation of a user
  leg whose hash covers the same transfer id and amount, and the legs of a transfer
  must sum to zero (the deferred triggers, reconciliation), so they cannot change alone.
- ledger_checkpoint_create() records, in one REPEATABLE READ snapshot (no wallet is
  locked), each user wallet whose chain grew since it was last checkpointed, and a root
  hash chained to the previous checkpoint's; the root is logged and exported as metrics,
  so a copy leaves the database.
- ledger_verify() recomputes chains, heads, checkpoints and roots and reports the first
  thing that does not match on each wallet (`manage.py verify_ledger`; reconciliation
  calls chain_discrepancies() for the wallets in scope).

A superuser can still rewrite any row; what they cannot do is rewrite history that a
checkpoint's root, kept outside the database, already covers without it being noticed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from django.db import connection, transaction

from foundation.metrics import registry as metrics
from transfers.models import (
    Discrepancy,
    LedgerCheckpoint,
    LedgerCheckpointWallet,
    LedgerEntry,
    ReconciliationRun,
)
from wallets.models import Wallet

logger = logging.getLogger(__name__)

GENESIS = bytes(32)  # the previous hash of a wallet's first entry, and of the first checkpoint
SEPARATOR = "|"  # no field's text can contain it (digits, '-', lowercase hex, [a-z_])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
BATCH = 5000  # entries read per query when walking a chain


def micros(moment: datetime) -> int:
    """A timestamp as whole microseconds since 1970-01-01T00:00:00Z (PostgreSQL's precision)."""
    return (moment - _EPOCH) // _MICROSECOND


def entry_encoding(
    *,
    wallet_id: UUID,
    position: int,
    transfer_id: UUID,
    type: str,
    amount: int,
    balance_after: int,
    created_at: datetime,
) -> bytes:
    """The entry's canonical text: wallet id, position in the wallet's chain (1 = first),
    transfer id, type, signed amount, balance after, time in UTC microseconds, joined by '|'.

    UUIDs lowercase with hyphens, integers in decimal ('-' for negative). The entry's own
    id is not part of it: the sequence assigns it at the insert, after the hash is made;
    the position (the wallet's entry_count after the entry) orders the chain instead.
    """
    return SEPARATOR.join(
        (
            str(wallet_id),
            str(position),
            str(transfer_id),
            type,
            str(amount),
            str(balance_after),
            str(micros(created_at)),
        )
    ).encode("ascii")


def entry_digest(previous: bytes, encoding: bytes) -> bytes:
    return hashlib.sha256(previous + encoding).digest()


def link(wallet: Wallet, entry: LedgerEntry) -> tuple[bytes, int] | None:
    """Chain `entry` (a new leg on the locked user `wallet`) onto the wallet's head.

    Sets `entry.entry_hash` and the wallet's `head_hash` and `entry_count`, and returns the
    new (head_hash, entry_count) for the wallet's update; None, and nothing set, for a
    wallet from before the chain that the backfill has not linked yet.
    """
    if wallet.entry_count is None:
        return None
    position = wallet.entry_count + 1
    digest = entry_digest(
        bytes(wallet.head_hash) if wallet.head_hash is not None else GENESIS,
        entry_encoding(
            wallet_id=wallet.id,
            position=position,
            transfer_id=entry.transfer_id,
            type=entry.type,
            amount=entry.amount,
            balance_after=entry.balance_after,
            created_at=entry.created_at,
        ),
    )
    entry.entry_hash = wallet.head_hash = digest
    wallet.entry_count = position
    return digest, position


# --- checkpoints ---------------------------------------------------------------------


def checkpoint_root(previous_root: bytes, heads: Iterable[tuple[UUID, int, bytes]]) -> bytes:
    """SHA-256 of the previous checkpoint's root (GENESIS for the first) followed by one
    line per wallet, sorted by wallet id: `<wallet id>|<entry count>|<head hash hex>\\n`."""
    lines = sorted(f"{wallet_id}|{count}|{bytes(head).hex()}\n" for wallet_id, count, head in heads)
    return hashlib.sha256(previous_root + "".join(lines).encode("ascii")).digest()


# User wallets whose chain is not checkpointed at its current length, with their last entry.
_CHANGED_HEADS_SQL = """
SELECT w.id, w.entry_count, w.head_hash,
       (SELECT e.id FROM transfers_ledgerentry e WHERE e.wallet_id = w.id ORDER BY e.id DESC LIMIT 1)
  FROM wallets_wallet w
 WHERE w.kind = 'user' AND w.entry_count > 0
   AND NOT EXISTS (SELECT 1 FROM transfers_ledgercheckpointwallet c
                    WHERE c.wallet_id = w.id AND c.entry_count = w.entry_count)
 ORDER BY w.id
"""


def ledger_checkpoint_create() -> LedgerCheckpoint:
    """Record the chain head of every user wallet that changed since it was last
    checkpointed, and the root hash over them; log the root and export it as metrics.

    Reads every head in one REPEATABLE READ snapshot: a wallet's head, count and last
    entry were committed together, so they agree, and no wallet is locked (movements go
    on). Transaction: its own. Two runs at once: the second fails on the unique
    `previous` and changes nothing. A checkpoint with no wallet still extends the chain
    of roots (a day without movements is recorded as such).
    """
    with transaction.atomic(durable=True):
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            previous = LedgerCheckpoint.objects.order_by("-id").first()
            cursor.execute(_CHANGED_HEADS_SQL)
            heads = cursor.fetchall()
        previous_root = bytes(previous.root_hash) if previous is not None else GENESIS
        root = checkpoint_root(previous_root, ((w, count, head) for w, count, head, _ in heads))
        checkpoint = LedgerCheckpoint.objects.create(
            previous=previous, wallet_count=len(heads), root_hash=root
        )
        LedgerCheckpointWallet.objects.bulk_create(
            LedgerCheckpointWallet(
                checkpoint=checkpoint,
                wallet_id=wallet_id,
                entry_count=count,
                head_hash=bytes(head),
                last_entry_id=last_entry_id,
            )
            for wallet_id, count, head, last_entry_id in heads
        )
    logger.info(
        "ledger checkpoint %s: %s wallets, root %s",
        checkpoint.id,
        checkpoint.wallet_count,
        root.hex(),
        extra={
            "event": "ledger_checkpoint",
            "checkpoint_id": checkpoint.id,
            "wallets": checkpoint.wallet_count,
            "root_hash": root.hex(),
            "previous_root_hash": previous_root.hex(),
        },
    )
    metrics.record_ledger_checkpoint(
        checkpoint_id=checkpoint.id,
        root=root,
        created_at=checkpoint.created_at,
        wallets=checkpoint.wallet_count,
    )
    return checkpoint


# --- verification --------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    """The first thing on one wallet (or checkpoint) that does not match its recomputation."""

    detail: str
    wallet_id: UUID | None = None
    entry_id: int | None = None
    position: int | None = None  # the entry's place in the wallet's chain (1 = first)
    checkpoint_id: int | None = None
    verified: int = 0  # entries of the wallet that matched before it


@dataclass
class Verification:
    wallets_checked: int = 0
    entries_checked: int = 0
    checkpoints_checked: int = 0
    unlinked_wallets: int = 0  # from before the chain, not backfilled yet
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


_ENTRIES_SQL = (
    "SELECT id, transfer_id, type, amount, balance_after, created_at, entry_hash"
    " FROM transfers_ledgerentry WHERE wallet_id = %s AND id > %s ORDER BY id LIMIT %s"
)


def _entries(wallet_id: UUID, after_id: int) -> Iterator[tuple]:
    """The wallet's entries after `after_id`, in id order, BATCH at a time (keyset)."""
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_ENTRIES_SQL, [wallet_id, after_id, BATCH])
            rows = cursor.fetchall()
        yield from rows
        if len(rows) < BATCH:
            return
        after_id = rows[-1][0]


def _verify_wallet(
    wallet: tuple[UUID, int | None, bytes | None],
    items: list[tuple[int, int, bytes, int]],
    start: tuple[int, bytes, int] | None,
    result: Verification,
) -> ChainBreak | None:
    """Walk one wallet's chain from `start` ((position, hash, entry id) of a trusted
    checkpoint) or from its first entry; check every entry, the checkpoint `items`
    ((checkpoint id, entry count, head hash, last entry id)) and the wallet's head."""
    wallet_id, entry_count, head_hash = wallet
    if entry_count is None:
        result.unlinked_wallets += 1
        if items:
            return ChainBreak(
                f"wallet {wallet_id} has checkpointed heads but no chain (entry_count is NULL)",
                wallet_id=wallet_id,
                checkpoint_id=items[0][0],
            )
        return None
    position, previous, after_id = start if start is not None else (0, GENESIS, 0)
    if start is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT entry_hash FROM transfers_ledgerentry WHERE id = %s AND wallet_id = %s",
                [after_id, wallet_id],
            )
            row = cursor.fetchone()
        if row is None or row[0] is None or bytes(row[0]) != previous:
            return ChainBreak(
                f"entry {after_id}, #{position} of wallet {wallet_id} at the starting checkpoint, "
                + ("is missing" if row is None else "does not carry the checkpointed hash"),
                wallet_id=wallet_id,
                entry_id=after_id,
                position=position,
            )
    expected = {count: (checkpoint_id, head, last_id) for checkpoint_id, count, head, last_id in items}
    verified = 0
    for entry_id, transfer_id, type_, amount, balance_after, created_at, stored in _entries(
        wallet_id, after_id
    ):
        position += 1
        result.entries_checked += 1
        computed = entry_digest(
            previous,
            entry_encoding(
                wallet_id=wallet_id,
                position=position,
                transfer_id=transfer_id,
                type=type_,
                amount=amount,
                balance_after=balance_after,
                created_at=created_at,
            ),
        )
        if stored is None or bytes(stored) != computed:
            return ChainBreak(
                f"entry {entry_id}, #{position} of wallet {wallet_id}: stored hash "
                f"{bytes(stored).hex() if stored is not None else 'NULL'} != recomputed {computed.hex()}",
                wallet_id=wallet_id,
                entry_id=entry_id,
                position=position,
                verified=verified,
            )
        checkpointed = expected.get(position)
        if checkpointed is not None and (bytes(checkpointed[1]) != computed or checkpointed[2] != entry_id):
            return ChainBreak(
                f"entry {entry_id}, #{position} of wallet {wallet_id} does not match checkpoint "
                f"{checkpointed[0]}, which recorded entry {checkpointed[2]} "
                f"with head {bytes(checkpointed[1]).hex()}",
                wallet_id=wallet_id,
                entry_id=entry_id,
                position=position,
                checkpoint_id=checkpointed[0],
                verified=verified,
            )
        previous = computed
        verified += 1
    beyond = [(checkpoint_id, count) for checkpoint_id, count, _, _ in items if count > position]
    if beyond:
        checkpoint_id, count = beyond[0]
        return ChainBreak(
            f"wallet {wallet_id} has {position} entries but checkpoint {checkpoint_id} recorded {count}",
            wallet_id=wallet_id,
            position=position,
            checkpoint_id=checkpoint_id,
            verified=verified,
        )
    if entry_count != position or (bytes(head_hash) if head_hash is not None else GENESIS) != previous:
        return ChainBreak(
            f"wallet {wallet_id}'s head ({entry_count} entries, "
            f"{bytes(head_hash).hex() if head_hash is not None else 'NULL'}) != its chain "
            f"({position} entries, {previous.hex() if position else 'none'})",
            wallet_id=wallet_id,
            position=position,
            verified=verified,
        )
    return None


def _verify_roots(since_checkpoint_id: int | None, result: Verification) -> None:
    """Recompute each checkpoint's root from its wallets and its predecessor's root."""
    checkpoints = LedgerCheckpoint.objects.order_by("id")
    previous_root = GENESIS
    if since_checkpoint_id is not None:
        before = LedgerCheckpoint.objects.filter(id__lt=since_checkpoint_id).order_by("-id").first()
        previous_root = bytes(before.root_hash) if before is not None else GENESIS
        checkpoints = checkpoints.filter(id__gte=since_checkpoint_id)
    previous_id = None
    for checkpoint in checkpoints.iterator():
        result.checkpoints_checked += 1
        heads = LedgerCheckpointWallet.objects.filter(checkpoint=checkpoint).values_list(
            "wallet_id", "entry_count", "head_hash"
        )
        root = checkpoint_root(previous_root, heads)
        if root != bytes(checkpoint.root_hash) or (
            previous_id is not None and checkpoint.previous_id != previous_id
        ):
            result.breaks.append(
                ChainBreak(
                    f"checkpoint {checkpoint.id}: stored root {bytes(checkpoint.root_hash).hex()} "
                    f"!= recomputed {root.hex()} (its wallets or an earlier checkpoint changed)",
                    checkpoint_id=checkpoint.id,
                )
            )
            return
        previous_root, previous_id = root, checkpoint.id


def ledger_verify(
    *,
    wallet_ids: Iterable[UUID] | None = None,
    since_checkpoint_id: int | None = None,
    known_roots: dict[int, bytes] | None = None,
) -> Verification:
    """Recompute the chains of the user wallets in scope (all by default) and check them
    against their stored hashes, their heads and their checkpoints; recompute the roots of
    the checkpoints (all, or from `since_checkpoint_id`) unless a wallet list is given.

    With `since_checkpoint_id`, each wallet's walk starts at its head as of that
    checkpoint (its latest record at or before it), trusting what that root covers.
    `known_roots` ({checkpoint id: root}) are roots held outside the database (the log
    line, the metric); each stored root must equal its copy. Reads only; no lock.
    Reports at most one break per wallet: the first.
    """
    result = Verification()
    for checkpoint_id, root in sorted((known_roots or {}).items()):
        stored = LedgerCheckpoint.objects.filter(id=checkpoint_id).values_list("root_hash", flat=True).first()
        if stored is None or bytes(stored) != root:
            result.breaks.append(
                ChainBreak(
                    f"checkpoint {checkpoint_id}: stored root "
                    f"{bytes(stored).hex() if stored is not None else '(missing)'} != the root held outside "
                    f"the database {root.hex()}",
                    checkpoint_id=checkpoint_id,
                )
            )
    wallets = Wallet.objects.filter(kind=Wallet.Kind.USER).order_by("id")
    if wallet_ids is not None:
        wallets = wallets.filter(id__in=list(wallet_ids))
    else:
        _verify_roots(since_checkpoint_id, result)
    for wallet_id in list(wallets.values_list("id", flat=True)):
        with _snapshot():
            found = _verify_one(wallet_id, since_checkpoint_id, result)
        if found is not None:
            result.breaks.append(found)
    return result


@contextmanager
def _snapshot() -> Iterator[None]:
    """One wallet's head, checkpoints and entries read in one REPEATABLE READ snapshot, so
    a movement committing meanwhile (a new entry and a new head) is seen whole or not at
    all and cannot pass for a break. Inside a caller's transaction, that one's view."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _verify_one(wallet_id: UUID, since_checkpoint_id: int | None, result: Verification) -> ChainBreak | None:
    wallet = Wallet.objects.filter(id=wallet_id).values_list("id", "entry_count", "head_hash").first()
    if wallet is None:
        return None
    result.wallets_checked += 1
    records = list(
        LedgerCheckpointWallet.objects.filter(wallet_id=wallet_id)
        .order_by("entry_count", "checkpoint_id")
        .values_list("checkpoint_id", "entry_count", "head_hash", "last_entry_id")
    )
    start = None
    if since_checkpoint_id is not None:
        trusted = [r for r in records if r[0] <= since_checkpoint_id]
        if trusted:
            _, count, head, last_id = max(trusted, key=lambda r: r[0])
            start = (count, bytes(head), last_id)
        records = [r for r in records if r[0] > since_checkpoint_id]
    return _verify_wallet(wallet, records, start, result)


def chain_discrepancies(
    *, run: ReconciliationRun, wallet_ids: Iterable[UUID], full: bool = False
) -> list[Discrepancy]:
    """Reconciliation's view of ledger_verify for its wallets: one unsaved Discrepancy
    (kind chain_broken) per wallet whose chain breaks; `expected` is the position of the
    entry (or count) that breaks, `actual` how many entries verified before it.

    By default each wallet is walked from its head at the latest checkpoint (what came
    since, and that the checkpointed entry still carries its hash), so a frequent run
    reads only new entries; `full` walks every chain from its first entry.
    """
    since = None
    if not full:
        since = LedgerCheckpoint.objects.order_by("-id").values_list("id", flat=True).first()
    found = []
    for item in ledger_verify(wallet_ids=wallet_ids, since_checkpoint_id=since).breaks:
        found.append(
            Discrepancy(
                run=run,
                kind=Discrepancy.Kind.CHAIN_BROKEN,
                wallet_id=item.wallet_id,
                entry_id=item.entry_id,
                expected=item.position or 0,
                actual=item.verified,
                detail=item.detail[:255],
            )
        )
    return found


def ledger_chain_backfill(*, wallet_ids: Iterable[UUID] | None = None) -> int:
    """Link the wallets from before the chain (entry_count NULL): hash their entries in id
    order and set their head. One short transaction per wallet, under its row lock (the
    money path's lock, so no movement on it runs meanwhile). Returns how many it linked.

    Run it once every process runs the code that chains (an older release would append
    unhashed entries after the head); the new code leaves unlinked wallets unchained.
    Needs UPDATE on transfers_ledgerentry (the owner role; the entry guard of
    transfers.0011 allows only setting a missing entry_hash).
    """
    candidates = Wallet.objects.filter(kind=Wallet.Kind.USER, entry_count__isnull=True).order_by("id")
    if wallet_ids is not None:
        candidates = candidates.filter(id__in=list(wallet_ids))
    linked = 0
    for wallet_id in list(candidates.values_list("id", flat=True)):
        with transaction.atomic():
            locked = (
                Wallet.objects.select_for_update(no_key=True)
                .filter(id=wallet_id, entry_count__isnull=True)
                .values_list("id", flat=True)
                .first()
            )
            if locked is None:
                continue
            position, previous = 0, GENESIS
            hashes = []
            for entry_id, transfer_id, type_, amount, balance_after, created_at, _ in _entries(wallet_id, 0):
                position += 1
                previous = entry_digest(
                    previous,
                    entry_encoding(
                        wallet_id=wallet_id,
                        position=position,
                        transfer_id=transfer_id,
                        type=type_,
                        amount=amount,
                        balance_after=balance_after,
                        created_at=created_at,
                    ),
                )
                hashes.append((entry_id, previous))
            with connection.cursor() as cursor:
                for start in range(0, len(hashes), BATCH):
                    chunk = hashes[start : start + BATCH]
                    cursor.execute(
                        "UPDATE transfers_ledgerentry e SET entry_hash = v.h"
                        " FROM unnest(%s::bigint[], %s::bytea[]) AS v(id, h)"
                        " WHERE e.id = v.id AND e.entry_hash IS NULL",
                        [[i for i, _ in chunk], [h for _, h in chunk]],
                    )
            Wallet.objects.filter(id=wallet_id).update(
                head_hash=previous if position else None, entry_count=position
            )
            linked += 1
    return linked
