"""History pages read entry_wallet_id_idx (wallet_id, id DESC) on every page, the last one included.

With `WHERE wallet_id = X ... ORDER BY id DESC`, PostgreSQL may instead walk the primary
key backwards and filter on wallet_id: cheap while the wallet's entries are dense, but on
the last pages of a big wallet it reads every older entry of every other wallet (bench:
large ledger). transfers.selectors.PinnedExact and HistoryPagination.ordering_prefix keep
the ORDER BY equal to the index key, so that index is the only ordered path.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from transfers.models import LedgerEntry
from wallets.services import system_wallet_id

pytestmark = pytest.mark.django_db

# Enough rows for the planner to take the table seriously once analyzed; the target
# wallet then holds a large share of the ledger, as in the bench's large-ledger scenario.
DEPOSITS = 1500
HISTORY = "/api/v1/wallets/{}/transactions"

# The bench's bulk deposit (bench/scenarios.py BULK_SQL): one transfer and two legs per
# deposit, legs interleaved as the service writes them, valid for the deferred checks.
BULK_DEPOSITS = """
WITH bulk AS MATERIALIZED (SELECT g, gen_random_uuid() AS t FROM generate_series(1, %(n)s) g),
     transfers AS (
       INSERT INTO transfers_transfer (id, kind, source_wallet_id, destination_wallet_id, amount, currency,
                                       status, reference, reference_wallet_id, description,
                                       initiated_by_id, created_at)
       SELECT t, 'deposit', %(sys)s, %(w)s, 1, 'USD', 'completed', NULL, %(w)s, 'bulk', %(user)s, now()
         FROM bulk ORDER BY g
       RETURNING 1)
INSERT INTO transfers_ledgerentry (transfer_id, wallet_id, type, amount, balance_after, created_at)
SELECT b.t, CASE l.leg WHEN 0 THEN %(sys)s ELSE %(w)s END, 'deposit',
       CASE l.leg WHEN 0 THEN -1 ELSE 1 END,
       CASE l.leg WHEN 0 THEN NULL ELSE b.g END, now()
  FROM bulk b CROSS JOIN (VALUES (0), (1)) AS l(leg) ORDER BY b.g, l.leg
"""


def _bulk_deposits(wallet, n: int) -> None:
    params = {"n": n, "sys": system_wallet_id(currency="USD"), "w": wallet.id, "user": wallet.owner_id}
    with connection.cursor() as cursor:
        cursor.execute(BULK_DEPOSITS, params)
        cursor.execute("UPDATE wallets_wallet SET balance = balance + %s WHERE id = %s", [n, wallet.id])


def _cursor(position: int, *, reverse: bool = False) -> str:
    """DRF's cursor encoding (CursorPagination.encode_cursor)."""
    fields = {"r": "1", "p": str(position)} if reverse else {"p": str(position)}
    return base64.b64encode(urlencode(fields).encode()).decode()


def _index_scans(plan: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """(node type, relation, index) of every scan in the plan tree."""
    here = [(plan["Node Type"], plan.get("Relation Name"), plan.get("Index Name"))]
    return here + [scan for child in plan.get("Plans", []) for scan in _index_scans(child)]


@pytest.fixture
def big_wallet(make_user, make_wallet):
    """A wallet whose entries all come after many entries of another wallet (and the system wallet)."""
    other, user = make_user(), make_user()
    _bulk_deposits(make_wallet(other), DEPOSITS)
    wallet = make_wallet(user)
    _bulk_deposits(wallet, DEPOSITS)
    with connection.cursor() as cursor:
        # Statistics as production has them: the wallet is a large share of the ledger, so a
        # primary-key walk filtering on wallet_id looks cheap. ANALYZE sees this transaction's rows.
        cursor.execute("ANALYZE transfers_ledgerentry")
        cursor.execute("ANALYZE transfers_transfer")
    ids = list(LedgerEntry.objects.filter(wallet_id=wallet.id).order_by("id").values_list("id", flat=True))
    return {"user": user, "wallet": wallet, "ids": ids}


def _history_sql(client, wallet, params: dict[str, Any]) -> tuple[list[int], str]:
    """The ids a history GET returns and the SQL it ran for them."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(HISTORY.format(wallet.id), params)
    assert response.status_code == 200, response.content
    (sql,) = [q["sql"] for q in queries.captured_queries if 'FROM "transfers_ledgerentry"' in q["sql"]]
    return [entry["id"] for entry in response.json()["results"]], sql


def _plan(sql: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        # A test ledger is small enough for a sequential scan and a sort to look cheaper
        # than any index; production's is not. Index paths stay free to compete: the
        # primary key walk is exactly what this test must not see.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        (raw,) = cursor.fetchone()
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


@pytest.mark.parametrize("page", ["first", "middle", "last"])
def test_every_history_page_reads_the_wallet_index(api_client, big_wallet, page):
    ids = big_wallet["ids"]
    position = {"first": None, "middle": ids[len(ids) // 2], "last": ids[50]}[page]
    params = {"limit": 50} if position is None else {"limit": 50, "cursor": _cursor(position)}

    returned, sql = _history_sql(api_client(big_wallet["user"]), big_wallet["wallet"], params)

    expected_end = len(ids) if position is None else ids.index(position)
    assert returned == ids[expected_end - 50 : expected_end][::-1]
    scans = [scan for scan in _index_scans(_plan(sql)) if scan[1] == "transfers_ledgerentry"]
    assert scans == [("Index Scan", "transfers_ledgerentry", "entry_wallet_id_idx")], (scans, sql)


def test_history_walks_back_with_previous_links(api_client, big_wallet):
    """`previous` pages run the inverted ordering (wallet_id DESC, id ASC): same rows, same pages."""
    ids, wallet = big_wallet["ids"], big_wallet["wallet"]
    client = api_client(big_wallet["user"])

    body = client.get(HISTORY.format(wallet.id), {"limit": 100, "cursor": _cursor(ids[250])}).json()
    pages = [[e["id"] for e in body["results"]]]
    while body["previous"] and len(pages) < 4:
        query = parse_qs(urlsplit(body["previous"]).query)
        body = client.get(HISTORY.format(wallet.id), {k: v[0] for k, v in query.items()}).json()
        pages.append([e["id"] for e in body["results"]])

    assert pages == [ids[150:250][::-1], ids[250:350][::-1], ids[350:450][::-1], ids[450:550][::-1]]
    _, sql = _history_sql(client, wallet, {"limit": 100, "cursor": _cursor(ids[250], reverse=True)})
    assert 'ORDER BY "transfers_ledgerentry"."wallet_id" DESC, "transfers_ledgerentry"."id" ASC' in sql
