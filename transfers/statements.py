"""The money path's write: one PostgreSQL statement of data-modifying CTEs.

Once the wallets are locked, a movement's rows (the transfer, its two legs, the audit
events, the outbox's events, and whatever the caller adds: the idempotency record), a
hold's change and the wallets' new state go to the server as one statement instead of one per table, so the
row locks are held for one round trip. The deferred constraint triggers still check
everything at COMMIT.

The tables, their column lists and the SQL types of the columns strings go to are
written out here (transfers/tests/test_statements.py checks each against its model).
Every value is a bound parameter; only these constant identifiers and placeholders make
up the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Model
from psycopg.types.json import Jsonb

from audit.models import AuditEvent
from events.models import Event
from transfers.models import Hold, IdempotencyRecord, LedgerEntry, Transfer


@dataclass(frozen=True)
class Table:
    """A table the statement inserts into: its name and the columns it writes, in order.

    `string_types`: the SQL type (varchar, inet, ...) of each column a Python string is
    written to. PostgreSQL infers a string parameter's type from its column, so equal
    strings share a parameter only among columns of one type (statement()).
    """

    name: str
    columns: tuple[str, ...]
    json_columns: frozenset[str] = frozenset()
    string_types: dict[str, str] = field(default_factory=dict, hash=False)

    def values(self, row: Model) -> list[Any]:
        # The columns are the models' attribute names (foreign keys included: `*_id`).
        return [_json(getattr(row, c)) if c in self.json_columns else getattr(row, c) for c in self.columns]


def _json(value: Any) -> Jsonb:
    # A document already rendered (an event's data: the API's bytes) is sent as it is.
    return value if isinstance(value, Jsonb) else Jsonb(value)


def _varchar(*columns: str) -> dict[str, str]:
    return dict.fromkeys(columns, "varchar")


TRANSFERS = Table(
    "transfers_transfer",
    ("id", "kind", "source_wallet_id", "destination_wallet_id", "amount", "currency", "status",
     "reference", "reference_wallet_id", "description", "initiated_by_id", "refund_of_id", "created_at"),
    string_types=_varchar("kind", "currency", "status", "reference", "description"),
)  # fmt: skip
# The primary key is left to the sequence: entry ids order a wallet's history.
LEDGER_ENTRIES = Table(
    "transfers_ledgerentry",
    ("transfer_id", "wallet_id", "type", "amount", "balance_after", "created_at", "entry_hash"),
    string_types=_varchar("type"),
)
HOLDS = Table(
    "transfers_hold",
    ("id", "wallet_id", "amount", "captured_amount", "currency", "status", "expires_at", "reference",
     "description", "created_by_id", "capture_transfer_id", "created_at", "finished_at"),
    string_types=_varchar("currency", "status", "reference", "description"),
)  # fmt: skip
AUDIT_EVENTS = Table(
    "audit_auditevent",
    ("created_at", "actor_id", "actor_label", "action", "target_type", "target_id", "amount", "currency",
     "outcome", "client_ip", "user_agent", "request_id", "details"),
    json_columns=frozenset({"details"}),
    string_types={
        **_varchar("actor_label", "action", "target_type", "target_id", "currency", "outcome", "user_agent",
                   "request_id"),
        "client_ip": "inet",
    },
)  # fmt: skip
# The outbox (events app); its primary key, the sequence, orders events.
EVENTS = Table(
    "events_event",
    ("uuid", "type", "created_at", "wallet_id", "owner_id", "data"),
    json_columns=frozenset({"data"}),
    string_types=_varchar("type"),
)
IDEMPOTENCY_RECORDS = Table(
    "transfers_idempotencyrecord",
    ("user_id", "key", "method", "path", "request_hash", "status_code", "response_body", "transfer_id",
     "created_at"),
    string_types=_varchar("key", "method", "path", "request_hash"),
)  # fmt: skip

# Which table each model's rows go to.
TABLES: dict[type[Model], Table] = {
    Transfer: TRANSFERS,
    LedgerEntry: LEDGER_ENTRIES,
    AuditEvent: AUDIT_EVENTS,
    IdempotencyRecord: IDEMPOTENCY_RECORDS,
    Hold: HOLDS,
    Event: EVENTS,
}
# The rows a statement may change, by primary key: the table and the columns it sets. A
# hold changes once, from pending, in what its end records (transfers.0007's trigger).
CHANGES: dict[type[Model], Table] = {
    Hold: Table(
        "transfers_hold",
        ("status", "captured_amount", "capture_transfer_id", "finished_at"),
        string_types=_varchar("status"),
    ),
}


@dataclass(frozen=True)
class WalletUpdate:
    """A locked user wallet's new state; None leaves a column as it is."""

    wallet_id: UUID
    balance: int | None = None
    held: int | None = None
    # (UTC day, total that left the wallet that day): what the daily limit counts.
    outgoing: tuple[date, int] | None = None
    # (head_hash, entry_count): the wallet's hash chain after its new entry (transfers.ledger_chain).
    head: tuple[bytes, int] | None = None


def statement(
    rows: Sequence[Model],
    *,
    wallets: Sequence[WalletUpdate] = (),
    updates: Sequence[Model] = (),
    updated_at: datetime,
) -> tuple[str, dict[str, Any]]:
    """The text and named parameters that insert `rows` (grouped by model, in the order
    given), change `updates` (saved instances of CHANGES' models, by primary key) and set
    the `wallets`' new state (with `updated_at`).

    Equal uuid, timestamp, date, integer and bytea values share one parameter (a transfer's id,
    its time, its amount and its wallets each appear several times). Those types are
    stated by the client, so one parameter can serve every column it appears in. Strings,
    whose type PostgreSQL infers from the column, share only among columns of one type
    (Table.string_types; varchar: two audit rows' action, currency and outcome, the
    transfer's currency, two events' type), where the inferred type is the same; a string
    in a column of no declared type and NULLs never share. Sharing keeps a
    movement's statement under the 50 parameters up to which psycopg caches how it
    converts a statement's text, so the text is parsed once per process, not per call.
    """
    params: dict[str, Any] = {}
    names: dict[tuple[type, Any], str] = {}

    def placeholder(value: Any, column_type: str | None = None) -> str:
        if type(value) in _SHARED_TYPES:
            key: tuple | None = (type(value), value)
        elif isinstance(value, str) and column_type is not None:
            key = (str, column_type, value)  # columns of one type: PostgreSQL infers it alike
        else:
            key = None
        name = names.get(key) if key is not None else None
        if name is None:
            name = f"p{len(params)}"
            params[name] = value
            if key is not None:
                names[key] = name
        return f"%({name})s"

    parts = []
    for index, (table, group) in enumerate(_grouped(rows)):
        values = ", ".join(
            "("
            + ", ".join(
                placeholder(v, table.string_types.get(c))
                for c, v in zip(table.columns, table.values(row), strict=True)
            )
            + ")"
            for row in group
        )
        insert = " ".join(("INSERT INTO", table.name, "(" + ", ".join(table.columns) + ")", "VALUES", values))
        parts.append(f"i{index} AS ({insert})")
    for index, row in enumerate(updates):
        table = CHANGES[type(row)]
        values = zip(table.columns, table.values(row), strict=True)
        sets = ", ".join(
            f"{column} = {placeholder(value, table.string_types.get(column))}" for column, value in values
        )
        update = " ".join(("UPDATE", table.name, "SET", sets, "WHERE id =", placeholder(row.pk)))
        parts.append(f"u{index} AS ({update})")
    if wallets:
        parts.append(f"b AS ({_wallets_update(wallets, updated_at, placeholder)})")
    return "WITH " + ", ".join(parts) + " SELECT 1", params


def _wallets_update(wallets: Sequence[WalletUpdate], updated_at: datetime, placeholder: Any) -> str:
    """UPDATE wallets_wallet SET <column> = CASE id WHEN <id> THEN <value> ... END, ...: one
    CASE per column some wallet changes (the others keep theirs: ELSE <column>)."""
    columns = {
        "balance": [(w.wallet_id, w.balance) for w in wallets if w.balance is not None],
        "held": [(w.wallet_id, w.held) for w in wallets if w.held is not None],
        "outgoing_day": [(w.wallet_id, w.outgoing[0]) for w in wallets if w.outgoing is not None],
        "outgoing_today": [(w.wallet_id, w.outgoing[1]) for w in wallets if w.outgoing is not None],
        "head_hash": [(w.wallet_id, w.head[0]) for w in wallets if w.head is not None],
        "entry_count": [(w.wallet_id, w.head[1]) for w in wallets if w.head is not None],
    }
    sets = []
    for column, values in columns.items():
        if not values:
            continue
        cases = " ".join(f"WHEN {placeholder(w)} THEN {placeholder(v)}" for w, v in values)
        rest = "" if len(values) == len(wallets) else f" ELSE {column}"
        sets.append(f"{column} = CASE id {cases}{rest} END")
    sets.append(f"updated_at = {placeholder(updated_at)}")
    ids = ", ".join(placeholder(w.wallet_id) for w in wallets)
    return " ".join(("UPDATE wallets_wallet SET", ", ".join(sets), "WHERE id IN (" + ids + ")"))


def write(
    rows: Sequence[Model],
    *,
    wallets: Sequence[WalletUpdate] = (),
    updates: Sequence[Model] = (),
    updated_at: datetime,
) -> None:
    """Run statement(): the rows, the changes and the wallets' new state in one statement,
    in the caller's transaction."""
    sql, params = statement(rows, wallets=wallets, updates=updates, updated_at=updated_at)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# Types psycopg sends with their PostgreSQL type (uuid, timestamptz, date, an integer type,
# bytea: an entry's hash is also its wallet's new head; jsonb: a rendered document two
# events carry is bound once, its instance being its key).
_SHARED_TYPES = frozenset({UUID, datetime, date, int, bytes, Jsonb})


def _grouped(rows: Sequence[Model]) -> list[tuple[Table, list[Model]]]:
    """Consecutive rows of one model become one INSERT of several rows."""
    groups: list[tuple[Table, list[Model]]] = []
    for row in rows:
        table = TABLES[type(row)]
        if groups and groups[-1][0] is table:
            groups[-1][1].append(row)
        else:
            groups.append((table, [row]))
    return groups
