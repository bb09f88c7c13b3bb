"""The money path's write: one PostgreSQL statement of data-modifying CTEs.

Once the wallets are locked, a movement's rows (the transfer, its two legs, the audit
event, and whatever the caller adds: the idempotency record) and the new balances go
to the server as one statement instead of one per table, so the row locks are held
for one round trip. The deferred constraint triggers still check everything at
COMMIT.

The tables and their column lists are written out here (transfers/tests/
test_statements.py checks each against its model), and each statement's text is built
once per process for each shape of movement and reused. Every value is a bound
parameter; only these constant identifiers and placeholders make up the text.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Model
from psycopg.types.json import Jsonb

from audit.models import AuditEvent
from transfers.models import IdempotencyRecord, LedgerEntry, Transfer


@dataclass(frozen=True)
class Table:
    """A table the statement inserts into: its name and the columns it writes, in order."""

    name: str
    columns: tuple[str, ...]
    json_columns: frozenset[str] = frozenset()

    def values(self, row: Model) -> list[Any]:
        # The columns are the models' attribute names (foreign keys included: `*_id`).
        return [Jsonb(getattr(row, c)) if c in self.json_columns else getattr(row, c) for c in self.columns]

    def placeholders(self) -> str:
        return "(" + ", ".join(["%s"] * len(self.columns)) + ")"


TRANSFERS = Table(
    "transfers_transfer",
    ("id", "kind", "source_wallet_id", "destination_wallet_id", "amount", "currency", "status",
     "reference", "reference_wallet_id", "description", "initiated_by_id", "created_at"),
)  # fmt: skip
# The primary key is left to the sequence: entry ids order a wallet's history.
LEDGER_ENTRIES = Table(
    "transfers_ledgerentry", ("transfer_id", "wallet_id", "type", "amount", "balance_after", "created_at")
)
AUDIT_EVENTS = Table(
    "audit_auditevent",
    ("created_at", "actor_id", "actor_label", "action", "target_type", "target_id", "amount", "currency",
     "outcome", "client_ip", "user_agent", "request_id", "details"),
    json_columns=frozenset({"details"}),
)  # fmt: skip
IDEMPOTENCY_RECORDS = Table(
    "transfers_idempotencyrecord",
    ("user_id", "key", "method", "path", "request_hash", "status_code", "response_body", "transfer_id",
     "created_at"),
)  # fmt: skip

# Which table each model's rows go to.
TABLES: dict[type[Model], Table] = {
    Transfer: TRANSFERS,
    LedgerEntry: LEDGER_ENTRIES,
    AuditEvent: AUDIT_EVENTS,
    IdempotencyRecord: IDEMPOTENCY_RECORDS,
}


@functools.cache
def statement(shape: tuple[tuple[Table, int], ...], balances: int) -> str:
    """The text for inserting `count` rows into each table of `shape`, in order, and
    setting `balances` wallet balances. Built once per shape per process."""
    parts = []
    for index, (table, count) in enumerate(shape):
        values = ", ".join([table.placeholders()] * count)
        insert = " ".join(("INSERT INTO", table.name, "(" + ", ".join(table.columns) + ")", "VALUES", values))
        parts.append(f"i{index} AS ({insert})")
    if balances:
        cases = " ".join(["WHEN %s THEN %s"] * balances)
        ids = ", ".join(["%s"] * balances)
        update = " ".join(
            (
                "UPDATE wallets_wallet SET balance = CASE id",
                cases,
                "END, updated_at = %s WHERE id IN (" + ids + ")",
            )
        )
        parts.append(f"b AS ({update})")
    return "WITH " + ", ".join(parts) + " SELECT 1"


def write(rows: Sequence[Model], *, balances: Sequence[tuple[UUID, int]], updated_at: datetime) -> None:
    """Insert `rows` (grouped by model, in the order given) and store the wallets' new
    `balances` ((wallet id, balance) pairs), in one statement, in the caller's transaction."""
    shape: list[tuple[Table, int]] = []
    params: list[Any] = []
    for row in rows:
        table = TABLES[type(row)]
        if shape and shape[-1][0] is table:
            shape[-1] = (table, shape[-1][1] + 1)
        else:
            shape.append((table, 1))
        params.extend(table.values(row))
    for wallet_id, balance in balances:
        params.extend((wallet_id, balance))
    if balances:
        params.append(updated_at)
        params.extend(wallet_id for wallet_id, _ in balances)
    with connection.cursor() as cursor:
        cursor.execute(statement(tuple(shape), len(balances)), params)
