"""The hold's row lock (transfers.locks): its SQL, its columns, and what it returns.

That it makes a capture, a void and an expiry of one hold run one after the other is
tested with real concurrent transactions in test_hold_races.py.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from transfers.holds import hold_create
from transfers.locks import HOLD_FIELDS, LOCK_HOLD_SQL, hold_lock
from transfers.models import Hold
from transfers.statements import HOLDS

# --- the SQL ------------------------------------------------------------------------------


def test_the_lock_selects_the_hold_by_id_on_the_locked_wallet_only_for_update():
    columns = ", ".join(HOLD_FIELDS)
    assert (
        f"SELECT {columns} FROM transfers_hold WHERE id = %s AND wallet_id = %s FOR UPDATE"
    ) == LOCK_HOLD_SQL
    # A capture, void or expiry of the same hold waits here until this one's transaction ends.
    assert LOCK_HOLD_SQL.endswith(" FOR UPDATE")
    assert "ORDER BY" not in LOCK_HOLD_SQL  # one row: its wallet's lock already orders the waiters


def test_the_lock_reads_every_hold_column_in_the_write_statements_order():
    model_columns = [field.attname for field in Hold._meta.concrete_fields]

    # Every column, so the locked hold is a whole instance (no deferred field reloads itself).
    assert sorted(HOLD_FIELDS) == sorted(model_columns)
    assert len(set(HOLD_FIELDS)) == len(HOLD_FIELDS)
    # One column list for the hold: the one its insert writes.
    assert HOLDS.columns == HOLD_FIELDS
    assert HOLDS.name == Hold._meta.db_table


# --- what it runs and returns --------------------------------------------------------------


@pytest.mark.django_db
def test_it_runs_the_pinned_statement_once_and_returns_the_hold_as_stored(make_user, make_wallet):
    alice = make_user()
    wallet = make_wallet(alice, balance=1_000)
    made = hold_create(wallet_id=wallet.id, owner_id=alice.id, amount=300, reference="r-1", description="d")
    stored = Hold.objects.get(pk=made.id)

    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        locked = hold_lock(hold_id=made.id, wallet_id=wallet.id)

    statements = [q["sql"] for q in captured if "FROM transfers_hold" in q["sql"]]
    assert len(statements) == 1
    pattern = re.escape(LOCK_HOLD_SQL).replace("%s", ".+?")
    assert re.fullmatch(pattern, statements[0]), statements[0]
    assert isinstance(locked, Hold) and not locked._state.adding
    assert locked.get_deferred_fields() == set()
    assert {name: getattr(locked, name) for name in HOLD_FIELDS} == {
        name: getattr(stored, name) for name in HOLD_FIELDS
    }


@pytest.mark.django_db
def test_it_finds_no_hold_on_another_wallet_or_with_an_unknown_id(make_user, make_wallet):
    alice = make_user()
    wallet, other = make_wallet(alice, balance=1_000), make_wallet(alice)
    made = hold_create(wallet_id=wallet.id, owner_id=alice.id, amount=300)

    with transaction.atomic():
        assert hold_lock(hold_id=made.id, wallet_id=other.id) is None
        assert hold_lock(hold_id=uuid.uuid4(), wallet_id=wallet.id) is None
        assert hold_lock(hold_id=made.id, wallet_id=wallet.id).id == made.id
