"""Fixtures shared by every app's tests."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from foundation.store_health import redis_health
from foundation.tracing import configure_tracing
from testing.scratch import Scratch, scratch_database
from transfers import services as ledger
from users.models import User
from wallets.models import Wallet
from wallets.services import clear_system_wallet_cache, wallet_create

# Trace the whole suite from the start, as production processes do.
configure_tracing(record=True)  # spans for the tests to inspect, as when an exporter is set

_counter = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_caches():
    # Each test database starts empty: cached system-wallet ids, wallet metadata and
    # rate-limit counters from an earlier test would point at rows that are gone.
    clear_system_wallet_cache()
    for alias in ("default", "ratelimit"):
        # Only this process's keys (settings.test prefixes them with the pid); never FLUSHDB.
        caches[alias].delete_pattern("*")
    redis_health.reset()  # an outage simulated by an earlier test is over
    yield
    clear_system_wallet_cache()
    redis_health.reset()


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(username: str | None = None, password: str = "S3cure-pass-123") -> User:
        name = username or f"user{next(_counter)}"
        user = User(username=name, email=f"{name}@example.com")
        user.set_password(password)
        user.save()
        return user

    return make


@pytest.fixture
def make_wallet(db) -> Callable[..., Wallet]:
    def make(owner: User, currency: str = "USD", balance: int = 0, name: str = "") -> Wallet:
        wallet = wallet_create(owner_id=owner.id, currency=currency, name=name)
        if balance:
            ledger.deposit_create(wallet_id=wallet.id, owner_id=owner.id, amount=balance)
            wallet.refresh_from_db()
        return wallet

    return make


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    """A database of its own for migration tests (testing.scratch), dropped afterwards."""
    with scratch_database() as db:
        yield db


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api_client() -> Callable[[User | None], APIClient]:
    """api_client(user) -> an APIClient carrying a real JWT for `user` (None: anonymous)."""
    return client_for


def idem() -> dict[str, str]:
    """A fresh Idempotency-Key header for APIClient calls."""
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}


PROBLEM = "application/problem+json"
SLASHES = pytest.mark.parametrize("slash", ["", "/"], ids=["no-slash", "slash"])


def assert_problem(response, status: int, code: str) -> dict:
    """The response is an RFC 9457 problem with this status and stable code; returns its body."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert {"type", "title", "detail"} <= set(body)
    return body


def admin_page(client, url: str) -> str:
    """The admin page at `url` (status 200) as text."""
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return response.content.decode()


def admin_columns(html: str) -> int:
    """How many columns an admin change list shows."""
    table = re.search(r'<table id="result_list">.*?</thead>', html, re.S)
    assert table, "no result list on the page"
    return len(re.findall(r'<th scope="col"', table.group(0)))


def admin_row(html: str, change_url: str) -> str:
    """The change list's row that links to `change_url`."""
    match = re.search(rf"<tr>(?:(?!</tr>).)*?{re.escape(change_url)}.*?</tr>", html, re.S)
    assert match, f"no row links to {change_url}"
    return match.group(0)
