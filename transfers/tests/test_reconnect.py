"""A money request survives its database connection dying under it (failover, restart)."""

import pytest

from conftest import idem
from testing.database import kill_current_backend
from transfers import services
from transfers.models import IdempotencyRecord, Transfer

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_lost_connection_before_the_movement_is_retried_once(
    make_user, make_wallet, api_client, monkeypatch
):
    user = make_user()
    wallet = make_wallet(user, balance=1000)
    original = services._lock
    calls = {"n": 0}

    def flaky_lock(m):
        calls["n"] += 1
        if calls["n"] == 1:
            kill_current_backend()
        return original(m)

    monkeypatch.setattr(services, "_lock", flaky_lock)
    response = api_client(user).post(
        f"/api/v1/wallets/{wallet.id}/withdrawals", {"amount": 300}, format="json", **idem()
    )

    assert response.status_code == 201, response.content
    assert calls["n"] == 2  # the transaction ran again on a fresh connection
    wallet.refresh_from_db()
    assert wallet.balance == 700
    assert Transfer.objects.filter(kind="withdrawal").count() == 1


def test_a_connection_lost_before_commit_rolls_back_and_runs_exactly_once(
    make_user, make_wallet, api_client, monkeypatch
):
    user = make_user()
    wallet = make_wallet(user, balance=1000)
    original = services.PreparedMovement.write
    calls = {"n": 0}

    def dying_write(prepared, **kwargs):
        transfer = original(prepared, **kwargs)  # the movement and its idempotency record
        calls["n"] += 1
        if calls["n"] == 1:
            kill_current_backend()  # the COMMIT that follows never reaches the server
        return transfer

    monkeypatch.setattr(services.PreparedMovement, "write", dying_write)
    key = idem()
    response = api_client(user).post(
        f"/api/v1/wallets/{wallet.id}/withdrawals", {"amount": 250}, format="json", **key
    )

    assert response.status_code == 201, response.content
    assert calls["n"] == 2
    wallet.refresh_from_db()
    assert wallet.balance == 750
    assert Transfer.objects.filter(kind="withdrawal").count() == 1
    assert IdempotencyRecord.objects.filter(key=key["HTTP_IDEMPOTENCY_KEY"]).count() == 1


def test_a_read_that_keeps_losing_its_connection_answers_503_not_500(
    make_user, make_wallet, api_client, monkeypatch
):
    from transfers import selectors

    user = make_user()
    wallet = make_wallet(user)
    original = selectors.wallet_history

    def dying_history(**kwargs):
        kill_current_backend()
        return original(**kwargs)

    monkeypatch.setattr(selectors, "wallet_history", dying_history)
    response = api_client(user).get(f"/api/v1/wallets/{wallet.id}/transactions")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "database_unavailable"
    assert response["Retry-After"] == "1"


def test_a_read_whose_connection_died_while_idle_is_run_again_and_succeeds(
    make_user, make_wallet, api_client, monkeypatch
):
    """No ping before each request: a connection that died between requests costs a retry, not a 503."""
    from transfers import selectors

    user = make_user()
    wallet = make_wallet(user, balance=500)
    original = selectors.wallet_history
    calls = {"n": 0}

    def history_on_a_dead_connection(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            kill_current_backend()
        return original(**kwargs)

    monkeypatch.setattr(selectors, "wallet_history", history_on_a_dead_connection)
    response = api_client(user).get(f"/api/v1/wallets/{wallet.id}/transactions")

    assert response.status_code == 200, response.content
    assert calls["n"] == 2
    assert [entry["amount"] for entry in response.json()["results"]] == [500]


def test_a_write_that_is_not_money_answers_503_once_and_is_not_rerun(make_user, api_client, monkeypatch):
    from wallets import services

    user = make_user()
    original = services.wallet_create
    calls = {"n": 0}

    def create_on_a_dead_connection(**kwargs):
        calls["n"] += 1
        kill_current_backend()
        return original(**kwargs)

    monkeypatch.setattr(services, "wallet_create", create_on_a_dead_connection)
    response = api_client(user).post("/api/v1/wallets", {"currency": "USD"}, format="json")

    assert response.status_code == 503, response.content
    assert response.json()["code"] == "database_unavailable"
    assert calls["n"] == 1
    monkeypatch.setattr(services, "wallet_create", original)
    again = api_client(user).post("/api/v1/wallets", {"currency": "USD"}, format="json")
    assert again.status_code == 201, again.content
