"""Auth endpoints under real concurrency.

Each request runs in its own thread with its own PostgreSQL connection through the
whole HTTP stack, released together by a barrier; `transaction=True` makes every
request really commit. Where a race is too quick to lose on purpose, another
transaction holds the winning row uncommitted while a request waits for it, so the
interleaving is forced instead of hoped for. Assertions are on the final state of
the database, never on timings.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from audit.models import AuditEvent
from conftest import assert_problem
from testing.threads import Threads, held_in_transaction, lock_waiters, run_concurrently, wait_until
from users.models import User
from users.tests.tokens import live_refresh_tokens

pytestmark = pytest.mark.django_db(transaction=True)

REFRESH = "/api/v1/auth/token/refresh"
REGISTER = "/api/v1/auth/register"
PASSWORD = "S3cure-pass-123"


def post(path: str, body: dict):
    client = APIClient()
    # A 500 in one thread must show up as that thread's response (Threads collects the
    # traceback), not be re-raised in whichever thread's client hears the signal.
    client.raise_request_exception = False
    return client.post(path, body, format="json")


# --- refresh tokens are redeemed once ----------------------------------------------


def test_concurrent_redemptions_of_one_refresh_token_succeed_exactly_once(make_user):
    user = make_user()
    original = str(RefreshToken.for_user(user))

    replies = run_concurrently([lambda: post(REFRESH, {"refresh": original}) for _ in range(4)])

    assert sorted(r.status_code for r in replies) == [200, 401, 401, 401]
    for reply in replies:
        if reply.status_code == 401:
            assert_problem(reply, 401, "not_authenticated")
    (winner,) = [r.json() for r in replies if r.status_code == 200]
    # One session goes on: the winner's new refresh token is the only live one...
    assert live_refresh_tokens(user) == [winner["refresh"]]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REFRESHED).count() == 1
    # ...every loser is recorded as a reuse of the token (not one that revoked anything:
    # they all came within the grace window)...
    reused = AuditEvent.objects.filter(action=AuditEvent.Action.REFRESH_REUSED)
    assert sorted(reused.values_list("outcome", flat=True)) == ["concurrent"] * 3
    assert set(reused.values_list("actor_id", flat=True)) == {user.id}
    # ...and it keeps working, while the original stays dead.
    assert post(REFRESH, {"refresh": winner["refresh"]}).status_code == 200
    assert_problem(post(REFRESH, {"refresh": original}), 401, "not_authenticated")


def test_a_redemption_that_waits_for_a_concurrent_one_is_refused_when_that_one_commits(make_user):
    """The blacklist check passed before the other redemption committed; the unique index decides."""
    user = make_user()
    token = RefreshToken.for_user(user)
    outstanding = OutstandingToken.objects.get(jti=token["jti"])

    # Another redemption of the same token has blacklisted it but not committed yet.
    with held_in_transaction(lambda: BlacklistedToken.objects.create(token=outstanding)):
        late = Threads([lambda: post(REFRESH, {"refresh": str(token)})]).start()
        wait_until(lambda: lock_waiters() > 0 or late.finished, "the late redemption waits for the first")
    (reply,) = late.join()

    assert_problem(reply, 401, "not_authenticated")
    assert live_refresh_tokens(user) == []
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REFRESHED).exists()


def test_logout_racing_a_refresh_never_fails_with_a_server_error(make_user):
    user = make_user()
    original = str(RefreshToken.for_user(user))

    refresh, logout = run_concurrently(
        [
            lambda: post(REFRESH, {"refresh": original}),
            lambda: post("/api/v1/auth/logout", {"refresh": original}),
        ]
    )

    # Exactly one of them used the token; the other is told it is no longer valid.
    assert sorted([refresh.status_code, logout.status_code]) in ([200, 401], [205, 401])
    if refresh.status_code == 200:
        assert live_refresh_tokens(user) == [refresh.json()["refresh"]]
    else:
        assert_problem(refresh, 401, "not_authenticated")
        assert live_refresh_tokens(user) == []


# --- usernames are unique regardless of case ---------------------------------------


def register(username: str, email: str):
    return post(REGISTER, {"username": username, "email": email, "password": PASSWORD})


@pytest.mark.parametrize("attempt", range(3))
def test_usernames_differing_only_in_case_register_once_when_sent_together(attempt):
    name = f"Race7e6a2{attempt}"

    replies = run_concurrently(
        [
            lambda: register(name, f"first{attempt}@example.com"),
            lambda: register(name.swapcase(), f"second{attempt}@example.com"),
        ]
    )

    assert sorted(r.status_code for r in replies) == [201, 400]
    (loser,) = [r for r in replies if r.status_code == 400]
    body = assert_problem(loser, 400, "validation_error")
    assert list(body["errors"]) == ["username"]
    assert User.objects.filter(username__iexact=name).count() == 1


def test_a_registration_that_waits_for_a_case_duplicate_is_refused_when_that_one_commits():
    # Another registration of "Alice" has inserted its row but not committed yet, so
    # the service's own look-up cannot see it: only the database can refuse "aLICE".
    with held_in_transaction(lambda: User.objects.create(username="Alice", email="alice@example.com")):
        late = Threads([lambda: register("aLICE", "other@example.com")]).start()
        wait_until(lambda: lock_waiters() > 0 or late.finished, "the late registration waits for the first")
    (reply,) = late.join()

    body = assert_problem(reply, 400, "validation_error")
    assert list(body["errors"]) == ["username"]
    assert list(User.objects.values_list("username", flat=True)) == ["Alice"]


def test_a_registration_that_waits_for_an_email_case_duplicate_is_refused_on_the_email():
    with held_in_transaction(lambda: User.objects.create(username="bob", email="bob@example.com")):
        late = Threads([lambda: register("robert", "BOB@example.com")]).start()
        wait_until(lambda: lock_waiters() > 0 or late.finished, "the late registration waits for the first")
    (reply,) = late.join()

    body = assert_problem(reply, 400, "validation_error")
    assert list(body["errors"]) == ["email"]
    assert list(User.objects.values_list("username", flat=True)) == ["bob"]
