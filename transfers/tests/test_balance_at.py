"""GET /wallets/{id}/balance?at=: the balance and held amount at an instant, from the ledger.

The balance is balance_after of the wallet's last entry stamped at or before the instant
(transfers.reports): one seek of entry_wallet_created_idx, whatever the wallet's history.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta, timezone
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone as django_timezone
from psycopg import sql

from conftest import assert_problem
from transfers import reports
from transfers import services as ledger
from transfers.holds import hold_capture, hold_create, hold_void, holds_expire
from transfers.models import LedgerEntry
from transfers.tests.ledger_time import (
    START,
    clock_fixture,  # noqa: F401  (the `clock` fixture)
    iso,
)
from transfers.tests.test_history_plan import _bulk_deposits

pytestmark = pytest.mark.django_db

URL = "/api/v1/wallets/{}/balance"


def _get(client, wallet, **params) -> Any:
    return client.get(URL.format(wallet.id), params)


@pytest.fixture
def history(clock, make_user, make_wallet):
    """alice's wallet: +1000 at 10 s, -300 at 20 s, +250 from bob at 30 s, -100 to bob at 40 s."""
    alice, bob = make_user(), make_user()
    clock.at(0)
    wallet, other = make_wallet(alice), make_wallet(bob)
    clock.at(5)
    ledger.deposit_create(wallet_id=other.id, owner_id=bob.id, amount=5000)
    times = {}
    times["deposit"] = clock.at(10)
    ledger.deposit_create(wallet_id=wallet.id, owner_id=alice.id, amount=1000)
    times["withdrawal"] = clock.at(20)
    ledger.withdrawal_create(wallet_id=wallet.id, owner_id=alice.id, amount=300)
    times["in"] = clock.at(30)
    ledger.transfer_create(
        source_wallet_id=other.id, destination_wallet_id=wallet.id, initiated_by_id=bob.id, amount=250
    )
    times["out"] = clock.at(40)
    ledger.transfer_create(
        source_wallet_id=wallet.id, destination_wallet_id=other.id, initiated_by_id=alice.id, amount=100
    )
    clock.at(50)
    wallet.refresh_from_db()
    entries = list(LedgerEntry.objects.filter(wallet_id=wallet.id).order_by("id"))
    return {"alice": alice, "bob": bob, "wallet": wallet, "other": other, "times": times, "entries": entries}


@pytest.mark.parametrize(
    ("offset", "balance", "entry"),
    [
        (-5, 0, None),  # before the wallet had an entry (it existed: opened at 0 s)
        (0, 1000, 0),  # the deposit's own instant counts it (at or before)
        (5, 1000, 0),
        (10, 700, 1),
        (19.999999, 700, 1),
        (20, 950, 2),
        (30, 850, 3),
        (3600, 850, 3),
    ],
)
def test_balance_at_an_instant_is_the_ledger_then(api_client, history, offset, balance, entry):
    at = history["times"]["deposit"] + timedelta(seconds=offset)

    response = _get(api_client(history["alice"]), history["wallet"], at=iso(at))

    assert response.status_code == 200, response.content
    body = response.json()
    expected_entry = history["entries"][entry].id if entry is not None else None
    assert (body["balance"], body["entry_id"]) == (balance, expected_entry)
    assert (body["held"], body["available"], body["currency"], body["exponent"]) == (0, balance, "USD", 2)
    assert body["wallet_id"] == str(history["wallet"].id)


def test_before_the_wallet_existed_the_balance_is_zero(api_client, history):
    at = history["times"]["deposit"] - timedelta(days=3650)

    body = _get(api_client(history["alice"]), history["wallet"], at=iso(at)).json()

    assert (body["balance"], body["held"], body["entry_id"]) == (0, 0, None)


def test_without_at_or_in_the_future_it_is_now(api_client, history, clock):
    client, wallet = api_client(history["alice"]), history["wallet"]

    now = _get(client, wallet).json()
    future = _get(client, wallet, at=iso(clock.now + timedelta(days=30))).json()

    assert now["balance"] == future["balance"] == wallet.balance == 850
    assert now["at"] == future["at"] == iso(clock.now)  # answered as of now, and says so
    assert now["entry_id"] == history["entries"][-1].id


def test_an_offset_other_than_utc_names_the_same_instant(api_client, history):
    at = history["times"]["withdrawal"]  # 09:00:30 UTC = 10:00:30+01:00
    local = at.astimezone(timezone(timedelta(hours=1))).isoformat()

    body = _get(api_client(history["alice"]), history["wallet"], at=local).json()

    assert body["balance"] == 700


def test_held_counts_the_holds_pending_at_that_instant(api_client, clock, make_user, make_wallet):
    user = make_user()
    clock.at(0)
    wallet = make_wallet(user, balance=1000)
    clock.at(10)
    captured = hold_create(wallet_id=wallet.id, owner_id=user.id, amount=200)
    clock.at(20)
    voided = hold_create(wallet_id=wallet.id, owner_id=user.id, amount=50)
    clock.at(25)
    hold_create(
        wallet_id=wallet.id, owner_id=user.id, amount=30, expires_at=clock.at(25) + timedelta(seconds=5)
    )
    clock.at(30)
    hold_capture(hold_id=captured.id, owner_id=user.id, amount=150)  # 150 leaves, 50 released
    clock.at(40)
    hold_void(hold_id=voided.id, owner_id=user.id)
    clock.at(45)
    assert holds_expire() == 1
    clock.at(60)
    client = api_client(user)

    def at(seconds: float) -> tuple[int, int]:
        body = _get(client, wallet, at=iso(START + timedelta(seconds=seconds))).json()
        return body["balance"], body["held"]

    assert at(9) == (1000, 0)
    assert at(10) == (1000, 200)
    assert at(20) == (1000, 250)
    assert at(27) == (1000, 280)  # past its expires_at, not yet expired: still held
    assert at(30) == (850, 80)  # the capture's instant: its entry counts, its hold no longer
    assert at(40) == (850, 30)
    assert at(45) == (850, 0)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == at(59)


@pytest.mark.parametrize("at", ["yesterday", "2026-13-01T00:00:00Z", "2026-12-01T10:00:00", "1"])
def test_an_instant_that_is_not_iso_8601_with_an_offset_is_a_400(api_client, history, at):
    body = assert_problem(
        _get(api_client(history["alice"]), history["wallet"], at=at), 400, "validation_error"
    )

    assert "at" in body["errors"]


def test_an_empty_at_is_a_400(api_client, history):
    assert_problem(_get(api_client(history["alice"]), history["wallet"], at=""), 400, "validation_error")


def test_someone_elses_wallet_is_not_found(api_client, history):
    response = _get(api_client(history["bob"]), history["wallet"])

    assert_problem(response, 404, "not_found")


def test_the_balance_costs_one_query(api_client, history, django_assert_num_queries):
    client = api_client(history["alice"])
    _get(client, history["wallet"])  # warm: the user's cached row

    with django_assert_num_queries(1):
        response = _get(client, history["wallet"], at=iso(history["times"]["in"]))

    assert response.json()["balance"] == 950


def test_equal_stamps_resolve_by_id(make_user, make_wallet):
    """Entries stamped at one instant (one statement's now()): the last by id is the balance."""
    user = make_user()
    wallet = make_wallet(user)
    _bulk_deposits(wallet, 20)
    last = LedgerEntry.objects.filter(wallet_id=wallet.id).order_by("-id").first()

    found = reports.balance_at(wallet_id=wallet.id, owner_id=user.id, at=last.created_at)

    assert (found.balance, found.entry_id) == (20, last.id)


# --- the plan: one seek, whatever the history ------------------------------------------------


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan] + [node for child in plan.get("Plans", []) for node in _plan_nodes(child)]


@pytest.mark.parametrize("where", ["first", "middle", "last", "now"])
def test_the_balance_is_one_index_seek_on_a_long_history(make_user, make_wallet, where):
    user, other = make_user(), make_user()
    _bulk_deposits(make_wallet(other), 1500)
    wallet = make_wallet(user)
    _bulk_deposits(wallet, 3000)  # one instant: the seek must also resolve ties by id
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE transfers_ledgerentry")
        cursor.execute("ANALYZE transfers_hold")
    entries = list(LedgerEntry.objects.filter(wallet_id=wallet.id).order_by("id"))
    at = entries[0].created_at if where != "now" else entries[-1].created_at + timedelta(hours=1)
    if where == "first":
        at -= timedelta(microseconds=1)

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a small test table must not look cheaper to scan
        params = {"wallet": wallet.id, "owner": user.id, "at": at}
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {reports.BALANCE_AT_SQL}", params)
        (raw,) = cursor.fetchone()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]

    scans = [n for n in _plan_nodes(plan) if n.get("Relation Name") == "transfers_ledgerentry"]
    assert [(n["Node Type"], n["Index Name"]) for n in scans] == [
        ("Index Only Scan", "entry_wallet_created_idx")
    ] or [(n["Node Type"], n["Index Name"]) for n in scans] == [("Index Scan", "entry_wallet_created_idx")]
    (scan,) = scans
    assert scan["Scan Direction"] == "Backward"
    assert scan["Actual Rows"] <= 1  # one row read, not the wallet's 3,000
    found = reports.balance_at(wallet_id=wallet.id, owner_id=user.id, at=at)
    assert found.balance == (0 if where == "first" else 3000)


def generic_plan(query: str, params: dict[str, Any]) -> dict[str, Any]:
    """EXPLAIN ANALYZE of `query` as a prepared statement's generic plan: what the server runs
    once psycopg has prepared a statement it sends often (DB_PREPARE_THRESHOLD)."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", query)))
    text = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", query)
    # EXECUTE takes no bound parameters: the values are written into it as literals.
    values = ", ".join(sql.Literal(params[n]).as_string(connection.connection) for n in names)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("DEALLOCATE ALL")
        cursor.execute(f"PREPARE generic AS {text}")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE generic({values})")
        (raw,) = cursor.fetchone()
        cursor.execute("DEALLOCATE generic")
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


@pytest.mark.parametrize("plan_of", ["custom", "generic"])
def test_now_is_one_seek_to_the_wallets_last_entry(make_user, make_wallet, plan_of):
    user, other = make_user(), make_user()
    wallet = make_wallet(user)
    _bulk_deposits(wallet, 3000)
    _bulk_deposits(make_wallet(other), 1500)  # later entries of another wallet
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE transfers_ledgerentry")
    params = {"wallet": wallet.id, "owner": user.id, "at": django_timezone.now()}
    if plan_of == "generic":
        plan = generic_plan(reports.BALANCE_NOW_SQL, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {reports.BALANCE_NOW_SQL}", params)
            (raw,) = cursor.fetchone()
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]

    nodes = _plan_nodes(plan)
    (scan,) = [n for n in nodes if n.get("Relation Name") == "transfers_ledgerentry"]
    assert (scan["Index Name"], scan["Actual Rows"]) == ("entry_wallet_id_idx", 1)
    assert not [n for n in nodes if "Sort" in n["Node Type"]]
