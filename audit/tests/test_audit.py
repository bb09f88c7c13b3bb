"""The audit trail: one event per financial or security action, append-only in the database."""

import pytest
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from audit.models import AuditEvent
from conftest import idem
from transfers.models import Transfer

pytestmark = pytest.mark.django_db

CLIENT = {
    "REMOTE_ADDR": "203.0.113.7",
    "HTTP_USER_AGENT": "audit-test/1.0",
    "HTTP_X_REQUEST_ID": "req-audit-1",
}


def events(action: str):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def assert_context(event: AuditEvent, actor_id: int | None) -> None:
    assert event.actor_id == actor_id
    assert event.client_ip == "203.0.113.7"
    assert event.user_agent == "audit-test/1.0"
    assert event.request_id == "req-audit-1"


def test_money_movements_and_wallet_creation_are_audited_with_context(make_user, api_client):
    alice, bob = make_user(), make_user()
    client = api_client(alice)
    wallet_id = client.post("/api/v1/wallets", {"currency": "USD"}, format="json", **CLIENT).json()["id"]
    bob_wallet = api_client(bob).post("/api/v1/wallets", {"currency": "USD"}, format="json").json()["id"]
    base = f"/api/v1/wallets/{wallet_id}"
    assert (
        client.post(f"{base}/deposits", {"amount": 500}, format="json", **idem(), **CLIENT).status_code == 201
    )
    assert (
        client.post(f"{base}/withdrawals", {"amount": 100}, format="json", **idem(), **CLIENT).status_code
        == 201
    )
    body = {"source_wallet_id": wallet_id, "destination_wallet_id": bob_wallet, "amount": 150}
    assert client.post("/api/v1/transfers", body, format="json", **idem(), **CLIENT).status_code == 201

    (created,) = [e for e in events(AuditEvent.Action.WALLET_CREATED) if e.target_id == wallet_id]
    assert_context(created, alice.id)
    assert created.currency == "USD"
    for action, amount in [
        (AuditEvent.Action.DEPOSIT, 500),
        (AuditEvent.Action.WITHDRAWAL, 100),
        (AuditEvent.Action.TRANSFER, 150),
    ]:
        (event,) = events(action)
        assert_context(event, alice.id)
        assert (event.amount, event.currency, event.target_type) == (amount, "USD", "transfer")
        assert Transfer.objects.filter(pk=event.target_id, amount=amount).exists()
    (transfer_event,) = events(AuditEvent.Action.TRANSFER)
    assert transfer_event.details["destination_wallet_id"] == bob_wallet


def test_a_refused_movement_is_audited_with_its_reason_and_leaves_no_success_event(
    make_user, make_wallet, api_client
):
    alice = make_user()
    wallet = make_wallet(alice, balance=50)
    response = api_client(alice).post(
        f"/api/v1/wallets/{wallet.id}/withdrawals", {"amount": 80}, format="json", **idem(), **CLIENT
    )
    assert response.status_code == 422
    (failed,) = events(AuditEvent.Action.MONEY_FAILED)
    assert_context(failed, alice.id)
    assert (failed.outcome, failed.amount, failed.target_id) == ("insufficient_funds", 80, str(wallet.id))
    assert failed.details["kind"] == "withdrawal"
    assert events(AuditEvent.Action.WITHDRAWAL) == []


def test_login_success_failure_refresh_and_logout_are_audited(make_user):
    user = make_user(username="carol")
    client = APIClient()
    bad = client.post(
        "/api/v1/auth/token", {"username": "carol", "password": "wrong"}, format="json", **CLIENT
    )
    assert bad.status_code == 401
    good = client.post(
        "/api/v1/auth/token", {"username": "carol", "password": "S3cure-pass-123"}, format="json", **CLIENT
    )
    assert good.status_code == 200
    refreshed = client.post(
        "/api/v1/auth/token/refresh", {"refresh": good.json()["refresh"]}, format="json", **CLIENT
    )
    assert refreshed.status_code == 200
    out = client.post(
        "/api/v1/auth/logout", {"refresh": refreshed.json()["refresh"]}, format="json", **CLIENT
    )
    assert out.status_code == 205

    (failed,) = events(AuditEvent.Action.LOGIN_FAILED)
    assert_context(failed, None)
    assert (failed.actor_label, failed.outcome) == ("carol", "invalid_credentials")
    for action in (
        AuditEvent.Action.LOGIN_SUCCEEDED,
        AuditEvent.Action.TOKEN_REFRESHED,
        AuditEvent.Action.LOGOUT,
    ):
        (event,) = events(action)
        assert_context(event, user.id)
    # No secret is stored anywhere in the trail.
    for event in AuditEvent.objects.all():
        text = f"{event.details} {event.actor_label} {event.target_id}"
        assert "S3cure" not in text and "wrong" not in text and "eyJ" not in text


def test_admin_changes_are_audited(make_user, make_wallet, client):
    admin = make_user(username="operator")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    wallet = make_wallet(make_user(), name="main")
    client.force_login(admin)
    url = f"/admin/wallets/wallet/{wallet.id}/change/"
    response = client.post(url, {"name": "main", "status": "frozen"}, **CLIENT)
    assert response.status_code == 302, response.content[:500]
    wallet.refresh_from_db()
    assert wallet.status == "frozen"

    # Both rows name the operator and the old and new value of what changed (and only that).
    (change,) = events(AuditEvent.Action.ADMIN_CHANGE)
    assert_context(change, admin.id)
    assert (change.target_type, change.target_id) == ("wallet", str(wallet.id))
    assert change.details["changes"] == {"status": {"old": "active", "new": "frozen"}}
    (updated,) = [e for e in events(AuditEvent.Action.WALLET_UPDATED) if e.target_id == str(wallet.id)]
    assert_context(updated, admin.id)
    assert updated.details == {"status": {"old": "active", "new": "frozen"}}


def test_the_database_refuses_to_change_or_delete_an_event(make_user, make_wallet):
    make_wallet(make_user())
    event = AuditEvent.objects.first()
    for sql in (
        "UPDATE audit_auditevent SET outcome = 'tampered' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.id])
    event.refresh_from_db()
    assert event.outcome == "ok"


def test_the_admin_shows_the_trail_read_only(make_user, make_wallet, client):
    admin = make_user(username="auditor")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    make_wallet(make_user())
    client.force_login(admin)
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get("/admin/audit/auditevent/?action=wallet.created").status_code == 200
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    event = AuditEvent.objects.first()
    assert client.post(f"/admin/audit/auditevent/{event.id}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.id).exists()
