"""The wallet API: open, list, read, history, deposits and withdrawals."""

import uuid
from datetime import UTC, datetime
from unittest import mock

import pytest

from conftest import SLASHES, assert_problem, idem
from transfers import services as ledger
from transfers.models import LedgerEntry, Transfer
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

WALLET_FIELDS = {
    "id",
    "currency",
    "balance",
    "held",
    "available",
    "status",
    "name",
    "limits",
    "created_at",
    "updated_at",
}
ENTRY_FIELDS = {
    "id",
    "type",
    "amount",
    "balance_after",
    "transfer_id",
    "reference",
    "description",
    "created_at",
}


def at(moment: datetime):
    """Pin the clock the ledger services stamp entries with."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


def collect_pages(client, url: str, params: dict | None = None) -> list[list[dict]]:
    pages = []
    response = client.get(url, params or {})
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append(body["results"])
        if not body["next"]:
            return pages
        response = client.get(body["next"])


# --- create -----------------------------------------------------------------------


@SLASHES
def test_create_wallet_starts_empty_and_active(api_client, make_user, slash):
    user = make_user()

    response = api_client(user).post(
        f"/api/v1/wallets{slash}", {"currency": "EUR", "name": "Travel"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == WALLET_FIELDS
    assert (body["currency"], body["balance"], body["status"], body["name"]) == ("EUR", 0, "active", "Travel")
    wallet = Wallet.objects.get(pk=body["id"])
    assert (wallet.owner_id, wallet.kind, wallet.balance) == (user.id, "user", 0)


def test_create_wallet_name_is_optional(api_client, make_user):
    response = api_client(make_user()).post("/api/v1/wallets", {"currency": "JPY"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["name"] == ""


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"balance": 1_000_000}, id="balance"),
        pytest.param({"owner": 1}, id="owner"),
        pytest.param({"status": "active"}, id="status"),
        pytest.param({"balance": 0}, id="balance-zero"),
        pytest.param({"id": str(uuid.uuid4())}, id="id"),
    ],
)
def test_create_wallet_rejects_server_owned_fields(api_client, make_user, extra):
    user, other = make_user(), make_user()
    data = {"currency": "USD", **extra}
    if "owner" in data:
        data["owner"] = other.id

    response = api_client(user).post("/api/v1/wallets", data, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert set(body["errors"]) == set(extra)
    assert Wallet.objects.count() == 0


@pytest.mark.parametrize(
    "currency",
    [
        pytest.param("XYZ", id="unknown"),
        pytest.param("usd", id="lowercase"),
        pytest.param(840, id="number"),
        pytest.param("US", id="too-short"),
        pytest.param("USDX", id="too-long"),
        pytest.param("", id="empty"),
        pytest.param(None, id="null"),
        pytest.param(["USD"], id="list"),
    ],
)
def test_create_wallet_rejects_bad_currencies(api_client, make_user, currency):
    response = api_client(make_user()).post("/api/v1/wallets", {"currency": currency}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["currency"]
    assert Wallet.objects.count() == 0


def test_create_wallet_requires_currency_and_bounds_name(api_client, make_user):
    client = api_client(make_user())

    missing = client.post("/api/v1/wallets", {"name": "x"}, format="json")
    long_name = client.post("/api/v1/wallets", {"currency": "USD", "name": "n" * 101}, format="json")

    assert list(assert_problem(missing, 400, "validation_error")["errors"]) == ["currency"]
    assert list(assert_problem(long_name, 400, "validation_error")["errors"]) == ["name"]
    assert Wallet.objects.count() == 0


def test_wallet_endpoints_need_authentication(api_client, make_user, make_wallet):
    wallet = make_wallet(make_user())
    client = api_client(None)

    assert_problem(client.get("/api/v1/wallets"), 401, "not_authenticated")
    assert_problem(
        client.post("/api/v1/wallets", {"currency": "USD"}, format="json"), 401, "not_authenticated"
    )
    assert_problem(client.get(f"/api/v1/wallets/{wallet.id}"), 401, "not_authenticated")
    assert_problem(client.get(f"/api/v1/wallets/{wallet.id}/transactions"), 401, "not_authenticated")
    assert Wallet.objects.count() == 1


# --- list -------------------------------------------------------------------------


@SLASHES
def test_list_shows_only_the_callers_wallets(api_client, make_user, make_wallet, slash):
    alice, bob = make_user(), make_user()
    mine = {str(make_wallet(alice).id), str(make_wallet(alice, "EUR").id)}
    make_wallet(bob)

    response = api_client(alice).get(f"/api/v1/wallets{slash}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert {w["id"] for w in body["results"]} == mine
    assert all(set(w) == WALLET_FIELDS for w in body["results"])


def test_list_paginates_with_a_cursor(api_client, make_user, make_wallet):
    alice, bob = make_user(), make_user()
    created = [make_wallet(alice, name=f"w{i}") for i in range(5)]
    make_wallet(bob)
    client = api_client(alice)

    pages = collect_pages(client, "/api/v1/wallets", {"limit": 2})

    assert [len(page) for page in pages] == [2, 2, 1]
    # Newest first, every wallet exactly once.
    assert [w["id"] for page in pages for w in page] == [str(w.id) for w in reversed(created)]


def test_list_limit_above_100_is_clamped(api_client, make_user):
    user = make_user()
    Wallet.objects.bulk_create([Wallet(owner=user, currency="USD") for _ in range(101)])
    client = api_client(user)

    clamped = client.get("/api/v1/wallets", {"limit": 1000}).json()
    default = client.get("/api/v1/wallets").json()

    assert len(clamped["results"]) == 100
    assert clamped["next"] is not None
    assert len(default["results"]) == 50


# Only ASCII digits: int() would also take a sign, spaces, underscores and other scripts' digits.
@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "", "+5", " 5", "1_0", "\u0665", "\u00b2"])
def test_list_rejects_bad_limits(api_client, make_user, make_wallet, limit):
    user = make_user()
    make_wallet(user)

    response = api_client(user).get("/api/v1/wallets", {"limit": limit})

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["limit"]


# Cursors are opaque base64 of "o=<offset>&r=<reverse>&p=<position>"; a client can forge one.
GARBAGE_CURSORS = [
    pytest.param("garbage", id="not-base64-ascii"),
    pytest.param("!!!", id="no-base64-characters"),
    pytest.param("cD0yMDI0", id="forged-position-p=2024"),
    pytest.param("cD1hYmM=", id="forged-position-p=abc"),
    pytest.param("bz0teA==", id="forged-offset-o=-x"),
]


@pytest.mark.parametrize("cursor", GARBAGE_CURSORS)
def test_list_rejects_garbage_cursors(api_client, make_user, make_wallet, cursor):
    user = make_user()
    make_wallet(user)

    response = api_client(user).get("/api/v1/wallets", {"cursor": cursor})

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["cursor"]


# --- retrieve ---------------------------------------------------------------------


@SLASHES
def test_retrieve_own_wallet(api_client, make_user, make_wallet, slash):
    user = make_user()
    wallet = make_wallet(user, "GBP", balance=1234, name="Savings")

    response = api_client(user).get(f"/api/v1/wallets/{wallet.id}{slash}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == WALLET_FIELDS
    assert body["id"] == str(wallet.id)
    assert (body["currency"], body["balance"], body["status"], body["name"]) == (
        "GBP",
        1234,
        "active",
        "Savings",
    )


def test_retrieve_another_users_wallet_is_404(api_client, make_user, make_wallet):
    alice, bob = make_user(), make_user()
    wallet = make_wallet(bob, balance=500)

    response = api_client(alice).get(f"/api/v1/wallets/{wallet.id}")

    body = assert_problem(response, 404, "not_found")
    assert "balance" not in body


def test_retrieve_a_system_wallet_is_404(api_client, make_user, make_wallet):
    user = make_user()
    make_wallet(user, balance=100)  # creates the USD system wallet
    system = Wallet.objects.get(kind="system", currency="USD")

    assert_problem(api_client(user).get(f"/api/v1/wallets/{system.id}"), 404, "not_found")


@pytest.mark.parametrize(
    "bad_id",
    ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g", "00000000000000000000000000000000x", "%00"],
)
def test_malformed_wallet_id_in_path_is_404(api_client, make_user, bad_id):
    client = api_client(make_user())

    assert_problem(client.get(f"/api/v1/wallets/{bad_id}"), 404, "not_found")
    assert_problem(client.get(f"/api/v1/wallets/{bad_id}/transactions"), 404, "not_found")


def test_unknown_wallet_id_is_404(api_client, make_user):
    response = api_client(make_user()).get(f"/api/v1/wallets/{uuid.uuid4()}")

    assert_problem(response, 404, "not_found")


# --- history ----------------------------------------------------------------------

T1 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2025, 1, 2, 9, 0, tzinfo=UTC)
T3 = datetime(2025, 1, 3, 9, 0, tzinfo=UTC)
T4 = datetime(2025, 1, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def history(make_user, make_wallet):
    """Alice's wallet: deposit (T1), withdrawal (T2), transfer out (T3), transfer in (T4)."""
    alice, bob = make_user(), make_user()
    wallet, other = make_wallet(alice), make_wallet(bob)
    with at(T1):
        deposit = ledger.deposit_create(
            wallet_id=wallet.id, owner_id=alice.id, amount=1000, reference="dep-1", description="salary"
        )
    with at(T2):
        withdrawal = ledger.withdrawal_create(wallet_id=wallet.id, owner_id=alice.id, amount=200)
    with at(T3):
        sent = ledger.transfer_create(
            source_wallet_id=wallet.id, destination_wallet_id=other.id, initiated_by_id=alice.id, amount=300
        )
    with at(T4):
        received = ledger.transfer_create(
            source_wallet_id=other.id,
            destination_wallet_id=wallet.id,
            initiated_by_id=bob.id,
            amount=50,
            description="refund",
        )
    return {
        "alice": alice,
        "bob": bob,
        "wallet": wallet,
        "transfers": [received, sent, withdrawal, deposit],  # newest first
    }


@SLASHES
def test_history_lists_entries_newest_first(api_client, history, slash):
    wallet = history["wallet"]

    response = api_client(history["alice"]).get(f"/api/v1/wallets/{wallet.id}/transactions{slash}")

    assert response.status_code == 200, response.content
    entries = response.json()["results"]
    assert all(set(e) == ENTRY_FIELDS for e in entries)
    assert [(e["type"], e["amount"], e["balance_after"]) for e in entries] == [
        ("transfer_in", 50, 550),
        ("transfer_out", -300, 500),
        ("withdrawal", -200, 800),
        ("deposit", 1000, 1000),
    ]
    assert [e["transfer_id"] for e in entries] == [str(t.id) for t in history["transfers"]]
    assert [e["created_at"] for e in entries] == [
        "2025-01-04T09:00:00Z",
        "2025-01-03T09:00:00Z",
        "2025-01-02T09:00:00Z",
        "2025-01-01T09:00:00Z",
    ]
    assert (entries[3]["reference"], entries[3]["description"]) == ("dep-1", "salary")
    assert (entries[0]["reference"], entries[0]["description"]) == (None, "refund")
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)


@pytest.mark.parametrize(
    ("entry_type", "expected"),
    [
        ("deposit", [1000]),
        ("withdrawal", [-200]),
        ("transfer_out", [-300]),
        ("transfer_in", [50]),
    ],
)
def test_history_filters_by_type(api_client, history, entry_type, expected):
    wallet = history["wallet"]

    response = api_client(history["alice"]).get(
        f"/api/v1/wallets/{wallet.id}/transactions", {"type": entry_type}
    )

    assert response.status_code == 200, response.content
    entries = response.json()["results"]
    assert [e["amount"] for e in entries] == expected
    assert {e["type"] for e in entries} == {entry_type}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"created_after": T3.isoformat()}, [50, -300], id="after-is-inclusive"),
        pytest.param({"created_before": T3.isoformat()}, [-200, 1000], id="before-is-exclusive"),
        pytest.param(
            {"created_after": "2025-01-02T00:00:00Z", "created_before": "2025-01-04T00:00:00Z"},
            [-300, -200],
            id="window",
        ),
        pytest.param({"created_after": "2025-01-02T10:00:00+02:00"}, [50, -300, -200], id="offset"),
        pytest.param({"created_after": "2030-01-01T00:00:00Z"}, [], id="future"),
        pytest.param({"type": "deposit", "created_after": T2.isoformat()}, [], id="type-and-date"),
    ],
)
def test_history_filters_by_date(api_client, history, params, expected):
    wallet = history["wallet"]

    response = api_client(history["alice"]).get(f"/api/v1/wallets/{wallet.id}/transactions", params)

    assert response.status_code == 200, response.content
    assert [e["amount"] for e in response.json()["results"]] == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"type": "refund"}, "type", id="unknown-type"),
        pytest.param({"type": "DEPOSIT"}, "type", id="uppercase-type"),
        pytest.param({"created_after": "yesterday"}, "created_after", id="word-date"),
        pytest.param({"created_before": "2025-13-01"}, "created_before", id="impossible-date"),
        # Empty values are refused, not read as "no filter": the schema says what each one is.
        pytest.param({"type": ""}, "type", id="empty-type"),
        pytest.param({"created_after": ""}, "created_after", id="empty-created-after"),
        pytest.param({"created_before": ""}, "created_before", id="empty-created-before"),
        pytest.param({"limit": "0"}, "limit", id="limit-zero"),
        pytest.param({"limit": "x"}, "limit", id="limit-word"),
        pytest.param({"cursor": "garbage"}, "cursor", id="garbage-cursor"),
        pytest.param({"cursor": "cD1hYmM="}, "cursor", id="forged-position-p=abc"),
    ],
)
def test_history_rejects_bad_query_parameters(api_client, history, params, field):
    wallet = history["wallet"]

    response = api_client(history["alice"]).get(f"/api/v1/wallets/{wallet.id}/transactions", params)

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == [field]


def test_history_pages_return_every_entry_exactly_once(api_client, make_user, make_wallet):
    user = make_user()
    wallet = make_wallet(user)
    for amount in range(1, 8):
        ledger.deposit_create(wallet_id=wallet.id, owner_id=user.id, amount=amount)
    ledger.withdrawal_create(wallet_id=wallet.id, owner_id=user.id, amount=3)
    expected = list(
        LedgerEntry.objects.filter(wallet_id=wallet.id).order_by("-id").values_list("id", flat=True)
    )
    assert len(expected) == 8
    client = api_client(user)

    pages = collect_pages(client, f"/api/v1/wallets/{wallet.id}/transactions", {"limit": 3})

    assert [len(page) for page in pages] == [3, 3, 2]
    assert [e["id"] for page in pages for e in page] == expected

    # Filters survive into the `next` links.
    deposits = collect_pages(
        client, f"/api/v1/wallets/{wallet.id}/transactions", {"limit": 2, "type": "deposit"}
    )
    assert [e["amount"] for page in deposits for e in page] == [7, 6, 5, 4, 3, 2, 1]


def test_history_of_another_users_wallet_is_404(api_client, history):
    wallet = history["wallet"]

    response = api_client(history["bob"]).get(f"/api/v1/wallets/{wallet.id}/transactions")

    body = assert_problem(response, 404, "not_found")
    assert "results" not in body


# --- deposits and withdrawals -------------------------------------------------------


@SLASHES
def test_deposit_answers_transfer_and_wallet(api_client, make_user, make_wallet, slash):
    user = make_user()
    wallet = make_wallet(user)

    response = api_client(user).post(
        f"/api/v1/wallets/{wallet.id}/deposits{slash}",
        {"amount": 2500, "reference": "topup-1", "description": "card"},
        format="json",
        **idem(),
    )

    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"transfer", "wallet"}
    transfer, answered_wallet = body["transfer"], body["wallet"]
    assert transfer["destination_wallet_id"] == str(wallet.id)
    assert (transfer["amount"], transfer["currency"], transfer["status"]) == (2500, "USD", "completed")
    assert (transfer["reference"], transfer["description"]) == ("topup-1", "card")
    assert set(answered_wallet) == WALLET_FIELDS
    assert (answered_wallet["id"], answered_wallet["balance"]) == (str(wallet.id), 2500)
    wallet.refresh_from_db()
    assert wallet.balance == 2500
    stored = Transfer.objects.get(pk=transfer["id"])
    assert (stored.kind, stored.amount) == ("deposit", 2500)


@SLASHES
def test_withdrawal_answers_transfer_and_wallet(api_client, make_user, make_wallet, slash):
    user = make_user()
    wallet = make_wallet(user, balance=1000)

    response = api_client(user).post(
        f"/api/v1/wallets/{wallet.id}/withdrawals{slash}", {"amount": 400}, format="json", **idem()
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"transfer", "wallet"}
    assert body["transfer"]["source_wallet_id"] == str(wallet.id)
    assert body["transfer"]["amount"] == 400
    assert (body["wallet"]["id"], body["wallet"]["balance"]) == (str(wallet.id), 600)
    wallet.refresh_from_db()
    assert wallet.balance == 600


def test_withdrawal_beyond_balance_is_insufficient_funds(api_client, make_user, make_wallet):
    user = make_user()
    wallet = make_wallet(user, balance=100)
    transfers = Transfer.objects.count()

    response = api_client(user).post(
        f"/api/v1/wallets/{wallet.id}/withdrawals", {"amount": 101}, format="json", **idem()
    )

    assert_problem(response, 422, "insufficient_funds")
    wallet.refresh_from_db()
    assert wallet.balance == 100
    assert Transfer.objects.count() == transfers


@pytest.mark.parametrize("kind", ["deposits", "withdrawals"])
def test_movement_on_another_users_wallet_is_404(api_client, make_user, make_wallet, kind):
    alice, bob = make_user(), make_user()
    wallet = make_wallet(bob, balance=1000)
    transfers = Transfer.objects.count()

    response = api_client(alice).post(
        f"/api/v1/wallets/{wallet.id}/{kind}", {"amount": 10}, format="json", **idem()
    )

    assert_problem(response, 404, "not_found")
    wallet.refresh_from_db()
    assert wallet.balance == 1000
    assert Transfer.objects.count() == transfers


@pytest.mark.parametrize("status", ["frozen", "closed"])
def test_inactive_wallet_refuses_every_movement(api_client, make_user, make_wallet, status):
    alice, bob = make_user(), make_user()
    wallet, other = make_wallet(alice, balance=1000), make_wallet(bob, balance=1000)
    Wallet.objects.filter(pk=wallet.pk).update(status=status)
    counts = (Transfer.objects.count(), LedgerEntry.objects.count())
    alice_client, bob_client = api_client(alice), api_client(bob)

    responses = [
        alice_client.post(f"/api/v1/wallets/{wallet.id}/deposits", {"amount": 10}, format="json", **idem()),
        alice_client.post(
            f"/api/v1/wallets/{wallet.id}/withdrawals", {"amount": 10}, format="json", **idem()
        ),
        alice_client.post(
            "/api/v1/transfers",
            {"source_wallet_id": str(wallet.id), "destination_wallet_id": str(other.id), "amount": 10},
            format="json",
            **idem(),
        ),
        bob_client.post(
            "/api/v1/transfers",
            {"source_wallet_id": str(other.id), "destination_wallet_id": str(wallet.id), "amount": 10},
            format="json",
            **idem(),
        ),
    ]

    for response in responses:
        assert_problem(response, 409, "wallet_not_active")
    wallet.refresh_from_db()
    other.refresh_from_db()
    assert (wallet.balance, other.balance) == (1000, 1000)
    assert (Transfer.objects.count(), LedgerEntry.objects.count()) == counts
    # The wallet itself still reads fine and shows its status.
    assert alice_client.get(f"/api/v1/wallets/{wallet.id}").json()["status"] == status
