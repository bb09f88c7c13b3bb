"""The money path's one write statement (transfers.statements): its tables, its text, its parameters.

The column lists, and the SQL types of the columns strings go to, are written out by hand
in transfers/statements.py (production code reads no model metadata); these tests hold
them to the models, so a model change cannot silently desynchronise the SQL.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection, models
from django.utils import timezone

from audit.models import AuditEvent
from events.models import Event
from transfers import statements
from transfers.models import Hold, IdempotencyRecord, LedgerEntry, Transfer
from transfers.statements import (
    AUDIT_EVENTS,
    CHANGES,
    HOLDS,
    IDEMPOTENCY_RECORDS,
    LEDGER_ENTRIES,
    TABLES,
    TRANSFERS,
    Table,
    WalletUpdate,
    statement,
)
from wallets.models import Wallet


def written_columns(model: type[models.Model]) -> list[str]:
    """The model's concrete columns (attribute names: `*_id` for foreign keys), less an
    auto-increment primary key, which the table's sequence fills in."""
    return [
        field.attname
        for field in model._meta.concrete_fields
        if not (field.primary_key and isinstance(field, models.AutoField | models.BigAutoField))
    ]


@pytest.mark.parametrize(
    "model", [Transfer, LedgerEntry, AuditEvent, IdempotencyRecord, Hold, Event], ids=lambda m: m.__name__
)
def test_each_tables_columns_are_its_models_columns_less_an_auto_increment_key(model):
    table = TABLES[model]

    assert table.name == model._meta.db_table
    assert len(set(table.columns)) == len(table.columns), table.columns
    assert sorted(table.columns) == sorted(written_columns(model))
    json_fields = {f.attname for f in model._meta.concrete_fields if isinstance(f, models.JSONField)}
    assert table.json_columns == json_fields


# The column types psycopg states for the values the money path writes there (uuid, datetime,
# date, int, bytes, Jsonb): no string goes to these columns, so they declare no string type.
CLIENT_TYPED = {"uuid", "timestamp with time zone", "date", "smallint", "integer", "bigint", "bytea", "jsonb"}


@pytest.mark.parametrize(
    ("model", "table"),
    [*TABLES.items(), *CHANGES.items()],
    ids=lambda value: value.__name__ if isinstance(value, type) else value.name,
)
def test_each_column_a_string_goes_to_declares_its_models_sql_type(model, table):
    fields = {field.attname: field for field in model._meta.concrete_fields}
    types = {column: fields[column].db_type(connection).split("(")[0] for column in table.columns}

    assert table.string_types == {column: t for column, t in types.items() if t not in CLIENT_TYPED}


def test_equal_strings_share_a_parameter_only_among_columns_of_one_type():
    # An inet and a varchar column may get the same text; PostgreSQL must not infer one type for both.
    now = timezone.now()
    address = "203.0.113.7"
    first = AuditEvent(
        action="money.deposit", currency="USD", client_ip=address, user_agent=address, created_at=now
    )
    second = AuditEvent(
        action="money.deposit", currency="USD", client_ip=address, user_agent="x", created_at=now
    )

    text, params = statement([first, second], updated_at=now)

    assert [value for value in params.values() if value == address] == [address, address]
    assert [value for value in params.values() if value == "money.deposit"] == ["money.deposit"]
    assert [value for value in params.values() if value == "USD"] == ["USD"]
    assert set(re.findall(r"%\((\w+)\)s", text)) == set(params)


def test_the_transfers_uuid_key_is_written_and_the_ledgers_sequence_key_is_not():
    # A transfer's id is made in Python (the response and the idempotency record name it
    # before the write); an entry's comes from the sequence, which orders a wallet's history.
    assert "id" in TRANSFERS.columns
    assert "id" not in LEDGER_ENTRIES.columns
    assert "id" not in AUDIT_EVENTS.columns
    assert "id" not in IDEMPOTENCY_RECORDS.columns
    assert "id" in HOLDS.columns  # made in Python, like a transfer's


def test_tables_cover_exactly_the_models_the_money_path_writes():
    assert set(TABLES) == {Transfer, LedgerEntry, AuditEvent, IdempotencyRecord, Hold, Event}
    assert {table.name for table in TABLES.values()} == {
        "transfers_transfer",
        "transfers_ledgerentry",
        "audit_auditevent",
        "transfers_idempotencyrecord",
        "transfers_hold",
        "events_event",
    }


def test_a_hold_changes_only_in_what_its_end_records():
    # transfers.0007's trigger refuses any other column changing; the statement never tries.
    assert set(CHANGES) == {Hold}
    change = CHANGES[Hold]
    assert change.name == Hold._meta.db_table
    assert change.columns == ("status", "captured_amount", "capture_transfer_id", "finished_at")
    assert set(change.columns) <= set(written_columns(Hold))


def ctes(text: str) -> list[str]:
    """The names of the statement's common table expressions, in order."""
    return re.findall(r"(?:WITH|,) (\w+) AS \(", text)


def movement_rows(kind: str = "deposit") -> tuple[list[models.Model], list[WalletUpdate], object]:
    """The rows a deposit (or transfer) writes, sharing ids, time and amount as the service's do."""
    now = timezone.now()
    transfer_id, user_wallet, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    source, destination = (other, user_wallet) if kind == "deposit" else (user_wallet, other)
    transfer = Transfer(
        id=transfer_id, kind=kind, source_wallet_id=source, destination_wallet_id=destination, amount=250,
        currency="USD", reference=None, reference_wallet_id=user_wallet, description="", initiated_by_id=7,
        created_at=now,
    )  # fmt: skip
    legs = [
        LedgerEntry(
            transfer_id=transfer_id,
            wallet_id=source,
            type=kind,
            amount=-250,
            balance_after=None,
            created_at=now,
        ),
        LedgerEntry(
            transfer_id=transfer_id,
            wallet_id=destination,
            type=kind,
            amount=250,
            balance_after=1_250,
            created_at=now,
        ),
    ]
    audit = AuditEvent(
        action="money.deposit",
        actor_id=7,
        target_type="transfer",
        target_id=str(transfer_id),
        amount=250,
        currency="USD",
        details={"reference": None},
        created_at=now,
    )
    record = IdempotencyRecord(
        user_id=7,
        key="k-1",
        method="POST",
        path="/p",
        request_hash="h",
        status_code=201,
        response_body=b"{}",
        transfer_id=transfer_id,
        created_at=now,
    )
    if kind == "deposit":
        balances = [WalletUpdate(user_wallet, balance=1_250)]
    else:
        balances = [WalletUpdate(source, balance=0), WalletUpdate(destination, balance=1_250)]
    return [transfer, *legs, audit, record], balances, now


def test_a_deposits_statement_inserts_each_table_once_and_updates_one_balance():
    rows, balances, now = movement_rows()

    text, params = statement(rows, wallets=balances, updated_at=now)

    assert text.startswith("WITH i0 AS (INSERT INTO transfers_transfer (id, kind, ")
    assert text.endswith(" SELECT 1")
    assert ctes(text) == ["i0", "i1", "i2", "i3", "b"]
    for table in (TRANSFERS, LEDGER_ENTRIES, AUDIT_EVENTS, IDEMPOTENCY_RECORDS):
        assert text.count(f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ") == 1
    assert text.count("), (") == 1  # the two legs: one INSERT of two rows
    assert text.count("UPDATE ") == 1
    update = (
        r"b AS \(UPDATE wallets_wallet SET balance = CASE id WHEN %\((p\d+)\)s THEN %\(p\d+\)s END, "
        r"updated_at = %\(p\d+\)s WHERE id IN \(%\(\1\)s\)\)"
    )
    assert re.search(update, text)
    # Every placeholder is bound, each parameter is used, and every value is a parameter.
    used = set(re.findall(r"%\((\w+)\)s", text))
    assert used == set(params)
    assert "250" not in text and "USD" not in text


def test_equal_ids_times_and_amounts_share_one_parameter_and_strings_and_nulls_never_do():
    rows, balances, now = movement_rows("transfer")
    transfer = rows[0]

    text, params = statement(rows, wallets=balances, updated_at=now)

    by_value = {}
    for name, value in params.items():
        by_value.setdefault(
            (type(value), value if not isinstance(value, (dict, bytes)) else id(value)), []
        ).append(name)
    assert [v for v in params.values() if v == transfer.id] == [transfer.id]  # one parameter...
    [transfer_param] = [n for n, v in params.items() if v == transfer.id]
    assert text.count(f"%({transfer_param})s") == 4  # ...for the transfer, both legs and the record
    [time_param] = [n for n, v in params.items() if v == now]
    assert text.count(f"%({time_param})s") == 6  # every row's time and the wallets' updated_at
    assert len([v for v in params.values() if v is None]) >= 3  # NULLs stay apart
    assert len(params) <= 50  # psycopg caches the conversion of statements up to 50 parameters


def test_a_transfers_statement_sets_both_balances_in_one_update_with_case():
    rows, balances, now = movement_rows("transfer")

    text, _ = statement(rows[:4], wallets=balances, updated_at=now)

    assert ctes(text) == ["i0", "i1", "i2", "b"]
    assert "transfers_idempotencyrecord" not in text
    assert text.count("UPDATE ") == 1
    assert re.search(
        r"SET balance = CASE id WHEN %\(\w+\)s THEN %\(\w+\)s WHEN %\(\w+\)s THEN %\(\w+\)s END", text
    )
    assert re.search(r"WHERE id IN \(%\(\w+\)s, %\(\w+\)s\)\) SELECT 1$", text)


def test_a_statement_without_balances_has_no_update():
    rows, _, now = movement_rows()

    text, _ = statement([rows[3]], wallets=[], updated_at=now)

    assert ctes(text) == ["i0"]
    assert "UPDATE" not in text


def test_the_same_movement_shape_makes_the_same_text():
    # psycopg caches a statement's conversion (and PostgreSQL prepares it) by its text.
    first_rows, first_balances, first_now = movement_rows()
    second_rows, second_balances, second_now = movement_rows()

    assert (
        statement(first_rows, wallets=first_balances, updated_at=first_now)[0]
        == statement(second_rows, wallets=second_balances, updated_at=second_now)[0]
    )


@pytest.mark.django_db(transaction=True)
def test_the_statement_runs_on_postgresql_and_writes_every_row():
    from django.contrib.auth import get_user_model

    from transfers.services import deposit_create
    from wallets.services import wallet_create

    user = get_user_model().objects.create(username="statements", email="statements@example.com")
    wallet = wallet_create(owner_id=user.id, currency="USD")

    transfer = deposit_create(wallet_id=wallet.id, owner_id=user.id, amount=250)

    assert Transfer.objects.filter(pk=transfer.id).exists()
    assert LedgerEntry.objects.filter(transfer_id=transfer.id).count() == 2
    assert Wallet.objects.get(pk=wallet.id).balance == 250


def test_a_tables_values_follow_its_columns_and_wrap_json():
    table = Table("t", ("actor_id", "details", "outcome"), json_columns=frozenset({"details"}))
    event = AuditEvent(actor_id=7, details={"k": "v"}, outcome="ok")

    actor, details, outcome = table.values(event)

    assert (actor, outcome) == (7, "ok")
    assert details.obj == {"k": "v"}  # psycopg's Jsonb adapter, so a dict binds as jsonb


def test_write_refuses_a_model_it_has_no_table_for():
    wallet = Wallet(id=uuid.uuid4(), currency="USD")

    with pytest.raises(KeyError):
        statements.write([wallet], updated_at=timezone.now())


def test_columns_only_some_wallets_change_keep_the_others_values():
    rows, _, now = movement_rows("transfer")
    source, destination = rows[0].source_wallet_id, rows[0].destination_wallet_id
    day = now.date()

    text, params = statement(
        rows,
        wallets=[
            WalletUpdate(source, balance=0, held=100, outgoing=(day, 250)),
            WalletUpdate(destination, balance=1_250),
        ],
        updated_at=now,
    )

    update = text.split("b AS (", 1)[1]
    assert update.startswith("UPDATE wallets_wallet SET balance = CASE id WHEN ")
    # The source's held money and outgoing total change; the destination keeps its own.
    for column in ("held", "outgoing_day", "outgoing_today"):
        assert re.search(rf"{column} = CASE id WHEN %\(\w+\)s THEN %\(\w+\)s ELSE {column} END", update)
    assert re.search(
        r"balance = CASE id WHEN %\(\w+\)s THEN %\(\w+\)s WHEN %\(\w+\)s THEN %\(\w+\)s END", update
    )
    assert day in params.values()


def test_a_wallet_whose_balance_does_not_change_is_not_given_one():
    # A hold's creation or release only moves `held`: naming balance would fire its ledger check.
    wallet_id, now = uuid.uuid4(), timezone.now()

    text, _ = statement([], wallets=[WalletUpdate(wallet_id, held=500)], updated_at=now)

    assert "balance" not in text
    assert re.search(r"SET held = CASE id WHEN %\(\w+\)s THEN %\(\w+\)s END, updated_at = ", text)


def test_a_holds_change_is_an_update_by_primary_key_of_its_end_columns():
    now = timezone.now()
    hold = Hold(
        id=uuid.uuid4(),
        status="captured",
        captured_amount=70,
        capture_transfer_id=uuid.uuid4(),
        finished_at=now,
    )

    text, params = statement([], updates=[hold], wallets=[WalletUpdate(uuid.uuid4(), held=0)], updated_at=now)

    assert ctes(text) == ["u0", "b"]
    assert re.search(
        r"u0 AS \(UPDATE transfers_hold SET status = %\(\w+\)s, captured_amount = %\(\w+\)s, "
        r"capture_transfer_id = %\(\w+\)s, finished_at = %\(\w+\)s WHERE id = %\(\w+\)s\)",
        text,
    )
    assert hold.id in params.values() and "captured" in params.values()
