"""Writing a whole movement in one PostgreSQL statement.

After the wallets are locked, the transfer, its two legs, the new balances and the
audit event go to the server as one statement of data-modifying CTEs instead of
four: the row locks are held for one round trip instead of four. The deferred
constraint triggers still check everything at COMMIT. Column lists and value
adaptation come from the models' own fields, so a model change cannot silently
desynchronise this SQL from the ORM.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from django.db import connection
from django.db.models import Model

from wallets.models import Wallet


def _insert(instances: Sequence[Model]) -> tuple[str, list]:
    """INSERT ... VALUES for unsaved instances of one model (auto primary keys left to the database)."""
    meta = instances[0]._meta
    fields = [
        f for f in meta.concrete_fields if not (f.primary_key and getattr(instances[0], f.attname) is None)
    ]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    rows, params = [], []
    for instance in instances:
        rows.append("(" + ", ".join(["%s"] * len(fields)) + ")")
        params.extend(f.get_db_prep_save(getattr(instance, f.attname), connection) for f in fields)
    # Identifiers come from model metadata and are quoted; every value is a bound parameter.
    table = connection.ops.quote_name(meta.db_table)
    values = ", ".join(rows)
    sql = f"INSERT INTO {table} ({columns}) VALUES {values}"  # noqa: S608  # nosec
    return sql, params


class Statement:
    """One statement of data-modifying CTEs, assembled part by part and sent once."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list = []

    def insert(self, instances: Sequence[Model]) -> None:
        sql, values = _insert(instances)
        self.parts.append(f"q{len(self.parts)} AS ({sql})")
        self.params.extend(values)

    def update_balances(self, wallets: Sequence[Wallet], now: datetime) -> None:
        cases = " ".join("WHEN %s THEN %s" for _ in wallets)
        ids = ", ".join("%s" for _ in wallets)
        # Only placeholders are interpolated here.
        update = f"UPDATE wallets_wallet SET balance = CASE id {cases} END"  # noqa: S608  # nosec
        update += f", updated_at = %s WHERE id IN ({ids})"
        self.parts.append(f"q{len(self.parts)} AS ({update})")
        for wallet in wallets:
            self.params.extend([wallet.id, wallet.balance])
        self.params.append(now)
        self.params.extend(wallet.id for wallet in wallets)

    def execute(self) -> None:
        if self.parts:
            with connection.cursor() as cursor:
                cursor.execute("WITH " + ", ".join(self.parts) + " SELECT 1", self.params)


_pending: ContextVar[Statement | None] = ContextVar("wallet_pending_statement", default=None)


@contextmanager
def one_statement() -> Iterator[Statement | None]:
    """Collect the writes made inside (write_movement, insert_later) and send them as one statement.

    The statement goes out when the block ends without an exception, so it must
    be inside the transaction the writes belong to. Yields None, and changes
    nothing, on databases without data-modifying CTEs (SQLite).
    """
    if connection.vendor != "postgresql" or _pending.get() is not None:
        yield _pending.get()
        return
    statement = Statement()
    token = _pending.set(statement)
    try:
        yield statement
    finally:
        _pending.reset(token)
    statement.execute()


def insert_later(instance: Model) -> None:
    """Insert `instance` with the enclosing one_statement(), or now if there is none."""
    statement = _pending.get()
    if statement is None:
        instance.save(force_insert=True)
    else:
        statement.insert([instance])


def write_movement(
    *,
    transfer: Model,
    entries: Sequence[Model],
    wallets: Sequence[Wallet],
    audit: Model,
    now: datetime,
) -> None:
    """Insert the transfer, its legs and the audit event, and store the new balances, in one statement.

    Inside one_statement() the parts join that statement instead of going out now.
    """
    with one_statement() as statement:
        statement.insert([transfer])
        statement.insert(entries)
        statement.insert([audit])
        if wallets:
            statement.update_balances(wallets, now)
