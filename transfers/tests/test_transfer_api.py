"""The transfer API, idempotency through HTTP, duplicate references and query budgets."""

import json
import uuid

import pytest

from conftest import PROBLEM, SLASHES, assert_problem
from transfers import services as ledger
from transfers.models import IdempotencyRecord, LedgerEntry, Transfer
from wallets.models import Wallet
from wallets.services import system_wallet_id

pytestmark = pytest.mark.django_db

TRANSFER_FIELDS = {
    "id",
    "source_wallet_id",
    "destination_wallet_id",
    "amount",
    "currency",
    "status",
    "reference",
    "description",
    "created_at",
}


def key(value: str | None = None) -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": value if value is not None else str(uuid.uuid4())}


def body_for(source: Wallet, destination: Wallet, amount: int = 100, **extra) -> dict:
    return {
        "source_wallet_id": str(source.id),
        "destination_wallet_id": str(destination.id),
        "amount": amount,
        **extra,
    }


def ledger_state() -> tuple:
    """Every user wallet's balance plus the row counts of the append-only tables."""
    balances = tuple(Wallet.objects.filter(kind="user").order_by("id").values_list("id", "balance"))
    return balances, Transfer.objects.count(), LedgerEntry.objects.count()


@pytest.fixture
def world(make_user, make_wallet):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "a_usd": make_wallet(alice, "USD", balance=1000),
        "a_usd2": make_wallet(alice, "USD", balance=1000),
        "a_eur": make_wallet(alice, "EUR", balance=1000),
        "b_usd": make_wallet(bob, "USD", balance=500),
        "c_usd": make_wallet(carol, "USD"),
    }


# --- create -------------------------------------------------------------------------


@SLASHES
def test_transfer_moves_money_to_another_users_wallet(api_client, world, slash):
    source, destination = world["a_usd"], world["b_usd"]

    response = api_client(world["alice"]).post(
        f"/api/v1/transfers{slash}",
        body_for(source, destination, 250, reference="inv-1", description="rent"),
        format="json",
        **key(),
    )

    assert response.status_code == 201, response.content
    assert response["Content-Type"] == "application/json"
    assert "Idempotent-Replayed" not in response
    body = response.json()
    assert set(body) >= TRANSFER_FIELDS
    assert body["source_wallet_id"] == str(source.id)
    assert body["destination_wallet_id"] == str(destination.id)
    assert (body["amount"], body["currency"], body["status"]) == (250, "USD", "completed")
    assert (body["reference"], body["description"]) == ("inv-1", "rent")
    source.refresh_from_db()
    destination.refresh_from_db()
    assert (source.balance, destination.balance) == (750, 750)
    transfer = Transfer.objects.get(pk=body["id"])
    assert sorted(transfer.entries.values_list("amount", flat=True)) == [-250, 250]


def test_transfer_of_the_whole_balance_leaves_zero(api_client, world):
    source = world["a_usd"]

    response = api_client(world["alice"]).post(
        "/api/v1/transfers", body_for(source, world["b_usd"], 1000), format="json", **key()
    )

    assert response.status_code == 201, response.content
    source.refresh_from_db()
    assert source.balance == 0


def test_transfer_from_another_users_wallet_is_404(api_client, world):
    before = ledger_state()

    response = api_client(world["alice"]).post(
        "/api/v1/transfers", body_for(world["b_usd"], world["a_usd"], 100), format="json", **key()
    )

    body = assert_problem(response, 404, "not_found")
    assert "balance" not in json.dumps(body)
    assert ledger_state() == before


@pytest.mark.parametrize("target", ["missing", "system"])
def test_transfer_to_a_wallet_that_is_not_a_user_wallet_is_404(api_client, world, target):
    destination_id = (
        uuid.uuid4() if target == "missing" else Wallet.objects.get(kind="system", currency="USD").id
    )
    before = ledger_state()

    response = api_client(world["alice"]).post(
        "/api/v1/transfers",
        {
            "source_wallet_id": str(world["a_usd"].id),
            "destination_wallet_id": str(destination_id),
            "amount": 10,
        },
        format="json",
        **key(),
    )

    assert_problem(response, 404, "not_found")
    assert ledger_state() == before


def test_transfer_across_currencies_is_422(api_client, world):
    before = ledger_state()

    response = api_client(world["alice"]).post(
        "/api/v1/transfers", body_for(world["a_eur"], world["b_usd"], 100), format="json", **key()
    )

    assert_problem(response, 422, "currency_mismatch")
    assert ledger_state() == before


def test_transfer_to_the_same_wallet_is_422(api_client, world):
    before = ledger_state()

    response = api_client(world["alice"]).post(
        "/api/v1/transfers", body_for(world["a_usd"], world["a_usd"], 100), format="json", **key()
    )

    assert_problem(response, 422, "same_wallet")
    assert ledger_state() == before


def test_transfer_beyond_the_balance_is_insufficient_funds(api_client, world):
    before = ledger_state()

    response = api_client(world["alice"]).post(
        "/api/v1/transfers", body_for(world["a_usd"], world["b_usd"], 1001), format="json", **key()
    )

    assert_problem(response, 422, "insufficient_funds")
    assert ledger_state() == before


def test_transfer_needs_authentication(api_client, world):
    before = ledger_state()

    response = api_client(None).post(
        "/api/v1/transfers", body_for(world["a_usd"], world["b_usd"], 10), format="json", **key()
    )

    assert_problem(response, 401, "not_authenticated")
    assert ledger_state() == before


# --- list and retrieve ---------------------------------------------------------------


@pytest.fixture
def traffic(api_client, world):
    """alice -> bob (100) and bob -> carol (50), on top of the funding deposits."""
    a_to_b = ledger.transfer_create(
        source_wallet_id=world["a_usd"].id,
        destination_wallet_id=world["b_usd"].id,
        initiated_by_id=world["alice"].id,
        amount=100,
    )
    b_to_c = ledger.transfer_create(
        source_wallet_id=world["b_usd"].id,
        destination_wallet_id=world["c_usd"].id,
        initiated_by_id=world["bob"].id,
        amount=50,
    )
    return {"a_to_b": a_to_b, "b_to_c": b_to_c}


def deposits_into(wallet: Wallet) -> set[str]:
    return {
        str(pk)
        for pk in Transfer.objects.filter(kind="deposit", destination_wallet=wallet).values_list(
            "id", flat=True
        )
    }


def listed_ids(client, params: dict | None = None) -> list[str]:
    response = client.get("/api/v1/transfers", params or {})
    assert response.status_code == 200, response.content
    body = response.json()
    assert all(set(t) >= TRANSFER_FIELDS for t in body["results"])
    return [t["id"] for t in body["results"]]


@SLASHES
def test_list_shows_only_transfers_touching_the_callers_wallets(api_client, world, traffic, slash):
    alice_sees = set(listed_ids(api_client(world["alice"])))
    bob_sees = set(listed_ids(api_client(world["bob"])))
    carol_sees = set(listed_ids(api_client(world["carol"])))
    response = api_client(world["alice"]).get(f"/api/v1/transfers{slash}")

    a_to_b, b_to_c = str(traffic["a_to_b"].id), str(traffic["b_to_c"].id)
    alice_deposits = (
        deposits_into(world["a_usd"]) | deposits_into(world["a_usd2"]) | deposits_into(world["a_eur"])
    )
    assert alice_sees == alice_deposits | {a_to_b}
    assert bob_sees == deposits_into(world["b_usd"]) | {a_to_b, b_to_c}
    assert carol_sees == {b_to_c}
    assert {t["id"] for t in response.json()["results"]} == alice_sees


def test_list_filters_by_own_wallet(api_client, world, traffic):
    client = api_client(world["alice"])

    only_usd = set(listed_ids(client, {"wallet": str(world["a_usd"].id)}))
    only_eur = set(listed_ids(client, {"wallet": str(world["a_eur"].id)}))

    assert only_usd == deposits_into(world["a_usd"]) | {str(traffic["a_to_b"].id)}
    assert only_eur == deposits_into(world["a_eur"])


def test_list_filtered_by_someone_elses_wallet_is_404(api_client, world, traffic):
    client = api_client(world["alice"])

    # Bob's wallet shares a transfer with alice, but its other transfers are none of her business.
    assert_problem(client.get("/api/v1/transfers", {"wallet": str(world["b_usd"].id)}), 404, "not_found")
    assert_problem(client.get("/api/v1/transfers", {"wallet": str(uuid.uuid4())}), 404, "not_found")


# An empty value is no filter the client could mean; the schema says `wallet` is a UUID.
@pytest.mark.parametrize("wallet", ["not-a-uuid", ""], ids=["malformed", "empty"])
def test_list_filter_with_a_malformed_wallet_id_is_400(api_client, world, wallet):
    response = api_client(world["alice"]).get("/api/v1/transfers", {"wallet": wallet})

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["wallet"]


@pytest.mark.parametrize("cursor", ["garbage", "cD1hYmM="], ids=["garbage", "forged-position-p=abc"])
def test_list_rejects_garbage_cursors(api_client, world, traffic, cursor):
    response = api_client(world["alice"]).get("/api/v1/transfers", {"cursor": cursor})

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["cursor"]


@SLASHES
def test_retrieve_by_either_party_and_404_for_a_stranger(api_client, world, traffic, slash):
    transfer = traffic["a_to_b"]
    url = f"/api/v1/transfers/{transfer.id}{slash}"

    by_source = api_client(world["alice"]).get(url)
    by_destination = api_client(world["bob"]).get(url)
    by_stranger = api_client(world["carol"]).get(url)

    assert by_source.status_code == by_destination.status_code == 200
    assert by_source.json() == by_destination.json()
    assert by_source.json()["amount"] == 100
    body = assert_problem(by_stranger, 404, "not_found")
    assert "amount" not in body


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "42", str(uuid.uuid4())])
def test_retrieve_unknown_or_malformed_id_is_404(api_client, world, bad_id):
    assert_problem(api_client(world["alice"]).get(f"/api/v1/transfers/{bad_id}"), 404, "not_found")


# --- idempotency ---------------------------------------------------------------------

ENDPOINTS = ["deposit", "withdrawal", "transfer"]


def request_for(world, endpoint: str, amount: int = 100, **extra) -> tuple[str, dict]:
    if endpoint == "transfer":
        return "/api/v1/transfers", body_for(world["a_usd"], world["b_usd"], amount, **extra)
    return f"/api/v1/wallets/{world['a_usd'].id}/{endpoint}s", {"amount": amount, **extra}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("header", [None, ""], ids=["absent", "empty"])
def test_missing_idempotency_key_is_400_and_moves_nothing(api_client, world, endpoint, header):
    url, data = request_for(world, endpoint)
    before = ledger_state()
    headers = {} if header is None else key(header)

    response = api_client(world["alice"]).post(url, data, format="json", **headers)

    assert_problem(response, 400, "idempotency_key_required")
    assert ledger_state() == before
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param("k" * 256, id="256-chars"),
        pytest.param("abc\x01def", id="control-char"),
        pytest.param("tab\there", id="tab"),
        pytest.param("del\x7f", id="DEL"),
        pytest.param("new\nline", id="newline"),
        # Python's `$` also matches before a final newline; the schema's pattern (ECMA) does not.
        pytest.param("trailing-newline\n", id="trailing-newline"),
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_invalid_idempotency_key_is_400(api_client, world, endpoint, bad_key):
    url, data = request_for(world, endpoint)
    before = ledger_state()

    response = api_client(world["alice"]).post(url, data, format="json", **key(bad_key))

    assert_problem(response, 400, "idempotency_key_invalid")
    assert ledger_state() == before
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.parametrize("good_key", ["k" * 255, "x", "with spaces and ~!@#$%^&*()"])
def test_idempotency_key_boundaries_are_accepted(api_client, world, good_key):
    url, data = request_for(world, "transfer")

    response = api_client(world["alice"]).post(url, data, format="json", **key(good_key))

    assert response.status_code == 201, response.content
    assert IdempotencyRecord.objects.get().key == good_key


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_replay_returns_the_same_bytes_and_moves_nothing_more(api_client, world, endpoint):
    url, data = request_for(world, endpoint)
    client = api_client(world["alice"])
    headers = key()

    first = client.post(url, data, format="json", **headers)
    after_first = ledger_state()
    second = client.post(url, data, format="json", **headers)

    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    assert second.status_code == first.status_code
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"]
    assert second["Idempotent-Replayed"] == "true"
    assert ledger_state() == after_first
    assert IdempotencyRecord.objects.count() == 1


def test_replay_matches_a_reordered_and_reformatted_body(api_client, world):
    url, data = request_for(world, "transfer", reference="r-1")
    client = api_client(world["alice"])
    headers = key()
    first = client.post(url, data, format="json", **headers)
    after_first = ledger_state()
    reordered = json.dumps(dict(reversed(list(data.items()))), indent=2).encode()

    second = client.generic("POST", url, data=reordered, content_type="application/json", **headers)

    assert second.status_code == 201
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert ledger_state() == after_first


def test_replay_with_or_without_trailing_slash_is_the_same_request(api_client, world):
    url, data = request_for(world, "transfer")
    client = api_client(world["alice"])
    headers = key()
    first = client.post(url, data, format="json", **headers)
    after_first = ledger_state()

    second = client.post(url + "/", data, format="json", **headers)

    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert ledger_state() == after_first


def test_idempotency_keys_are_scoped_to_the_user(api_client, world):
    shared = key("same-key-for-both")
    alice_response = api_client(world["alice"]).post(
        f"/api/v1/wallets/{world['a_usd'].id}/deposits", {"amount": 10}, format="json", **shared
    )
    bob_response = api_client(world["bob"]).post(
        f"/api/v1/wallets/{world['b_usd'].id}/deposits", {"amount": 10}, format="json", **shared
    )

    assert alice_response.status_code == bob_response.status_code == 201
    assert "Idempotent-Replayed" not in bob_response
    assert alice_response.json()["transfer"]["id"] != bob_response.json()["transfer"]["id"]
    world["b_usd"].refresh_from_db()
    assert world["b_usd"].balance == 510


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_same_key_with_a_different_body_is_422(api_client, world, endpoint):
    client = api_client(world["alice"])
    headers = key()
    url, data = request_for(world, endpoint, amount=100)
    assert client.post(url, data, format="json", **headers).status_code == 201
    after_first = ledger_state()
    _, changed = request_for(world, endpoint, amount=101)

    response = client.post(url, changed, format="json", **headers)

    assert_problem(response, 422, "idempotency_key_reused")
    assert "Idempotent-Replayed" not in response
    assert ledger_state() == after_first


@pytest.mark.parametrize(
    "second_path",
    ["{other}/deposits", "{same}/withdrawals"],
    ids=["other-wallet", "other-endpoint"],
)
def test_same_key_on_a_different_path_is_422(api_client, world, second_path):
    client = api_client(world["alice"])
    headers = key()
    first = client.post(
        f"/api/v1/wallets/{world['a_usd'].id}/deposits", {"amount": 100}, format="json", **headers
    )
    assert first.status_code == 201
    after_first = ledger_state()
    path = "/api/v1/wallets/" + second_path.format(other=world["a_usd2"].id, same=world["a_usd"].id)

    response = client.post(path, {"amount": 100}, format="json", **headers)

    assert_problem(response, 422, "idempotency_key_reused")
    assert ledger_state() == after_first


def test_same_key_on_transfers_after_a_deposit_is_422(api_client, world):
    client = api_client(world["alice"])
    headers = key()
    assert (
        client.post(
            f"/api/v1/wallets/{world['a_usd'].id}/deposits", {"amount": 100}, format="json", **headers
        )
    ).status_code == 201
    after_first = ledger_state()

    response = client.post(
        "/api/v1/transfers", body_for(world["a_usd"], world["b_usd"], 100), format="json", **headers
    )

    assert_problem(response, 422, "idempotency_key_reused")
    assert ledger_state() == after_first


def test_stored_business_error_replays_even_after_funding(api_client, world):
    client = api_client(world["alice"])
    headers = key()
    url, data = request_for(world, "transfer", amount=1500)
    first = client.post(url, data, format="json", **headers)
    assert_problem(first, 422, "insufficient_funds")
    ledger.deposit_create(wallet_id=world["a_usd"].id, owner_id=world["alice"].id, amount=5000)
    funded = ledger_state()

    second = client.post(url, data, format="json", **headers)

    assert second.status_code == 422
    assert second.content == first.content
    assert second["Content-Type"] == PROBLEM
    assert second["Idempotent-Replayed"] == "true"
    assert ledger_state() == funded
    # A new key is a new request, and now it can be paid.
    assert client.post(url, data, format="json", **key()).status_code == 201


def test_a_repeat_that_would_now_be_refused_still_replays_the_first_success(api_client, world):
    """A repeat runs no lookup first: it is refused or conflicts, rolls back, and replays."""
    from audit.models import AuditEvent

    client = api_client(world["alice"])
    headers = key()
    url, data = request_for(world, "transfer", amount=1000, reference="once")
    first = client.post(url, data, format="json", **headers)
    assert first.status_code == 201, first.content
    Wallet.objects.filter(pk=world["a_usd"].id).update(status="frozen")  # and its money is gone too
    state, records, audits = ledger_state(), IdempotencyRecord.objects.count(), AuditEvent.objects.count()

    second = client.post(url, data, format="json", **headers)

    assert second.status_code == 201
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert ledger_state() == state
    assert IdempotencyRecord.objects.count() == records
    assert AuditEvent.objects.count() == audits  # no money_failed event for the repeat


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_validation_errors_are_not_stored(api_client, world, endpoint):
    client = api_client(world["alice"])
    headers = key()
    url, bad = request_for(world, endpoint)
    bad["amount"] = "100"
    rejected = client.post(url, bad, format="json", **headers)
    assert_problem(rejected, 400, "validation_error")
    assert IdempotencyRecord.objects.count() == 0
    before = ledger_state()

    _, fixed = request_for(world, endpoint)
    retried = client.post(url, fixed, format="json", **headers)

    assert retried.status_code == 201, retried.content
    assert "Idempotent-Replayed" not in retried
    assert ledger_state() != before
    assert IdempotencyRecord.objects.count() == 1


# --- references ----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["withdrawal", "deposit", "transfer"])
def test_a_reference_used_on_someone_elses_wallet_is_not_revealed(api_client, world, endpoint):
    """Naming a wallet you do not own answers 404 whatever references it holds."""
    bob_wallet = world["b_usd"]
    used = api_client(world["bob"]).post(
        f"/api/v1/wallets/{bob_wallet.id}/deposits",
        {"amount": 5, "reference": "secret"},
        format="json",
        **key(),
    )
    assert used.status_code == 201, used.content
    if endpoint == "transfer":
        url, data = "/api/v1/transfers", body_for(bob_wallet, world["a_usd"], 1, reference="secret")
    else:
        url, data = f"/api/v1/wallets/{bob_wallet.id}/{endpoint}s", {"amount": 1, "reference": "secret"}
    before = ledger_state()

    response = api_client(world["alice"]).post(url, data, format="json", **key())

    assert_problem(response, 404, "not_found")
    assert "original_transfer_id" not in response.json()
    assert ledger_state() == before


def test_duplicate_reference_is_409_even_after_idempotency_records_are_gone(api_client, world):
    client = api_client(world["alice"])
    first_key = key()
    url, data = request_for(world, "transfer", amount=100, reference="inv-42")
    first = client.post(url, data, format="json", **first_key)
    assert first.status_code == 201
    original_id = first.json()["id"]
    after_first = ledger_state()

    # A new key with the same reference (even with another amount) names the original.
    _, other_amount = request_for(world, "transfer", amount=7, reference="inv-42")
    duplicate = client.post(url, other_amount, format="json", **key())
    body = assert_problem(duplicate, 409, "duplicate_reference")
    assert body["original_transfer_id"] == original_id

    IdempotencyRecord.objects.all().delete()
    still = client.post(url, data, format="json", **key())
    # Even the original key, its record gone, cannot move the money twice.
    retried_original = client.post(url, data, format="json", **first_key)

    assert assert_problem(still, 409, "duplicate_reference")["original_transfer_id"] == original_id
    assert assert_problem(retried_original, 409, "duplicate_reference")["original_transfer_id"] == original_id
    assert ledger_state() == after_first


def test_reference_is_unique_per_wallet_across_movement_kinds(api_client, world):
    client = api_client(world["alice"])
    deposit = client.post(
        f"/api/v1/wallets/{world['a_usd'].id}/deposits",
        {"amount": 10, "reference": "shared"},
        format="json",
        **key(),
    )
    assert deposit.status_code == 201
    before = ledger_state()

    withdrawal = client.post(
        f"/api/v1/wallets/{world['a_usd'].id}/withdrawals",
        {"amount": 10, "reference": "shared"},
        format="json",
        **key(),
    )
    transfer = client.post(
        "/api/v1/transfers",
        body_for(world["a_usd"], world["b_usd"], 10, reference="shared"),
        format="json",
        **key(),
    )

    original = deposit.json()["transfer"]["id"]
    assert assert_problem(withdrawal, 409, "duplicate_reference")["original_transfer_id"] == original
    assert assert_problem(transfer, 409, "duplicate_reference")["original_transfer_id"] == original
    assert ledger_state() == before


def test_same_reference_on_a_different_wallet_is_fine(api_client, world):
    alice = api_client(world["alice"])
    first = alice.post(
        "/api/v1/transfers",
        body_for(world["a_usd"], world["b_usd"], 10, reference="inv-1"),
        format="json",
        **key(),
    )
    second = alice.post(
        "/api/v1/transfers",
        body_for(world["a_usd2"], world["b_usd"], 10, reference="inv-1"),
        format="json",
        **key(),
    )
    # Bob's wallet received "inv-1" but the reference belongs to the sending wallet.
    third = api_client(world["bob"]).post(
        "/api/v1/transfers",
        body_for(world["b_usd"], world["c_usd"], 10, reference="inv-1"),
        format="json",
        **key(),
    )

    assert (first.status_code, second.status_code, third.status_code) == (201, 201, 201)
    assert len({first.json()["id"], second.json()["id"], third.json()["id"]}) == 3


# --- query budgets -------------------------------------------------------------------
# Counted inside pytest-django's test transaction, so each service transaction shows
# as SAVEPOINT/RELEASE; in production those two are BEGIN/COMMIT. A new query on the
# money path must raise a budget here on purpose, never silently.


def test_transfer_post_query_budget(api_client, world, django_assert_num_queries):
    client = api_client(world["alice"])
    url, data = request_for(world, "transfer", amount=10, reference="budget-1")

    # (the user comes from the authentication cache: no user query; no idempotency lookup
    # either: a repeated key fails the write statement on the record's unique index)
    # 1 SAVEPOINT (the movement's transaction)
    # 2 SELECT transfer by (the caller's wallet, reference) (duplicate reference check; only
    #   with a reference, before the lock)
    # 3 SELECT ... FOR NO KEY UPDATE the caller's source wallet and the destination, ordered by
    #   id: resolves, checks ownership and locks in one (the lock window opens)
    # 4 one statement: INSERT transfer, both ledger entries, the audit event and the
    #   idempotency record, UPDATE both balances
    # 5 RELEASE SAVEPOINT (the lock window closes at COMMIT)
    client.get("/api/v1/auth/me")  # warm the authentication cache, as any earlier request would
    with django_assert_num_queries(5):
        response = client.post(url, data, format="json", **key())

    assert response.status_code == 201, response.content


def test_deposit_post_query_budget(
    api_client, world, django_assert_num_queries, django_capture_on_commit_callbacks
):
    # A process caches a currency's system wallet id once it is committed; its first
    # deposit in a currency costs one more SELECT (or INSERT). Warm it as production would.
    with django_capture_on_commit_callbacks(execute=True):
        system_wallet_id(currency="USD")
    client = api_client(world["alice"])
    url, data = request_for(world, "deposit", amount=10, reference="budget-2")

    # (the user comes from the authentication cache: no user query; no idempotency lookup)
    # 1 SAVEPOINT
    # 2 SELECT transfer by (the caller's wallet, reference) (duplicate reference check)
    # 3 SELECT ... FOR NO KEY UPDATE the caller's wallet (the system wallet is never locked)
    # 4 one statement: INSERT transfer, both ledger entries, the audit event and the
    #   idempotency record, UPDATE the balance
    # 5 RELEASE SAVEPOINT
    client.get("/api/v1/auth/me")  # warm the authentication cache
    with django_assert_num_queries(5):
        response = client.post(url, data, format="json", **key())

    assert response.status_code == 201, response.content


def test_history_get_query_budget(api_client, world, traffic, django_assert_max_num_queries):
    client = api_client(world["alice"])
    for amount in range(1, 30):
        ledger.deposit_create(wallet_id=world["a_usd"].id, owner_id=world["alice"].id, amount=amount)

    # (the user comes from the authentication cache once warm)
    # 1 SELECT the wallet's ownership (a primary-key look-up)
    # 2 SELECT one page of entries joined to their transfers (no COUNT, no N+1)
    client.get(f"/api/v1/wallets/{world['a_usd'].id}")  # warm the authentication cache
    with django_assert_max_num_queries(2):
        response = client.get(f"/api/v1/wallets/{world['a_usd'].id}/transactions", {"limit": 25})

    assert response.status_code == 200
    assert len(response.json()["results"]) == 25
