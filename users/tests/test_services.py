"""Accounts and sessions (users.services), called directly.

The HTTP side is in test_auth_api.py; races between redemptions and registrations in
test_concurrency.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.exceptions import Throttled
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from audit.models import AuditEvent
from foundation.errors import ValidationFailed
from users import services
from users.models import User
from users.services import (
    EMAIL_TAKEN,
    USERNAME_TAKEN,
    token_pair,
    token_refresh,
    token_revoke,
    user_create,
    user_login,
)
from users.tests.tokens import live_refresh_tokens

pytestmark = pytest.mark.django_db

PASSWORD = "S3cure-pass-123"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# --- user_create ------------------------------------------------------------------------------


def test_user_create_stores_a_hashed_password_and_audits_the_registration():
    user = user_create(username="Alice", email="alice@example.com", password=PASSWORD)

    stored = User.objects.get(pk=user.pk)
    assert (stored.username, stored.email) == ("Alice", "alice@example.com")  # the spelling given is kept
    assert stored.password != PASSWORD
    assert stored.check_password(PASSWORD)
    assert (stored.is_active, stored.is_staff, stored.is_superuser) == (True, False, False)
    (event,) = events(AuditEvent.Action.USER_REGISTERED)
    assert (event.actor_id, event.target_type, event.target_id) == (user.id, "user", str(user.id))


def test_user_create_refuses_taken_names_whatever_their_case_and_weak_passwords_all_at_once(make_user):
    make_user("alice")

    with pytest.raises(ValidationFailed) as refused:
        user_create(username="ALICE", email="Alice@Example.com", password="alice")

    errors = refused.value.extra["errors"]
    assert errors["username"] == [USERNAME_TAKEN]
    assert errors["email"] == [EMAIL_TAKEN]
    assert errors["password"]  # Django's validators: too short, too common, too like the username
    assert User.objects.count() == 1
    assert not events(AuditEvent.Action.USER_REGISTERED)


# --- user_login ---------------------------------------------------------------------------------


@pytest.fixture
def login(rf):
    """user_login as the API calls it, from one client address."""

    def attempt(username: str, password: str, **options):
        request = rf.post("/api/v1/auth/token", REMOTE_ADDR="198.51.100.7")
        return user_login(request=request, username=username, password=password, **options)

    return attempt


def test_a_right_password_logs_in_and_is_audited(make_user, login):
    user = make_user("carol")

    assert login("CAROL", PASSWORD) == user  # usernames match whatever their case

    (event,) = events(AuditEvent.Action.LOGIN_SUCCEEDED)
    assert (event.actor_id, event.target_id, event.details) == (user.id, str(user.id), {})
    assert not events(AuditEvent.Action.LOGIN_FAILED)


@pytest.mark.parametrize("case", ["wrong-password", "unknown-user", "inactive"])
def test_a_failed_login_returns_none_and_is_audited_under_the_name_given(make_user, login, case):
    user = make_user("carol")
    if case == "inactive":
        User.objects.filter(pk=user.pk).update(is_active=False)
    username, password = {
        "wrong-password": ("carol", "wrong"),
        "unknown-user": ("nobody", PASSWORD),
        "inactive": ("carol", PASSWORD),
    }[case]

    assert login(username, password) is None

    (event,) = events(AuditEvent.Action.LOGIN_FAILED)
    assert (event.actor_id, event.actor_label, event.target_id) == (None, username, username)
    assert (event.outcome, event.details) == ("invalid_credentials", {})
    assert password not in str(event.details)
    assert not events(AuditEvent.Action.LOGIN_SUCCEEDED)


def test_staff_only_refuses_a_right_password_of_an_account_that_is_not_staff(make_user, login):
    clerk, operator = make_user("clerk"), make_user("operator")
    User.objects.filter(pk=operator.pk).update(is_staff=True)

    assert login("clerk", PASSWORD, via="admin", staff_only=True) is None
    assert login("operator", PASSWORD, via="admin", staff_only=True) == operator

    (failed,) = events(AuditEvent.Action.LOGIN_FAILED)
    assert (failed.actor_label, failed.details) == ("clerk", {"via": "admin"})
    (succeeded,) = events(AuditEvent.Action.LOGIN_SUCCEEDED)
    assert (succeeded.actor_id, succeeded.details) == (operator.id, {"via": "admin"})
    assert clerk.id not in [e.actor_id for e in events(AuditEvent.Action.LOGIN_SUCCEEDED)]


@override_settings(RATE_LIMITS={"login_ip": "100/d", "login_user": "2/d"})
def test_the_guard_counts_an_attempt_before_the_password_and_gives_a_success_back(
    make_user, login, monkeypatch
):
    user = make_user("dave")
    checked: list[str] = []
    original = services.authenticate
    monkeypatch.setattr(
        services,
        "authenticate",
        lambda request, **kw: checked.append(kw["password"]) or original(request, **kw),
    )

    assert login("dave", "wrong") is None  # 1 of 2
    assert login("dave", PASSWORD) == user  # counted (2), then given back (1)
    assert login("dave", PASSWORD) == user  # the same again: successes never use up the budget
    assert login("dave", "wrong") is None  # 2 of 2
    with pytest.raises(Throttled) as throttled:
        login("Dave", PASSWORD)  # over the budget, right as the password is

    assert checked == [
        "wrong",
        PASSWORD,
        PASSWORD,
        "wrong",
    ]  # the refused attempt's password was never checked
    assert throttled.value.wait >= 1
    assert len(events(AuditEvent.Action.LOGIN_SUCCEEDED)) == 2
    assert len(events(AuditEvent.Action.LOGIN_FAILED)) == 2


@override_settings(RATE_LIMITS={"login_ip": "100/d", "login_user": "1/d"})
def test_a_refused_staff_only_login_is_not_given_back(make_user, login):
    make_user("clerk")

    assert login("clerk", PASSWORD, staff_only=True) is None
    with pytest.raises(Throttled):
        login("clerk", PASSWORD)


# --- tokens -------------------------------------------------------------------------------------


def test_token_pair_issues_an_access_token_and_an_outstanding_refresh_token(make_user):
    user = make_user()

    pair = token_pair(user=user)

    access, refresh = AccessToken(pair["access"]), RefreshToken(pair["refresh"])
    assert access["user_id"] == refresh["user_id"] == str(user.id)
    assert live_refresh_tokens(user) == [pair["refresh"]]
    assert OutstandingToken.objects.get(jti=refresh["jti"]).user_id == user.id


def test_token_refresh_rotates_once_and_audits_it(make_user):
    user = make_user()
    first = token_pair(user=user)["refresh"]

    redeemed = token_refresh(refresh=first)

    successor, presented = RefreshToken(redeemed["refresh"]), RefreshToken(first, verify=False)
    assert successor["jti"] != presented["jti"]
    assert successor["user_id"] == presented["user_id"]
    assert AccessToken(redeemed["access"])["user_id"] == presented["user_id"]
    assert live_refresh_tokens(user) == [redeemed["refresh"]]
    assert BlacklistedToken.objects.filter(token__jti=presented["jti"]).exists()
    (event,) = events(AuditEvent.Action.TOKEN_REFRESHED)
    assert (event.actor_id, event.target_id) == (user.id, str(user.id))


def test_a_refresh_token_is_redeemed_at_most_once(make_user):
    user = make_user()
    first = token_pair(user=user)["refresh"]
    second = token_refresh(refresh=first)["refresh"]

    with pytest.raises(TokenError, match="blacklisted"):
        token_refresh(refresh=first)

    # Within the grace window: taken for the client racing itself, refused, nothing revoked.
    (reuse,) = events(AuditEvent.Action.REFRESH_REUSED)
    assert (reuse.actor_id, reuse.outcome, reuse.details) == (
        user.id,
        "concurrent",
        {"revoked_refresh_tokens": 0},
    )
    assert live_refresh_tokens(user) == [second]
    assert len(events(AuditEvent.Action.TOKEN_REFRESHED)) == 1


@pytest.mark.parametrize("state", ["inactive", "deleted"])
def test_a_refresh_for_an_account_that_cannot_log_in_is_refused_and_leaves_the_token_unused(make_user, state):
    user = make_user()
    refresh = token_pair(user=user)["refresh"]
    jti = RefreshToken(refresh)["jti"]
    if state == "inactive":
        User.objects.filter(pk=user.pk).update(is_active=False)
    else:
        user.delete()

    with pytest.raises(TokenError, match="No active account"):
        token_refresh(refresh=refresh)

    assert not BlacklistedToken.objects.filter(token__jti=jti).exists()
    assert not events(AuditEvent.Action.TOKEN_REFRESHED)


@pytest.mark.parametrize("token", ["garbage", "access"])
def test_token_refresh_refuses_what_is_not_a_refresh_token(make_user, token):
    pair = token_pair(user=make_user())

    with pytest.raises(TokenError):
        token_refresh(refresh=pair["access"] if token == "access" else "not.a.token")

    assert not BlacklistedToken.objects.exists()
    assert not events(AuditEvent.Action.REFRESH_REUSED)


def test_token_revoke_blacklists_the_token_once_and_audits_the_logout(make_user):
    user = make_user()
    refresh = token_pair(user=user)["refresh"]
    other_session = token_pair(user=user)["refresh"]

    token_revoke(refresh=refresh)

    assert live_refresh_tokens(user) == [other_session]
    (event,) = events(AuditEvent.Action.LOGOUT)
    assert (event.actor_id, event.target_id) == (user.id, str(user.id))
    with pytest.raises(TokenError, match="blacklisted"):
        token_revoke(refresh=refresh)
    assert len(events(AuditEvent.Action.LOGOUT)) == 1


def test_token_revoke_refuses_a_token_already_rotated_out(make_user):
    user = make_user()
    first = token_pair(user=user)["refresh"]
    successor = token_refresh(refresh=first)["refresh"]

    with pytest.raises(TokenError):
        token_revoke(refresh=first)

    assert live_refresh_tokens(user) == [successor]
    assert not events(AuditEvent.Action.LOGOUT)


def test_a_reuse_after_the_grace_window_revokes_every_live_session(make_user, settings):
    user = make_user()
    stolen = token_pair(user=user)["refresh"]
    token_refresh(refresh=stolen)
    token_pair(user=user)  # another device
    BlacklistedToken.objects.filter(token__jti=RefreshToken(stolen, verify=False)["jti"]).update(
        blacklisted_at=timezone.now() - timedelta(seconds=settings.JWT_REFRESH_REUSE_GRACE_SECONDS + 1)
    )

    with pytest.raises(TokenError):
        token_refresh(refresh=stolen)

    assert live_refresh_tokens(user) == []
    (reuse,) = events(AuditEvent.Action.REFRESH_REUSED)
    assert (reuse.outcome, reuse.details) == ("sessions_revoked", {"revoked_refresh_tokens": 2})
