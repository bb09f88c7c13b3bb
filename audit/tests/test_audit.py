"""The audit trail: one event per financial or security action, append-only in the database."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditEvent
from conftest import admin_columns, admin_page, admin_row, idem
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
    assert failed.currency == "USD"
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


# --- refusals name what they can -----------------------------------------------------


def test_a_refused_duplicate_reference_is_audited_with_the_currency(make_user, make_wallet, api_client):
    alice = make_user()
    wallet = make_wallet(alice, currency="EUR", balance=500)
    client = api_client(alice)
    url = f"/api/v1/wallets/{wallet.id}/withdrawals"
    assert client.post(url, {"amount": 5, "reference": "r-1"}, format="json", **idem()).status_code == 201

    again = client.post(url, {"amount": 5, "reference": "r-1"}, format="json", **idem(), **CLIENT)

    assert again.status_code == 409
    (failed,) = events(AuditEvent.Action.MONEY_FAILED)
    assert (failed.outcome, failed.currency, failed.amount) == ("duplicate_reference", "EUR", 5)


def test_a_reused_idempotency_key_is_audited_as_a_refusal(make_user, make_wallet, api_client):
    alice = make_user()
    wallet = make_wallet(alice, balance=500)
    client = api_client(alice)
    url = f"/api/v1/wallets/{wallet.id}/withdrawals"
    header = {"HTTP_IDEMPOTENCY_KEY": "once"}
    assert client.post(url, {"amount": 5}, format="json", **header).status_code == 201

    reused = client.post(url, {"amount": 6}, format="json", **header, **CLIENT)

    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    (failed,) = events(AuditEvent.Action.MONEY_FAILED)
    assert_context(failed, alice.id)
    assert (failed.outcome, failed.amount, failed.target_id) == ("idempotency_key_reused", 6, str(wallet.id))
    assert failed.details["kind"] == "withdrawal"
    # A replay of the first request is no refusal: nothing more is written.
    assert client.post(url, {"amount": 5}, format="json", **header).status_code == 201
    assert len(events(AuditEvent.Action.MONEY_FAILED)) == 1


# --- operator actions name the operator and the values ------------------------------------


def user_form(user, **changes) -> dict:
    """The Django UserAdmin change form as the browser would post it."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "initial-date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def test_changing_a_user_in_the_admin_records_old_and_new_values(admin_client, admin_user, make_user):
    clerk = make_user(username="clerk")

    response = admin_client.post(
        f"/admin/users/user/{clerk.id}/change/", user_form(clerk, is_staff="on", email="clerk@corp.example")
    )

    assert response.status_code == 302, response.content[:1000]
    (change,) = events(AuditEvent.Action.ADMIN_CHANGE)
    assert change.actor_id == admin_user.id
    assert change.details["changes"] == {
        "is_staff": {"old": False, "new": True},
        "email": {"old": "clerk@example.com", "new": "clerk@corp.example"},
    }


def test_a_password_change_in_the_admin_is_audited_without_the_password(admin_client, admin_user, make_user):
    clerk = make_user(username="clerk")

    response = admin_client.post(
        f"/admin/users/user/{clerk.id}/password/",
        {"password1": "N3w-secret-pass!", "password2": "N3w-secret-pass!", "usable_password": "true"},
    )

    assert response.status_code == 302, response.content[:1000]
    (change,) = events(AuditEvent.Action.ADMIN_CHANGE)
    assert change.actor_id == admin_user.id
    assert "changes" not in change.details
    assert "N3w-secret" not in str(change.details)


def test_the_audit_list_is_narrow_and_shows_amounts_in_major_units(admin_client, make_user, make_wallet):
    alice = make_user()
    make_wallet(alice, currency="KWD", balance=1_500)

    def listed() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as captured:
            html = admin_page(admin_client, "/admin/audit/auditevent/")
        return html, len(captured)

    html, few = listed()
    (deposit,) = events(AuditEvent.Action.DEPOSIT)
    row = admin_row(html, f"/admin/audit/auditevent/{deposit.id}/change/")
    assert ">1.500 KWD<" in row
    assert admin_columns(html) <= 7

    for _ in range(3):
        make_wallet(make_user(), balance=10)
    assert listed()[1] == few
