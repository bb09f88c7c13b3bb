import pytest

from conftest import idem
from transfers.models import LedgerEntry

pytestmark = pytest.mark.django_db


def test_deposit_then_transfer_then_history(make_user, make_wallet, api_client):
    alice, bob = make_user(), make_user()
    source, destination = make_wallet(alice), make_wallet(bob)
    client = api_client(alice)

    response = client.post(f"/api/v1/wallets/{source.id}/deposits", {"amount": 1000}, format="json", **idem())
    assert response.status_code == 201, response.content
    assert response.json()["wallet"]["balance"] == 1000

    response = client.post(
        "/api/v1/transfers",
        {"source_wallet_id": str(source.id), "destination_wallet_id": str(destination.id), "amount": 400},
        format="json",
        **idem(),
    )
    assert response.status_code == 201, response.content
    source.refresh_from_db()
    destination.refresh_from_db()
    assert (source.balance, destination.balance) == (600, 400)

    history = client.get(f"/api/v1/wallets/{source.id}/transactions").json()["results"]
    assert [(e["type"], e["amount"], e["balance_after"]) for e in history] == [
        ("transfer_out", -400, 600),
        ("deposit", 1000, 1000),
    ]
    assert LedgerEntry.objects.count() == 4
