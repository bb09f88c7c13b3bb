"""GET /wallets/{id}/statement: a period's opening and closing balances, totals and entries,
as JSON pages or one streamed CSV.

The period is a piece of the wallet's chain of entries between two instants
(transfers.reports), so opening + total_in - total_out = closing always holds: checked on
random histories, with the clock running forward and with it jumping back as a second
server's clock would.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import tracemalloc
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import assert_problem
from transfers import reports
from transfers import services as ledger
from transfers.holds import hold_capture, hold_create
from transfers.models import LedgerEntry
from transfers.serializers import STATEMENT_CSV_COLUMNS
from transfers.tests.ledger_time import (
    START,
    clock_fixture,  # noqa: F401  (the `clock` fixture)
    iso,
)
from transfers.tests.test_history_plan import _bulk_deposits
from wallets.services import system_wallet_id

pytestmark = pytest.mark.django_db

URL = "/api/v1/wallets/{}/statement"


def _pages(client, wallet, params: dict[str, Any]) -> tuple[dict, list[dict]]:
    """The first page's body and every entry of every page (following `next`)."""
    response = client.get(URL.format(wallet.id), params)
    assert response.status_code == 200, response.content
    first = body = response.json()
    entries = list(body["results"])
    while body["next"]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(body["next"]).query).items()}
        body = client.get(URL.format(wallet.id), query).json()
        assert {k: body[k] for k in ("opening_balance", "closing_balance", "count")} == {
            k: first[k] for k in ("opening_balance", "closing_balance", "count")
        }
        entries += body["results"]
    return first, entries


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.content if not response.streaming else ""
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    assert text.endswith("\n")
    return list(csv.reader(io.StringIO(text)))


# --- random histories ------------------------------------------------------------------------


def _random_history(rng: random.Random, clock, users, wallets, *, steps: int, skew: bool) -> None:
    """`steps` movements touching wallets[0]: deposits, withdrawals, transfers both ways,
    refunds and hold captures, each at a clock that mostly moves forward (by up to 3 s; with
    `skew`, it sometimes goes back by up to 2 s, as a second server's clock may)."""
    mine, theirs = wallets
    me, them = users
    seconds = 0.0
    received = []
    for _ in range(steps):
        seconds += rng.choice([0, 0.000001, 0.5, 1, 3])
        if skew and rng.random() < 0.25:
            seconds -= rng.uniform(0, 2)
        clock.at(seconds)
        mine.refresh_from_db()
        theirs.refresh_from_db()
        kind = rng.choice(["deposit", "deposit", "withdrawal", "out", "in", "refund", "hold"])
        amount = rng.randint(1, 500)
        if kind == "refund" and (not received or mine.balance - mine.held < 1):
            kind = "in"
        if kind == "deposit" or (mine.balance - mine.held < amount and kind in ("withdrawal", "out", "hold")):
            ledger.deposit_create(wallet_id=mine.id, owner_id=me.id, amount=amount)
        elif kind == "withdrawal":
            ledger.withdrawal_create(wallet_id=mine.id, owner_id=me.id, amount=amount)
        elif kind == "out":
            ledger.transfer_create(
                source_wallet_id=mine.id,
                destination_wallet_id=theirs.id,
                initiated_by_id=me.id,
                amount=amount,
            )
        elif kind == "in":
            ledger.deposit_create(wallet_id=theirs.id, owner_id=them.id, amount=amount)
            received.append(
                ledger.transfer_create(
                    source_wallet_id=theirs.id,
                    destination_wallet_id=mine.id,
                    initiated_by_id=them.id,
                    amount=amount,
                )
            )
        elif kind == "refund":
            original = received.pop(rng.randrange(len(received)))
            most = min(original.amount, mine.balance - mine.held)
            ledger.refund_create(transfer_id=original.id, owner_id=me.id, amount=rng.randint(1, most))
        else:
            hold = hold_create(
                wallet_id=mine.id, owner_id=me.id, amount=min(amount, mine.balance - mine.held)
            )
            hold_capture(hold_id=hold.id, owner_id=me.id, destination_wallet_id=theirs.id)


def _instants(rng: random.Random, count: int) -> list:
    """Sorted instants around the history (before it, inside it, after it), some on a tick."""
    picks = {
        START + timedelta(seconds=rng.choice([-5, rng.uniform(0, 60), rng.randint(0, 60)]))
        for _ in range(count)
    }
    return sorted(picks)


@pytest.mark.parametrize("skew", [False, True], ids=["one-clock", "skewed-clocks"])
@pytest.mark.parametrize("seed", range(4))
def test_opening_plus_in_minus_out_is_closing_on_random_histories(
    api_client, clock, make_user, make_wallet, seed, skew
):
    rng = random.Random(seed * 7919 + skew)  # fixed: every run draws the same histories
    users = (make_user(), make_user())
    clock.at(-10)
    wallets = (make_wallet(users[0]), make_wallet(users[1]))
    _random_history(rng, clock, users, wallets, steps=30, skew=skew)
    clock.at(3600)
    client = api_client(users[0])
    entries = {e.id: e for e in LedgerEntry.objects.filter(wallet_id=wallets[0].id)}

    bounds = _instants(rng, 6)
    periods = [(None, bounds[0]), *itertools.pairwise(bounds), (bounds[-1], None)]
    seen: list[int] = []
    closing_before = 0
    for start, end in periods:
        params = {"limit": 7} | ({"from": iso(start)} if start else {}) | ({"to": iso(end)} if end else {})
        body, listed = _pages(client, wallets[0], params)

        amounts = [e["amount"] for e in listed]
        assert body["opening_balance"] + body["total_in"] - body["total_out"] == body["closing_balance"]
        assert body["count"] == len(listed)
        assert body["total_in"] == sum(a for a in amounts if a > 0)
        assert body["total_out"] == -sum(a for a in amounts if a < 0)
        ids = [e["id"] for e in listed]
        assert ids == sorted(ids)  # oldest first: the chain's order
        if listed:  # each entry's balance follows from the one before
            assert listed[0]["balance_after"] == body["opening_balance"] + listed[0]["amount"]
            assert listed[-1]["balance_after"] == body["closing_balance"]
        if not skew:
            # One clock: consecutive statements chain, each lists exactly the entries stamped
            # in its period, and the ends are the balances at those instants.
            assert body["opening_balance"] == closing_before
            stamped = sorted(
                i
                for i, e in entries.items()
                if (start is None or e.created_at >= start) and (end is None or e.created_at < end)
            )
            assert ids == stamped
            if end is not None:
                just_before = reports.balance_at(
                    wallet_id=wallets[0].id, owner_id=users[0].id, at=end - timedelta(microseconds=1)
                )
                assert body["closing_balance"] == just_before.balance
        closing_before = body["closing_balance"]
        seen += ids
    if not skew:
        assert sorted(seen) == sorted(entries)  # the periods cover the history once
    wallets[0].refresh_from_db()
    assert closing_before == wallets[0].balance


# --- the JSON pages --------------------------------------------------------------------------


@pytest.fixture
def month(clock, make_user, make_wallet):
    """alice's wallet: +1000 at 10 s (reference "=cmd"), -300 at 20 s, +250 at 30 s, -100 at 40 s."""
    alice, bob = make_user(), make_user()
    clock.at(0)
    wallet, other = make_wallet(alice, "EUR"), make_wallet(bob, "EUR", balance=5000)
    clock.at(10)
    ledger.deposit_create(
        wallet_id=wallet.id, owner_id=alice.id, amount=1000, reference="=cmd", description="pay, day"
    )
    clock.at(20)
    ledger.withdrawal_create(wallet_id=wallet.id, owner_id=alice.id, amount=300)
    clock.at(30)
    ledger.transfer_create(
        source_wallet_id=other.id, destination_wallet_id=wallet.id, initiated_by_id=bob.id, amount=250
    )
    clock.at(40)
    ledger.transfer_create(
        source_wallet_id=wallet.id, destination_wallet_id=other.id, initiated_by_id=alice.id, amount=100
    )
    clock.at(50)
    ids = list(LedgerEntry.objects.filter(wallet_id=wallet.id).order_by("id").values_list("id", flat=True))
    return {"alice": alice, "bob": bob, "wallet": wallet, "ids": ids}


def csv_time(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _t(seconds: float):
    return START + timedelta(seconds=seconds)


def test_a_statement_is_its_period_half_open(api_client, month):
    body, listed = _pages(
        api_client(month["alice"]), month["wallet"], {"from": iso(_t(20)), "to": iso(_t(40))}
    )

    assert {k: body[k] for k in ("opening_balance", "closing_balance", "total_in", "total_out", "count")} == {
        "opening_balance": 1000,
        "closing_balance": 950,
        "total_in": 250,
        "total_out": 300,
        "count": 2,
    }
    assert (body["currency"], body["exponent"]) == ("EUR", 2)
    assert (body["from"], body["to"]) == (iso(_t(20)), iso(_t(40)))
    assert [e["id"] for e in listed] == month["ids"][1:3]
    assert [e["type"] for e in listed] == ["withdrawal", "transfer_in"]


def test_without_bounds_it_is_the_whole_history_up_to_now(api_client, month, clock):
    body, listed = _pages(api_client(month["alice"]), month["wallet"], {})

    assert (body["from"], body["to"]) == (None, iso(clock.now))
    assert (body["opening_balance"], body["closing_balance"], body["count"]) == (0, 850, 4)
    assert [e["id"] for e in listed] == month["ids"]


def test_a_future_end_is_now_and_an_empty_period_has_no_entries(api_client, month, clock):
    client = api_client(month["alice"])

    future, _ = _pages(client, month["wallet"], {"from": iso(_t(45)), "to": iso(_t(10_000))})
    empty, listed = _pages(client, month["wallet"], {"from": iso(_t(-100)), "to": iso(_t(5))})

    assert future["to"] == iso(clock.now)
    assert (future["opening_balance"], future["closing_balance"], future["count"]) == (850, 850, 0)
    assert (empty["opening_balance"], empty["closing_balance"], empty["count"], listed) == (0, 0, 0, [])


def test_pages_walk_back_with_previous_links(api_client, month):
    client = api_client(month["alice"])
    first = client.get(URL.format(month["wallet"].id), {"limit": 2}).json()
    second = client.get(first["next"]).json()

    back = client.get(second["previous"]).json()

    assert [e["id"] for e in back["results"]] == month["ids"][:2]
    assert [e["id"] for e in second["results"]] == month["ids"][2:]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "last week"}, "from"),
        ({"to": "2026-12-01T10:00:00"}, "to"),  # no offset
        ({"from": "2026-12-01T10:00:00Z", "to": "2026-12-01T10:00:00Z"}, "to"),
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
        ({"to": ""}, "to"),
    ],
)
def test_bad_periods_are_a_400(api_client, month, params, field):
    body = assert_problem(
        api_client(month["alice"]).get(URL.format(month["wallet"].id), params), 400, "validation_error"
    )

    assert field in body["errors"]


def test_someone_elses_statement_is_not_found(api_client, month):
    response = api_client(month["bob"]).get(URL.format(month["wallet"].id), {"format": "csv"})

    assert_problem(response, 404, "not_found")


def test_a_json_page_costs_three_queries(api_client, month, django_assert_num_queries):
    client = api_client(month["alice"])
    client.get(URL.format(month["wallet"].id))  # warm: the user's cached row

    with django_assert_num_queries(3):  # the ends, the totals, the page
        response = client.get(URL.format(month["wallet"].id), {"limit": 3})

    assert len(response.json()["results"]) == 3


# --- CSV ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ask", ["accept", "format"])
def test_the_csv_is_the_whole_period_between_its_opening_and_closing(api_client, month, ask):
    client = api_client(month["alice"])
    params = {"from": iso(_t(5)), "to": iso(_t(35))}
    if ask == "format":
        response = client.get(URL.format(month["wallet"].id), params | {"format": "csv"})
    else:
        response = client.get(URL.format(month["wallet"].id), params, HTTP_ACCEPT="text/csv")

    rows = _csv(response)

    assert rows[0] == list(STATEMENT_CSV_COLUMNS)
    assert rows[1] == ["opening", "", csv_time(_t(5)), "", "", "0", "EUR", "", "", ""]
    assert rows[-1] == ["closing", "", csv_time(_t(35)), "", "", "950", "EUR", "", "", ""]
    entries = rows[2:-1]
    assert [int(r[1]) for r in entries] == month["ids"][:3]
    assert [(r[3], r[4], r[5]) for r in entries] == [
        ("deposit", "1000", "1000"),
        ("withdrawal", "-300", "700"),
        ("transfer_in", "250", "950"),
    ]
    assert entries[0][2] == csv_time(_t(10)) == "2026-11-02T09:00:10.000000Z"
    assert entries[0][8:] == ["'=cmd", "pay, day"]  # a formula is defused; a comma is quoted
    assert response["Content-Disposition"] == f'attachment; filename="statement-{month["wallet"].id}.csv"'
    headers = {
        h: response[h]
        for h in (
            "Statement-Opening-Balance",
            "Statement-Closing-Balance",
            "Statement-Total-In",
            "Statement-Total-Out",
            "Statement-Count",
            "Statement-Currency",
            "Statement-Exponent",
        )
    }
    assert headers == {
        "Statement-Opening-Balance": "0",
        "Statement-Closing-Balance": "950",
        "Statement-Total-In": "1250",
        "Statement-Total-Out": "300",
        "Statement-Count": "3",
        "Statement-Currency": "EUR",
        "Statement-Exponent": "2",
    }


@pytest.mark.parametrize("ask", [{"HTTP_ACCEPT": "text/csv"}, {"QUERY_STRING": "format=csv"}])
def test_options_where_csv_was_asked_for_answers_json(api_client, month, ask):
    response = api_client(month["alice"]).options(URL.format(month["wallet"].id), **ask)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["name"]


def test_an_accept_header_neither_json_nor_csv_is_a_406(api_client, month):
    response = api_client(month["alice"]).get(URL.format(month["wallet"].id), HTTP_ACCEPT="application/xml")

    assert_problem(response, 406, "not_acceptable")


def test_csv_copies_its_entries_a_chunk_at_a_time(
    api_client, make_user, make_wallet, monkeypatch, django_assert_num_queries
):
    user = make_user()
    wallet = make_wallet(user)
    _bulk_deposits(wallet, 30)
    monkeypatch.setattr(reports, "STATEMENT_CHUNK_SIZE", 7)
    client = api_client(user)
    client.get(URL.format(wallet.id))  # warm

    # The ends, the totals, then where each chunk ends (7, 14, 21, 28; then none: the rest). The
    # COPY of each chunk goes through psycopg itself, which Django does not count.
    with django_assert_num_queries(2 + 5):
        rows = _csv(client.get(URL.format(wallet.id), {"format": "csv"}))

    assert [int(r[5]) for r in rows[2:-1]] == list(range(1, 31))


def _streamed_peak(response) -> tuple[int, int]:
    """(peak Python memory while the body streams, rows streamed)."""
    rows = 0
    tracemalloc.start()
    try:
        for piece in response.streaming_content:
            rows += piece.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, rows


def test_a_long_csv_streams_in_constant_memory(api_client, make_user, make_wallet, monkeypatch):
    """Streaming 24,000 entries peaks at what 4,000 take: one chunk of rows and one piece of
    text, whatever the period's length (holding the period would grow with it)."""
    user = make_user()
    small, large = make_wallet(user), make_wallet(user)
    _bulk_deposits(small, 4_000)
    _bulk_deposits(large, 24_000)
    monkeypatch.setattr(reports, "STATEMENT_CHUNK_SIZE", 500)
    client = api_client(user)
    client.get(URL.format(small.id), {"format": "csv"})  # warm: imports, prepared statements

    small_peak, small_rows = _streamed_peak(client.get(URL.format(small.id), {"format": "csv"}))
    large_peak, large_rows = _streamed_peak(client.get(URL.format(large.id), {"format": "csv"}))

    assert (small_rows, large_rows) == (4_000 + 3, 24_000 + 3)
    assert large_peak < small_peak * 1.25, (small_peak, large_peak)


# --- the plan ----------------------------------------------------------------------------------


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan] + [node for child in plan.get("Plans", []) for node in _nodes(child)]


# Deposits of 1 into several wallets in turn (one transfer and two legs each, legs as the
# service writes them): a ledger where each wallet's entries are spread among the others'.
ROUND_ROBIN_DEPOSITS = """
WITH bulk AS MATERIALIZED (
       SELECT g, gen_random_uuid() AS t, (%(wallets)s::uuid[])[1 + g %% %(k)s] AS w, g / %(k)s + 1 AS n
         FROM generate_series(0, %(total)s - 1) g),
     transfers AS (
       INSERT INTO transfers_transfer (id, kind, source_wallet_id, destination_wallet_id, amount, currency,
                                       status, reference, reference_wallet_id, description,
                                       initiated_by_id, created_at)
       SELECT t, 'deposit', %(sys)s, w, 1, 'USD', 'completed', NULL, w, 'bulk', %(user)s, now()
         FROM bulk ORDER BY g
       RETURNING 1)
INSERT INTO transfers_ledgerentry (transfer_id, wallet_id, type, amount, balance_after, created_at)
SELECT b.t, CASE l.leg WHEN 0 THEN %(sys)s ELSE b.w END, 'deposit', CASE l.leg WHEN 0 THEN -1 ELSE 1 END,
       CASE l.leg WHEN 0 THEN NULL ELSE b.n END, now()
  FROM bulk b CROSS JOIN (VALUES (0), (1)) AS l(leg) ORDER BY b.g, l.leg
"""


def test_the_figures_seek_both_ends_and_read_only_the_period(make_user, make_wallet):
    user = make_user()
    wallets = [make_wallet(user) for _ in range(10)]
    each = 600
    with connection.cursor() as cursor:
        params = {"wallets": [w.id for w in wallets], "k": len(wallets), "total": each * len(wallets)}
        cursor.execute(
            ROUND_ROBIN_DEPOSITS, params | {"sys": system_wallet_id(currency="USD"), "user": user.id}
        )
        cursor.execute("UPDATE wallets_wallet SET balance = %s WHERE id = ANY(%s)", [each, params["wallets"]])
        cursor.execute("ANALYZE transfers_ledgerentry")
    wallet = wallets[3]
    ids = list(LedgerEntry.objects.filter(wallet_id=wallet.id).order_by("id").values_list("id", flat=True))
    stamp = LedgerEntry.objects.get(id=ids[0]).created_at
    ends = {"wallet": wallet.id, "owner": user.id, "from": stamp, "to": stamp + timedelta(seconds=1)}

    end_plan = _explain(reports.STATEMENT_SUMMARY_SQL, ends)
    totals_plan = _explain(
        reports.STATEMENT_TOTALS_SQL.format(after=ids[99], last=ids[199]), {"wallet": wallet.id}
    )

    seeks = [n for n in _nodes(end_plan) if n.get("Relation Name") == "transfers_ledgerentry"]
    assert [(n["Index Name"], n["Scan Direction"]) for n in seeks] == [
        ("entry_wallet_created_idx", "Backward")
    ] * 2
    assert all(n["Actual Rows"] <= 1 for n in seeks)
    (period,) = [n for n in _nodes(totals_plan) if n.get("Relation Name") == "transfers_ledgerentry"]
    # The period's id range and nothing outside it, by whichever index the planner finds
    # cheaper with the real bounds: never the wallet's older or newer history.
    assert period["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), period
    assert period["Actual Rows"] == 100
    assert period["Actual Rows"] + period.get("Rows Removed by Filter", 0) <= ids[199] - ids[99]
    statement = reports.statement_get(wallet_id=wallet.id, owner_id=user.id)
    assert (statement.opening_balance, statement.closing_balance, statement.count) == (0, each, each)


def _explain(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is small enough to look cheap to scan
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        (raw,) = cursor.fetchone()
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def test_statement_pages_read_the_wallet_index_in_order(api_client, make_user, make_wallet):
    """Oldest first is entry_wallet_id_idx (wallet_id, id DESC) read backwards: no sort, and
    only the page's rows."""
    user, other = make_user(), make_user()
    wallet = make_wallet(user)
    _bulk_deposits(wallet, 3000)
    _bulk_deposits(make_wallet(other), 1500)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE transfers_ledgerentry")
    ids = list(LedgerEntry.objects.filter(wallet_id=wallet.id).order_by("id").values_list("id", flat=True))
    client = api_client(user)
    first = client.get(URL.format(wallet.id), {"limit": 50}).json()
    with CaptureQueriesContext(connection) as queries:
        page = client.get(first["next"]).json()
    assert [e["id"] for e in page["results"]] == ids[50:100]
    (page_sql,) = [q["sql"] for q in queries.captured_queries if 'FROM "transfers_ledgerentry"' in q["sql"]]

    nodes = _nodes(_explain(page_sql, {}))

    scans = [n for n in nodes if n.get("Relation Name") == "transfers_ledgerentry"]
    assert [(n["Index Name"], n["Scan Direction"]) for n in scans] == [("entry_wallet_id_idx", "Backward")]
    assert not [n for n in nodes if "Sort" in n["Node Type"]]
    assert scans[0]["Actual Rows"] == 51
