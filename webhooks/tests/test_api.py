"""/api/v1/webhook-endpoints: the secret shown once, rotation, validation, SSRF refusals,
ownership, the per-user limit, and the audit trail."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest
from django.db import connection

from audit.models import AuditEvent
from conftest import assert_problem
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.secrets import secret_decrypt

pytestmark = pytest.mark.django_db
URL = "/api/v1/webhook-endpoints"
PUBLIC = "https://93.184.215.14/hooks"  # an IP literal: public, resolves without DNS


def create(client, **body):
    return client.post(URL, {"url": PUBLIC, "event_types": ["transfer.created"], **body}, format="json")


def test_create_shows_the_secret_once_and_stores_it_encrypted(make_user, api_client):
    alice = make_user("alice")
    client = api_client(alice)

    response = create(client, description="shop")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert {k: body[k] for k in ("url", "event_types", "description", "enabled", "disabled_reason")} == {
        "url": PUBLIC, "event_types": ["transfer.created"], "description": "shop", "enabled": True,
        "disabled_reason": "",
    }  # fmt: skip
    stored = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"] not in stored.secret_encrypted
    assert secret_decrypt(stored.secret_encrypted) == body["secret"]
    shown = client.get(f"{URL}/{body['id']}").json()
    assert "secret" not in shown and shown["id"] == body["id"]
    assert "secret" not in client.get(URL).json()["results"][0]
    audit = AuditEvent.objects.get(action=AuditEvent.Action.WEBHOOK_ENDPOINT_CREATED)
    assert (audit.actor_id, audit.target_id) == (alice.id, body["id"])
    assert body["secret"] not in str(audit.details)


def test_rotation_answers_a_new_secret_and_keeps_the_old_one_for_the_grace(make_user, api_client):
    client = api_client(make_user())
    created = create(client).json()

    response = client.post(f"{URL}/{created['id']}/rotate-secret")

    assert response.status_code == 200
    body = response.json()
    assert body["secret"] != created["secret"] and body["previous_secret_expires_at"]
    stored = WebhookEndpoint.objects.get(pk=created["id"])
    assert secret_decrypt(stored.previous_secret_encrypted) == created["secret"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_SECRET_ROTATED).count() == 1


def test_patch_changes_fields_and_delete_hides_the_endpoint(make_user, api_client):
    client = api_client(make_user())
    created = create(client).json()
    target = f"{URL}/{created['id']}"

    changed = client.patch(
        target, {"event_types": ["*"], "enabled": False, "description": "x"}, format="json"
    )

    assert changed.status_code == 200
    assert (changed.json()["event_types"], changed.json()["enabled"], changed.json()["disabled_reason"]) == (
        ["*"], False, "owner",
    )  # fmt: skip
    assert client.patch(target, {"enabled": True}, format="json").json()["disabled_reason"] == ""
    assert client.delete(target).status_code == 204
    assert_problem(client.get(target), 404, "not_found")
    assert_problem(client.delete(target), 404, "not_found")
    assert client.get(URL).json()["results"] == []
    assert WebhookEndpoint.objects.get(pk=created["id"]).deleted_at is not None


def test_someone_elses_endpoint_is_not_found(make_user, api_client):
    created = create(api_client(make_user())).json()
    mallory = api_client(make_user())
    target = f"{URL}/{created['id']}"

    assert_problem(mallory.get(target), 404, "not_found")
    assert_problem(mallory.patch(target, {"enabled": False}, format="json"), 404, "not_found")
    assert_problem(mallory.delete(target), 404, "not_found")
    assert_problem(mallory.post(f"{target}/rotate-secret"), 404, "not_found")
    assert_problem(mallory.get(f"{URL}/{uuid.uuid4()}"), 404, "not_found")
    assert WebhookEndpoint.objects.get(pk=created["id"]).enabled


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://10.1.2.3/x",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[fe80::1]/x",
        "https://0.0.0.0/",
        "https://100.64.0.1/",
        "https://224.0.0.1/",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(make_user, api_client, url):
    assert_problem(create(api_client(make_user()), url=url), 422, "webhook_url_forbidden")
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("http://93.184.215.14/x", 400, "validation_error"),  # https only: the schema's pattern says so
        ("ftp://93.184.215.14/x", 400, "validation_error"),
        ("https://user:pw@93.184.215.14/x", 400, "validation_error"),
        ("https:///nohost", 400, "validation_error"),
        ("https://93.184.215.14/x#frag", 400, "validation_error"),
        ("https://93.184.215.14/a b", 400, "validation_error"),
        ("https://93.184.215.14/a\x01", 400, "validation_error"),
        ("not a url", 400, "validation_error"),
        ("https://93.184.215.14:99999/x", 422, "webhook_url_invalid"),  # the shape holds, the port cannot be
        ("https://no-such-host.invalid/x", 422, "webhook_url_unresolvable"),
    ],
)
def test_urls_that_cannot_be_used_are_refused(make_user, api_client, url, status, code):
    assert_problem(create(api_client(make_user()), url=url), status, code)


def test_loopback_is_allowed_only_when_private_networks_are(make_user, api_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    assert create(api_client(make_user()), url="http://127.0.0.1:9/x").status_code == 201


def test_a_url_change_is_checked_too(make_user, api_client):
    client = api_client(make_user())
    created = create(client).json()
    response = client.patch(f"{URL}/{created['id']}", {"url": "https://10.0.0.1/"}, format="json")
    assert_problem(response, 422, "webhook_url_forbidden")
    assert WebhookEndpoint.objects.get(pk=created["id"]).url == PUBLIC


@pytest.mark.parametrize(
    "body",
    [
        {"event_types": []},
        {"event_types": ["nope.created"]},
        {"event_types": ["transfer.created", "transfer.created"]},
        {"event_types": "transfer.created"},
        {"enabled": "yes"},
        {"enabled": 1},
        {"description": "x" * 201},
        {"url": 5},
        {"url": "https://" + "a" * 2048 + ".example/"},
        {"secret": "whsec_mine"},
        {"owner": 1},
    ],
)
def test_invalid_bodies_are_refused(make_user, api_client, body):
    assert_problem(create(api_client(make_user()), **body), 400, "validation_error")
    assert not WebhookEndpoint.objects.exists()


def test_all_types_with_others_is_all_types(make_user, api_client):
    created = create(api_client(make_user()), event_types=["transfer.created", "*"])
    assert created.json()["event_types"] == ["*"]


def test_the_number_of_endpoints_per_user_is_limited(make_user, api_client, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_USER = 2
    client = api_client(make_user())
    assert create(client).status_code == 201
    assert create(client).status_code == 201
    assert_problem(create(client), 409, "webhook_endpoint_limit")


@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_under_concurrent_creations(make_user, api_client, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_USER = 3
    user = make_user()
    statuses: list[int] = []
    start = threading.Barrier(6)

    def attempt() -> None:
        try:
            start.wait(10)
            statuses.append(create(api_client(user)).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [201, 201, 201, 409, 409, 409]
    assert WebhookEndpoint.objects.filter(owner=user).count() == 3


def test_deleting_cancels_pending_deliveries(make_user, make_wallet, api_client, settings):
    from webhooks.dispatch import fan_out_settled

    alice = make_user()
    client = api_client(alice)
    created = create(client, event_types=["*"]).json()
    make_wallet(alice, balance=100)
    fan_out_settled()
    assert WebhookDelivery.objects.filter(status="pending").count() == 1

    client.delete(f"{URL}/{created['id']}")

    assert list(WebhookDelivery.objects.values_list("status", flat=True)) == ["cancelled"]


def test_anonymous_callers_are_refused(api_client):
    response = api_client(None).get(URL)
    assert response.status_code == 401


def test_socket_resolution_is_what_decides(monkeypatch, make_user, api_client):
    """A name that resolves to a private address is refused even though it looks public."""

    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    response = create(api_client(make_user()), url="https://hooks.shop.example/wallet")
    assert_problem(response, 422, "webhook_url_forbidden")


def test_an_endpoints_deliveries_are_listed_for_its_owner_only(make_user, make_wallet, api_client):
    from django.utils import timezone

    from webhooks.dispatch import fan_out_settled

    alice = make_user()
    client = api_client(alice)
    created = create(client, event_types=["*"]).json()
    wallet = make_wallet(alice, balance=100)
    fan_out_settled()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="failed",
        attempts=31,
        last_status_code=503,
        last_error="http_error",
        finished_at=timezone.now(),
    )
    target = f"{URL}/{created['id']}/deliveries"

    body = client.get(target).json()

    (shown,) = body["results"]
    assert (shown["event_type"], shown["wallet_id"], shown["status"], shown["attempts"]) == (
        "deposit.created", str(wallet.id), "failed", 31,
    )  # fmt: skip
    assert (shown["last_status_code"], shown["last_error"], shown["next_attempt_at"]) == (
        503,
        "http_error",
        None,
    )
    assert shown["event_id"] == str(delivery.event.uuid)
    assert client.get(target, {"status": "pending"}).json()["results"] == []
    assert_problem(client.get(target, {"status": "lost"}), 400, "validation_error")
    assert_problem(api_client(make_user()).get(target), 404, "not_found")
