"""The auth API: register, token, refresh rotation, logout and me."""

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from audit.models import AuditEvent
from conftest import SLASHES, assert_problem
from users.models import User
from users.tests.tokens import live_refresh_tokens

pytestmark = pytest.mark.django_db

PASSWORD = "S3cure-pass-123"


def url(name: str, slash: str) -> str:
    return f"/api/v1/auth/{name}{slash}"


def obtain(client, user: User, slash: str = "") -> dict:
    response = client.post(
        url("token", slash), {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --- register -------------------------------------------------------------------


@SLASHES
def test_register_creates_user_and_answers_public_fields(api_client, slash):
    response = api_client(None).post(
        url("register", slash),
        {"username": "alice", "email": "alice@example.com", "password": PASSWORD},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "username", "email"}
    user = User.objects.get(pk=body["id"])
    assert (body["username"], body["email"]) == ("alice", "alice@example.com")
    assert user.check_password(PASSWORD)
    assert user.password != PASSWORD


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("Ab1!x", id="too-short"),
        pytest.param("password", id="common"),
        pytest.param("qwerty123", id="common-with-digits"),
        pytest.param("90817263540918", id="numeric"),
        pytest.param("johnsmith1", id="similar-to-username"),
    ],
)
def test_register_rejects_weak_passwords(api_client, password):
    response = api_client(None).post(
        url("register", ""),
        {"username": "johnsmith", "email": "john@example.com", "password": password},
        format="json",
    )

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"]["password"]
    assert not User.objects.filter(username="johnsmith").exists()


@pytest.mark.parametrize(
    ("username", "email", "field"),
    [
        pytest.param("taken", "fresh@example.com", "username", id="same-username"),
        pytest.param("TAKEN", "fresh@example.com", "username", id="same-username-other-case"),
        pytest.param("fresh", "taken@example.com", "email", id="same-email"),
        pytest.param("fresh", "Taken@Example.com", "email", id="same-email-other-case"),
    ],
)
def test_register_rejects_duplicates(api_client, make_user, username, email, field):
    make_user("taken")  # email taken@example.com
    before = User.objects.count()

    response = api_client(None).post(
        url("register", ""), {"username": username, "email": email, "password": PASSWORD}, format="json"
    )

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][field]
    assert User.objects.count() == before


def test_the_database_refuses_usernames_that_differ_only_in_case(make_user):
    make_user("Alice")

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="aLICE", email="other@example.com")
    assert User.objects.get(username__iexact="alice").username == "Alice"


@pytest.mark.parametrize("extra", [{"is_staff": True}, {"is_superuser": True}, {"id": 999}, {"role": "x"}])
def test_register_rejects_unknown_fields(api_client, extra):
    data = {"username": "mallory", "email": "mallory@example.com", "password": PASSWORD, **extra}

    response = api_client(None).post(url("register", ""), data, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert set(body["errors"]) == set(extra)
    assert not User.objects.filter(username="mallory").exists()


@pytest.mark.parametrize("missing", ["username", "email", "password"])
def test_register_requires_each_field(api_client, missing):
    data = {"username": "bob", "email": "bob@example.com", "password": PASSWORD}
    del data[missing]

    response = api_client(None).post(url("register", ""), data, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == [missing]
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", 123),
        ("username", "has space"),
        ("username", "u" * 151),
        ("email", "not-an-email"),
        ("email", None),
        ("password", 12345678),
        ("password", "p" * 129),
    ],
)
def test_register_rejects_invalid_values(api_client, field, value):
    data = {"username": "dave", "email": "dave@example.com", "password": PASSWORD, field: value}

    response = api_client(None).post(url("register", ""), data, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == [field]
    assert User.objects.count() == 0


def test_register_with_empty_body_names_every_field(api_client):
    response = api_client(None).post(url("register", ""), {}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert set(body["errors"]) == {"username", "email", "password"}


# --- token ----------------------------------------------------------------------


@SLASHES
def test_token_obtain_returns_a_working_pair(api_client, make_user, slash):
    user = make_user()
    client = api_client(None)

    pair = obtain(client, user, slash)

    assert set(pair) == {"access", "refresh"}
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    me = client.get(url("me", ""))
    assert me.status_code == 200
    assert me.json()["id"] == user.id


@SLASHES
@pytest.mark.parametrize(
    ("username", "password"),
    [("known", "wrong-password-1"), ("nobody", PASSWORD)],
    ids=["wrong-password", "unknown-user"],
)
def test_token_obtain_refuses_bad_credentials(api_client, make_user, slash, username, password):
    make_user("known")

    response = api_client(None).post(
        url("token", slash), {"username": username, "password": password}, format="json"
    )

    body = assert_problem(response, 401, "not_authenticated")
    assert "access" not in body
    assert "refresh" not in body


@pytest.mark.parametrize("typed", ["Alice", "alice", "ALICE", "aLiCe"])
def test_login_ignores_the_case_of_the_username(api_client, make_user, typed):
    user = make_user("Alice")
    make_user("alicia")
    client = api_client(None)

    response = client.post(url("token", ""), {"username": typed, "password": PASSWORD}, format="json")

    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    assert client.get(url("me", "")).json()["username"] == user.username == "Alice"
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_SUCCEEDED)
    assert event.actor_id == user.id


def test_login_with_another_case_still_needs_the_password(api_client, make_user):
    make_user("Alice")

    response = api_client(None).post(
        url("token", ""), {"username": "alice", "password": "wrong-password-1"}, format="json"
    )

    assert_problem(response, 401, "not_authenticated")


def test_token_obtain_requires_both_fields(api_client):
    response = api_client(None).post(url("token", ""), {}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert set(body["errors"]) == {"username", "password"}


def test_inactive_user_gets_no_token_and_loses_access(api_client, make_user):
    user = make_user()
    holder = api_client(user)  # a token issued while the user was active
    User.objects.filter(pk=user.pk).update(is_active=False)

    token = api_client(None).post(
        url("token", ""), {"username": user.username, "password": PASSWORD}, format="json"
    )
    me = holder.get(url("me", ""))

    assert_problem(token, 401, "not_authenticated")
    assert_problem(me, 401, "not_authenticated")


def test_access_token_of_a_deleted_user_is_401(api_client, make_user):
    user = make_user()
    client = api_client(user)
    User.objects.filter(pk=user.pk).delete()

    assert_problem(client.get(url("me", "")), 401, "not_authenticated")


# --- refresh rotation -------------------------------------------------------------


@SLASHES
def test_refresh_rotates_and_rejects_the_old_refresh_token(api_client, make_user, slash):
    user = make_user()
    client = api_client(None)
    first = obtain(client, user)

    rotated = client.post(url("token/refresh", slash), {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200, rotated.content
    second = rotated.json()
    assert set(second) == {"access", "refresh"}
    assert second["refresh"] != first["refresh"]

    # The new refresh token works...
    again = client.post(url("token/refresh", slash), {"refresh": second["refresh"]}, format="json")
    assert again.status_code == 200, again.content
    # ...and the rotated-out one is refused from now on.
    reused = client.post(url("token/refresh", slash), {"refresh": first["refresh"]}, format="json")
    assert_problem(reused, 401, "not_authenticated")


def test_refresh_refuses_an_access_token_and_garbage(api_client, make_user):
    user = make_user()
    client = api_client(None)
    pair = obtain(client, user)

    with_access = client.post(url("token/refresh", ""), {"refresh": pair["access"]}, format="json")
    garbage = client.post(url("token/refresh", ""), {"refresh": "not.a.jwt"}, format="json")

    assert_problem(with_access, 401, "not_authenticated")
    assert_problem(garbage, 401, "not_authenticated")


def test_refresh_for_a_deleted_user_is_401_not_500(api_client, make_user):
    user = make_user()
    client = api_client(None)
    pair = obtain(client, user)
    User.objects.filter(pk=user.pk).delete()

    response = client.post(url("token/refresh", ""), {"refresh": pair["refresh"]}, format="json")

    assert_problem(response, 401, "not_authenticated")


def test_refresh_for_an_inactive_user_is_401_and_leaves_the_token_unused(api_client, make_user):
    user = make_user()
    refresh = str(RefreshToken.for_user(user))
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = api_client(None).post(url("token/refresh", ""), {"refresh": refresh}, format="json")

    assert_problem(response, 401, "not_authenticated")
    assert not BlacklistedToken.objects.exists()


def test_refresh_refuses_unknown_fields(api_client, make_user):
    refresh = str(RefreshToken.for_user(make_user()))

    response = api_client(None).post(
        url("token/refresh", ""), {"refresh": refresh, "access": "x"}, format="json"
    )

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["access"]
    assert not BlacklistedToken.objects.exists()


def refresh_with(client, token: str):
    return client.post(url("token/refresh", ""), {"refresh": token}, format="json")


def test_a_reused_refresh_token_within_the_grace_window_is_only_refused(api_client, make_user, caplog):
    user = make_user()
    client = api_client(None)
    first = obtain(client, user)
    second = refresh_with(client, first["refresh"]).json()

    with caplog.at_level(logging.WARNING, logger="users.services"):
        reused = refresh_with(client, first["refresh"])

    assert_problem(reused, 401, "not_authenticated")
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.REFRESH_REUSED)
    assert (event.actor_id, event.outcome, event.details) == (
        user.id,
        "concurrent",
        {"revoked_refresh_tokens": 0},
    )
    assert [r.levelname for r in caplog.records if "refresh token reused" in r.getMessage()] == ["WARNING"]
    assert set(live_refresh_tokens(user)) == {second["refresh"]}
    assert refresh_with(client, second["refresh"]).status_code == 200


@pytest.mark.parametrize("used_by", ["refresh", "logout"])
def test_a_reused_refresh_token_after_the_grace_window_revokes_every_session(
    api_client, make_user, settings, caplog, used_by
):
    user, bystander = make_user(), make_user()
    client = api_client(None)
    stolen = obtain(client, user)["refresh"]
    other_device = obtain(client, user)["refresh"]
    unrelated = obtain(client, bystander)["refresh"]
    if used_by == "refresh":
        successor = refresh_with(client, stolen).json()["refresh"]
        assert set(live_refresh_tokens(user)) == {successor, other_device}
    else:
        assert client.post(url("logout", ""), {"refresh": stolen}, format="json").status_code == 205
    later = timezone.now() - timedelta(seconds=settings.JWT_REFRESH_REUSE_GRACE_SECONDS + 1)
    BlacklistedToken.objects.filter(token__jti=RefreshToken(stolen, verify=False)["jti"]).update(
        blacklisted_at=later
    )
    revocable = len(live_refresh_tokens(user))

    with caplog.at_level(logging.WARNING, logger="users.services"):
        reused = refresh_with(client, stolen)

    assert_problem(reused, 401, "not_authenticated")
    assert live_refresh_tokens(user) == []
    assert_problem(refresh_with(client, other_device), 401, "not_authenticated")
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.REFRESH_REUSED, outcome="sessions_revoked")
    assert (event.actor_id, event.details) == (user.id, {"revoked_refresh_tokens": revocable})
    assert any(r.levelname == "WARNING" and "refresh token reused" in r.getMessage() for r in caplog.records)
    # Someone else's session is untouched.
    assert refresh_with(client, unrelated).status_code == 200


def test_an_expired_or_forged_refresh_token_is_not_counted_as_reuse(api_client, make_user):
    user = make_user()
    client = api_client(None)
    expired = RefreshToken.for_user(user)
    expired.set_exp(from_time=timezone.now() - timedelta(days=30))
    forged = str(RefreshToken.for_user(user))[:-2] + "xx"

    assert_problem(refresh_with(client, str(expired)), 401, "not_authenticated")
    assert_problem(refresh_with(client, forged), 401, "not_authenticated")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.REFRESH_REUSED).exists()


# --- logout -----------------------------------------------------------------------


@SLASHES
def test_logout_blacklists_the_refresh_token(api_client, make_user, slash):
    user = make_user()
    client = api_client(None)
    pair = obtain(client, user)

    response = client.post(url("logout", slash), {"refresh": pair["refresh"]}, format="json")

    assert response.status_code == 205, response.content
    assert response.content == b""
    refused = client.post(url("token/refresh", ""), {"refresh": pair["refresh"]}, format="json")
    assert_problem(refused, 401, "not_authenticated")


def test_logout_twice_is_401(api_client, make_user):
    user = make_user()
    client = api_client(None)
    pair = obtain(client, user)
    assert client.post(url("logout", ""), {"refresh": pair["refresh"]}, format="json").status_code == 205

    twice = client.post(url("logout", ""), {"refresh": pair["refresh"]}, format="json")

    assert_problem(twice, 401, "not_authenticated")


def test_logout_with_a_rotated_out_token_is_401_and_the_successor_lives(api_client, make_user):
    user = make_user()
    client = api_client(None)
    first = obtain(client, user)
    second = refresh_with(client, first["refresh"]).json()

    response = client.post(url("logout", ""), {"refresh": first["refresh"]}, format="json")

    assert_problem(response, 401, "not_authenticated")
    assert set(live_refresh_tokens(user)) == {second["refresh"]}
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.LOGOUT).exists()


def test_logout_with_a_garbage_token_is_401(api_client):
    response = api_client(None).post(url("logout", ""), {"refresh": "garbage"}, format="json")

    assert_problem(response, 401, "not_authenticated")


def test_logout_without_a_token_is_a_validation_error(api_client):
    response = api_client(None).post(url("logout", ""), {}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["refresh"]


# --- me ---------------------------------------------------------------------------


@SLASHES
def test_me_returns_own_data(api_client, make_user, slash):
    user = make_user("carol")
    make_user("someone-else")

    response = api_client(user).get(url("me", slash))

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["username"], body["email"]) == (user.id, "carol", "carol@example.com")
    assert "password" not in body


@SLASHES
def test_me_without_a_token_is_401(api_client, slash):
    response = api_client(None).get(url("me", slash))

    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@SLASHES
def test_me_with_a_tampered_token_is_401(api_client, make_user, slash):
    victim, attacker = make_user(), make_user()
    token = str(AccessToken.for_user(attacker))
    header, payload, signature = token.split(".")
    claims = b64url_json(payload)
    claims["user_id"] = str(victim.id)  # claim someone else's identity, keep the old signature
    forged = ".".join([header, b64url(claims), signature])
    client = api_client(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")

    response = client.get(url("me", slash))

    assert_problem(response, 401, "not_authenticated")


@SLASHES
def test_me_with_an_expired_token_is_401(api_client, make_user, slash):
    user = make_user()
    token = AccessToken.for_user(user)
    token.set_exp(from_time=datetime.now(tz=UTC) - timedelta(hours=1), lifetime=timedelta(minutes=5))
    assert token["exp"] < datetime.now(tz=UTC).timestamp()
    client = api_client(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.get(url("me", slash))

    assert_problem(response, 401, "not_authenticated")


@pytest.mark.parametrize("where", ["me", "token/refresh", "logout"])
def test_invalid_token_problem_detail_is_a_message_not_a_python_repr(api_client, where):
    client = api_client(None)
    if where == "me":
        client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
        response = client.get(url("me", ""))
    else:
        response = client.post(url(where, ""), {"refresh": "not.a.jwt"}, format="json")

    body = response.json()
    assert body["code"] == "not_authenticated"
    # RFC 9457 `detail` is a human-readable sentence, not str() of DRF's error dict.
    assert "ErrorDetail" not in body["detail"]
    assert not body["detail"].startswith("{")


def test_me_with_a_refresh_token_as_bearer_is_401(api_client, make_user):
    user = make_user()
    client = api_client(None)
    pair = obtain(client, user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['refresh']}")

    response = client.get(url("me", ""))

    assert_problem(response, 401, "not_authenticated")


@pytest.mark.django_db
def test_a_password_is_checked_as_registered_spaces_included(api_client):
    password = "  padded correct horse 42  "
    registered = api_client(None).post(
        "/api/v1/auth/register",
        {"username": "padded", "email": "padded@example.com", "password": password},
        format="json",
    )
    assert registered.status_code == 201, registered.content

    login = api_client(None).post(
        "/api/v1/auth/token", {"username": "padded", "password": password}, format="json"
    )
    trimmed = api_client(None).post(
        "/api/v1/auth/token", {"username": "padded", "password": password.strip()}, format="json"
    )

    assert login.status_code == 200, login.content
    assert trimmed.status_code == 401


@pytest.mark.django_db
def test_a_login_body_with_an_undeclared_field_is_refused_before_it_counts(api_client, make_user):
    make_user("strict")
    response = api_client(None).post(
        "/api/v1/auth/token",
        {"username": "strict", "password": "S3cure-pass-123", "otp": "123456"},
        format="json",
    )

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"] == {"otp": ["This field is not allowed."]}
