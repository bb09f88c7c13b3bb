"""A ledger with something in every section of the overview, and the people who look at it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from django.test import override_settings

from corrections.models import AdjustmentProposal
from transfers.reconciliation import reconciliation_run
from users.models import User
from wallets.models import Wallet

STAFF_PASSWORD = "Staff-pass-4242"


def idem() -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}


@dataclass
class Scene:
    staff: User
    alice: User
    bob: User
    usd: Wallet
    eur: Wallet
    bob_usd: Wallet


@pytest.fixture
def staff(make_user) -> User:
    user = make_user("operator", password=STAFF_PASSWORD)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def scene(make_user, make_wallet, api_client, staff) -> Scene:
    """USD 150.00 deposited and moved around, EUR 20.00; one refused withdrawal, one
    rate-limited client, one pending hold expiring in an hour, one proposal waiting, one
    reconciliation run."""
    alice, bob = make_user("alice"), make_user("bob")
    usd, eur, bob_usd = make_wallet(alice), make_wallet(alice, currency="EUR"), make_wallet(bob)
    client = api_client(alice)
    for path, body in [
        (f"/api/v1/wallets/{usd.id}/deposits", {"amount": 15000}),
        (f"/api/v1/wallets/{eur.id}/deposits", {"amount": 2000}),
        (f"/api/v1/wallets/{usd.id}/withdrawals", {"amount": 1250}),
        (
            "/api/v1/transfers",
            {"source_wallet_id": str(usd.id), "destination_wallet_id": str(bob_usd.id), "amount": 3000},
        ),
        (f"/api/v1/wallets/{usd.id}/holds", {"amount": 700, "expires_in_seconds": 3600}),
    ]:
        response = client.post(path, body, format="json", **idem())
        assert response.status_code == 201, response.content
    refused = client.post(
        f"/api/v1/wallets/{eur.id}/withdrawals", {"amount": 999_999}, format="json", **idem()
    )
    assert refused.status_code == 422, refused.content
    with override_settings(RATE_LIMITS={"user": "2/d", "money": "100000/m", "wallet_outgoing": "100000/m"}):
        statuses = [api_client(bob).get("/api/v1/wallets").status_code for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    AdjustmentProposal.objects.create(
        wallet=bob_usd, amount=-500, currency="USD", reason="duplicate payout", proposed_by=staff
    )
    reconciliation_run()
    return Scene(staff, alice, bob, Wallet.objects.get(pk=usd.pk), Wallet.objects.get(pk=eur.pk), bob_usd)
