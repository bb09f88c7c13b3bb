"""The money path's one write statement (transfers.statements): its tables, its text, its cache.

The column lists are written out by hand in transfers/statements.py; these tests hold them
to the models, so a model change cannot silently desynchronise the SQL.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import models
from django.utils import timezone

from audit.models import AuditEvent
from transfers import statements
from transfers.models import IdempotencyRecord, LedgerEntry, Transfer
from transfers.statements import (
    AUDIT_EVENTS,
    IDEMPOTENCY_RECORDS,
    LEDGER_ENTRIES,
    TABLES,
    TRANSFERS,
    Table,
    statement,
)
from wallets.models import Wallet

# What a deposit writes: the transfer, its two legs, the audit event, the idempotency
# record, and one user wallet's balance. A transfer writes two balances.
DEPOSIT_SHAPE = ((TRANSFERS, 1), (LEDGER_ENTRIES, 2), (AUDIT_EVENTS, 1), (IDEMPOTENCY_RECORDS, 1))


def written_columns(model: type[models.Model]) -> list[str]:
    """The model's concrete columns (attribute names: `*_id` for foreign keys), less an
    auto-increment primary key, which the table's sequence fills in."""
    return [
        field.attname
        for field in model._meta.concrete_fields
        if not (field.primary_key and isinstance(field, models.AutoField | models.BigAutoField))
    ]


@pytest.mark.parametrize(
    "model", [Transfer, LedgerEntry, AuditEvent, IdempotencyRecord], ids=lambda m: m.__name__
)
def test_each_tables_columns_are_its_models_columns_less_an_auto_increment_key(model):
    table = TABLES[model]

    assert table.name == model._meta.db_table
    assert len(set(table.columns)) == len(table.columns), table.columns
    assert sorted(table.columns) == sorted(written_columns(model))
    json_fields = {f.attname for f in model._meta.concrete_fields if isinstance(f, models.JSONField)}
    assert table.json_columns == json_fields


def test_the_transfers_uuid_key_is_written_and_the_ledgers_sequence_key_is_not():
    # A transfer's id is made in Python (the response and the idempotency record name it
    # before the write); an entry's comes from the sequence, which orders a wallet's history.
    assert "id" in TRANSFERS.columns
    assert "id" not in LEDGER_ENTRIES.columns
    assert "id" not in AUDIT_EVENTS.columns
    assert "id" not in IDEMPOTENCY_RECORDS.columns


def test_tables_cover_exactly_the_models_the_money_path_writes():
    assert set(TABLES) == {Transfer, LedgerEntry, AuditEvent, IdempotencyRecord}
    assert {table.name for table in TABLES.values()} == {
        "transfers_transfer",
        "transfers_ledgerentry",
        "audit_auditevent",
        "transfers_idempotencyrecord",
    }


def ctes(text: str) -> list[str]:
    """The names of the statement's common table expressions, in order."""
    return re.findall(r"(?:WITH|,) (\w+) AS \(", text)


def test_a_deposits_statement_inserts_each_table_once_and_updates_one_balance():
    text = statement(DEPOSIT_SHAPE, 1)

    assert text.startswith("WITH i0 AS (INSERT INTO transfers_transfer (id, kind, ")
    assert text.endswith(" SELECT 1")
    assert ctes(text) == ["i0", "i1", "i2", "i3", "b"]
    for index, (table, count) in enumerate(DEPOSIT_SHAPE):
        # One INSERT per table, with one row of placeholders per row (the two legs: two rows).
        values = ", ".join([table.placeholders()] * count)
        assert f"i{index} AS (INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES {values})" in text
        assert text.count(f"INSERT INTO {table.name} ") == 1
    assert text.count("UPDATE ") == 1
    update = (
        "UPDATE wallets_wallet SET balance = CASE id WHEN %s THEN %s END, updated_at = %s WHERE id IN (%s)"
    )
    assert f"b AS ({update})" in text
    rows = sum(len(table.columns) * count for table, count in DEPOSIT_SHAPE)
    assert text.count("%s") == rows + 2 + 1 + 1  # the rows, (id, balance), updated_at, the id list


def test_a_transfers_statement_sets_both_balances_in_one_update_with_case():
    shape = ((TRANSFERS, 1), (LEDGER_ENTRIES, 2), (AUDIT_EVENTS, 1))

    text = statement(shape, 2)

    assert ctes(text) == ["i0", "i1", "i2", "b"]
    assert "transfers_idempotencyrecord" not in text
    assert text.count("UPDATE ") == 1
    assert "SET balance = CASE id WHEN %s THEN %s WHEN %s THEN %s END, updated_at = %s" in text
    assert text.endswith("WHERE id IN (%s, %s)) SELECT 1")


def test_a_statement_without_balances_has_no_update():
    text = statement(((AUDIT_EVENTS, 1),), 0)

    assert ctes(text) == ["i0"]
    assert "UPDATE" not in text


def test_the_statement_text_is_built_once_per_shape():
    shape = ((TRANSFERS, 1), (LEDGER_ENTRIES, 2), (AUDIT_EVENTS, 1), (IDEMPOTENCY_RECORDS, 1))
    assert shape == DEPOSIT_SHAPE and shape is not DEPOSIT_SHAPE  # an equal shape, built anew

    first = statement(DEPOSIT_SHAPE, 1)
    again = statement(shape, 1)

    # Equal strings built twice are two objects; the cache hands back the first one.
    assert again is first
    assert statement(DEPOSIT_SHAPE, 2) is not first
    assert statement(DEPOSIT_SHAPE, 2) != first


def test_a_tables_values_follow_its_columns_and_wrap_json():
    table = Table("t", ("actor_id", "details", "outcome"), json_columns=frozenset({"details"}))
    event = AuditEvent(actor_id=7, details={"k": "v"}, outcome="ok")

    actor, details, outcome = table.values(event)

    assert (actor, outcome) == (7, "ok")
    assert details.obj == {"k": "v"}  # psycopg's Jsonb adapter, so a dict binds as jsonb
    assert table.placeholders() == "(%s, %s, %s)"


def test_write_refuses_a_model_it_has_no_table_for():
    wallet = Wallet(id=uuid.uuid4(), currency="USD")

    with pytest.raises(KeyError):
        statements.write([wallet], balances=[], updated_at=timezone.now())
