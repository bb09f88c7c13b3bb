"""The money API against the OWASP API Security Top 10 (2023), with two users.

API1 object-level authorization, API2 broken authentication (plus login brute force),
API3 mass assignment, API4 unrestricted resource consumption, API5 function-level
authorization. Alice owns the wallets and transfers; Bob is the attacker, a
legitimate user of his own. Every refusal is checked for what it must not do too:
leak data, move money or change a row.
"""

from __future__ import annotations

import base64
import json
import uuid
import warnings
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from jwt.warnings import InsecureKeyLengthWarning
from rest_framework.test import APIClient
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import PROBLEM, assert_problem
from transfers import services as ledger
from transfers.models import IdempotencyRecord, LedgerEntry, Transfer
from users.models import User
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

PASSWORD = "S3cure-pass-123"


def idem() -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def money_state() -> tuple:
    """Everything a refused request must leave exactly as it was."""
    wallets = tuple(
        Wallet.objects.order_by("id").values_list(
            "id", "owner_id", "kind", "currency", "balance", "status", "name"
        )
    )
    return (
        wallets,
        Transfer.objects.count(),
        LedgerEntry.objects.count(),
        User.objects.count(),
        tuple(User.objects.order_by("id").values_list("id", "is_staff", "is_superuser", "is_active")),
    )


@pytest.fixture
def world(make_user, make_wallet):
    alice, bob = make_user("alice"), make_user("bob")
    a_wallet = make_wallet(alice, balance=10_000, name="alice main")
    a_savings = make_wallet(alice, name="alice savings")
    b_wallet = make_wallet(bob, balance=5_000, name="bob main")
    a_transfer = ledger.transfer_create(
        source_wallet_id=a_wallet.id, destination_wallet_id=a_savings.id, initiated_by_id=alice.id, amount=250
    )
    return {
        "alice": alice,
        "bob": bob,
        "a_wallet": a_wallet,
        "a_savings": a_savings,
        "b_wallet": b_wallet,
        "a_transfer": a_transfer,
    }


# --- API1: object-level authorization --------------------------------------------------------

# (method, path, body); {wallet}/{transfer}/{mine} are filled in per test.
FOREIGN_OBJECT_REQUESTS = {
    "wallet-detail": ("get", "/api/v1/wallets/{wallet}", None),
    "wallet-history": ("get", "/api/v1/wallets/{wallet}/transactions", None),
    "wallet-rename": ("patch", "/api/v1/wallets/{wallet}", {"name": "pwned"}),
    "deposit": ("post", "/api/v1/wallets/{wallet}/deposits", {"amount": 100}),
    "withdrawal": ("post", "/api/v1/wallets/{wallet}/withdrawals", {"amount": 100}),
    "transfer-from": (
        "post",
        "/api/v1/transfers",
        {"source_wallet_id": "{wallet}", "destination_wallet_id": "{mine}", "amount": 100},
    ),
    "transfer-detail": ("get", "/api/v1/transfers/{transfer}", None),
    "transfer-list-filter": ("get", "/api/v1/transfers?wallet={wallet}", None),
}


def _fill(value, **ids: str):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {key: _fill(item, **ids) for key, item in value.items()}
    return value


def _call(client: APIClient, method: str, path: str, body):
    extra = idem() if method == "post" else {}
    if body is None:
        return getattr(client, method)(path, **extra)
    return getattr(client, method)(path, body, format="json", **extra)


@pytest.mark.parametrize("name", FOREIGN_OBJECT_REQUESTS)
def test_another_users_objects_are_404_and_untouched(api_client, world, name):
    method, path, body = FOREIGN_OBJECT_REQUESTS[name]
    ids = {
        "wallet": str(world["a_wallet"].id),
        "transfer": str(world["a_transfer"].id),
        "mine": str(world["b_wallet"].id),
    }
    before = money_state()

    response = _call(api_client(world["bob"]), method, _fill(path, **ids), _fill(body, **ids))

    body_out = assert_problem(response, 404, "not_found")
    text = response.content.decode()
    assert str(world["a_wallet"].id) not in text
    assert "10000" not in text and "alice" not in text
    assert set(body_out) <= {"type", "title", "status", "detail", "code", "instance", "request_id"}
    assert money_state() == before


@pytest.mark.parametrize("name", FOREIGN_OBJECT_REQUESTS)
def test_another_users_object_is_indistinguishable_from_a_missing_one(api_client, world, name):
    """No oracle: Bob cannot tell Alice's ids from ids that do not exist."""
    method, path, body = FOREIGN_OBJECT_REQUESTS[name]
    mine = str(world["b_wallet"].id)
    real = {"wallet": str(world["a_wallet"].id), "transfer": str(world["a_transfer"].id), "mine": mine}
    fake = {"wallet": str(uuid.uuid4()), "transfer": str(uuid.uuid4()), "mine": mine}
    bob = api_client(world["bob"])

    foreign = _call(bob, method, _fill(path, **real), _fill(body, **real))
    missing = _call(bob, method, _fill(path, **fake), _fill(body, **fake))

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


def test_lists_show_only_the_callers_objects(api_client, world):
    bob = api_client(world["bob"])

    wallets = bob.get("/api/v1/wallets?limit=100").json()["results"]
    transfers = bob.get("/api/v1/transfers?limit=100").json()["results"]

    assert [w["id"] for w in wallets] == [str(world["b_wallet"].id)]
    assert str(world["a_transfer"].id) not in {t["id"] for t in transfers}
    assert all(
        str(world["b_wallet"].id) in (t["source_wallet_id"], t["destination_wallet_id"]) for t in transfers
    )


def test_the_owner_still_reaches_the_same_objects(api_client, world):
    """Control: the 404s above are about ownership, not broken routes."""
    alice = api_client(world["alice"])
    a_wallet, a_transfer = world["a_wallet"], world["a_transfer"]

    assert alice.get(f"/api/v1/wallets/{a_wallet.id}").status_code == 200
    assert alice.get(f"/api/v1/wallets/{a_wallet.id}/transactions").status_code == 200
    assert alice.get(f"/api/v1/transfers/{a_transfer.id}").status_code == 200
    assert alice.get(f"/api/v1/transfers?wallet={a_wallet.id}").status_code == 200


# --- API2: broken authentication ---------------------------------------------------------------


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _access_payload(user: User) -> dict:
    return dict(AccessToken.for_user(user).payload)


def tampered_payload(world) -> str:
    """Alice's real token with the user id changed to Bob's: the signature no longer matches."""
    header, _, signature = str(AccessToken.for_user(world["alice"])).split(".")
    payload = _access_payload(world["alice"])
    payload["user_id"] = str(world["bob"].id)
    return f"{header}.{_b64(payload)}.{signature}"


def tampered_signature(world) -> str:
    header, payload, signature = str(AccessToken.for_user(world["alice"])).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{header}.{payload}.{flipped}"


def other_key(world) -> str:
    return jwt.encode(_access_payload(world["alice"]), "not-the-signing-key-" * 3, algorithm="HS256")


def secret_key_instead_of_jwt_key(world) -> str:
    # Only meaningful when they differ (production requires JWT_SIGNING_KEY); harmless otherwise.
    key = settings.SECRET_KEY if settings.SECRET_KEY != jwt_settings.SIGNING_KEY else "x" * 64
    return jwt.encode(_access_payload(world["alice"]), key, algorithm="HS256")


def alg_none(world) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_access_payload(world['alice']))}."


def alg_hs512(world) -> str:
    """The right key but another algorithm: the algorithm is pinned, not taken from the header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # the short test key; irrelevant here
        return jwt.encode(_access_payload(world["alice"]), jwt_settings.SIGNING_KEY, algorithm="HS512")


def expired(world) -> str:
    token = AccessToken.for_user(world["alice"])
    token.set_exp(from_time=timezone.now() - timedelta(hours=1))
    return str(token)


def refresh_as_access(world) -> str:
    return str(RefreshToken.for_user(world["alice"]))


def garbage(world) -> str:
    return "not.a.jwt"


BAD_TOKENS = [
    tampered_payload,
    tampered_signature,
    other_key,
    secret_key_instead_of_jwt_key,
    alg_none,
    alg_hs512,
    expired,
    refresh_as_access,
    garbage,
]


@pytest.mark.parametrize("make_token", BAD_TOKENS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/wallets", None),
        ("get", "/api/v1/auth/me", None),
        ("post", "/api/v1/wallets/{a_wallet}/withdrawals", {"amount": 100}),
    ],
    ids=["wallet-list", "me", "withdrawal"],
)
def test_bad_access_tokens_are_401_problems(world, make_token, method, path, body):
    before = money_state()
    client = bearer(make_token(world))

    response = _call(client, method, path.format(a_wallet=world["a_wallet"].id), body)

    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "alice" not in response.content.decode()
    assert money_state() == before


def test_the_control_token_works(world):
    """The same construction with nothing wrong is accepted, so the 401s above are about the flaw."""
    token = jwt.encode(_access_payload(world["alice"]), jwt_settings.SIGNING_KEY, algorithm="HS256")

    response = bearer(token).get("/api/v1/wallets")

    assert response.status_code == 200


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic YWxpY2U6cGFzcw==", "Token abc"])
def test_missing_or_foreign_credentials_are_401(world, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(f"/api/v1/wallets/{world['a_wallet'].id}")

    assert_problem(response, 401, "not_authenticated")


def _refresh(refresh: str):
    return APIClient().post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json")


def test_an_access_token_is_not_a_refresh_token(world):
    assert_problem(_refresh(str(AccessToken.for_user(world["alice"]))), 401, "not_authenticated")


def test_a_refresh_token_is_dead_after_logout(world):
    refresh = str(RefreshToken.for_user(world["alice"]))

    logout = APIClient().post("/api/v1/auth/logout", {"refresh": refresh}, format="json")

    assert logout.status_code == 205
    assert_problem(_refresh(refresh), 401, "not_authenticated")


def test_a_refresh_token_is_dead_after_rotation_and_its_successor_lives(world):
    refresh = str(RefreshToken.for_user(world["alice"]))

    rotated = _refresh(refresh)

    assert rotated.status_code == 200, rotated.content
    successor = rotated.json()["refresh"]
    assert successor != refresh
    assert_problem(_refresh(refresh), 401, "not_authenticated")
    assert _refresh(successor).status_code == 200


def test_a_refresh_token_signed_with_another_key_is_refused(world):
    payload = dict(RefreshToken.for_user(world["alice"]).payload)
    forged = jwt.encode(payload, "not-the-signing-key-" * 3, algorithm="HS256")

    assert_problem(_refresh(forged), 401, "not_authenticated")


def test_access_tokens_are_short_lived_and_refresh_tokens_rotate():
    access, refresh = jwt_settings.ACCESS_TOKEN_LIFETIME, jwt_settings.REFRESH_TOKEN_LIFETIME
    assert access <= timedelta(minutes=15)
    assert refresh <= timedelta(days=7)
    assert jwt_settings.ROTATE_REFRESH_TOKENS and jwt_settings.BLACKLIST_AFTER_ROTATION
    assert jwt_settings.ALGORITHM == "HS256"


# --- API2: login brute force (LoginGuard) -----------------------------------------------------


def login_budgets(**rates: str) -> override_settings:
    # Day windows: django-ratelimit counts in fixed windows, and a burst must not
    # straddle one (a minute window would make these tests flaky).
    return override_settings(
        RATE_LIMITS={**settings.RATE_LIMITS, "login_ip": "5/d", "login_user": "3/d", **rates}
    )


def login(username: str, password: str, ip: str):
    return APIClient().post(
        "/api/v1/auth/token", {"username": username, "password": password}, format="json", REMOTE_ADDR=ip
    )


def assert_rate_limited(response) -> None:
    assert_problem(response, 429, "rate_limited")
    assert response["Retry-After"].isdigit()
    assert int(response["Retry-After"]) >= 1


@login_budgets()
def test_failed_logins_for_one_user_are_limited_even_across_ips(make_user):
    make_user("alice")
    make_user("carol")

    failures = [login("alice", "wrong-password", f"198.51.100.{n}") for n in range(1, 4)]
    blocked = login("alice", "wrong-password", "198.51.100.50")
    right_password_while_blocked = login("alice", PASSWORD, "198.51.100.51")
    someone_else = login("carol", PASSWORD, "192.0.2.77")

    assert [r.status_code for r in failures] == [401, 401, 401]
    assert_rate_limited(blocked)
    # Refused before the password is checked: a locked account cannot be guessed into.
    assert_rate_limited(right_password_while_blocked)
    assert someone_else.status_code == 200, someone_else.content


@login_budgets()
def test_failed_logins_from_one_ip_are_limited_across_usernames(make_user):
    make_user("alice")
    make_user("carol")

    failures = [login(f"victim{n}", "wrong-password", "203.0.113.9") for n in range(5)]
    blocked = login("alice", "wrong-password", "203.0.113.9")
    blocked_even_when_right = login("alice", PASSWORD, "203.0.113.9")
    other_ip = login("carol", PASSWORD, "192.0.2.78")

    assert [r.status_code for r in failures] == [401] * 5
    assert_rate_limited(blocked)
    assert_rate_limited(blocked_even_when_right)
    assert other_ip.status_code == 200, other_ip.content


@login_budgets()
def test_unknown_usernames_are_limited_like_real_ones(make_user):
    """Otherwise the 429 itself would tell an attacker which usernames exist."""
    failures = [login("ghost", "wrong-password", f"198.51.100.{n}") for n in range(1, 4)]

    assert [r.status_code for r in failures] == [401, 401, 401]
    assert_rate_limited(login("ghost", "wrong-password", "198.51.100.99"))


@login_budgets()
def test_successful_logins_do_not_spend_the_budget(make_user):
    make_user("alice")

    statuses = [login("alice", PASSWORD, "192.0.2.10").status_code for _ in range(6)]

    assert statuses == [200] * 6


@pytest.mark.parametrize(
    ("username", "status"),
    [("a" * 10_000, 401), ("ali\x00ce", 400), (["alice"], 400), ({"$ne": ""}, 400), (None, 400)],
    ids=["very-long", "nul-byte", "list", "object", "null"],
)
def test_hostile_usernames_at_login_are_refused_cleanly(make_user, username, status):
    """Attacker-shaped usernames reach the guard, the audit trail and the database: never a 500."""
    make_user("alice")

    response = APIClient().post(
        "/api/v1/auth/token",
        {"username": username, "password": PASSWORD},
        format="json",
        REMOTE_ADDR="192.0.2.30",
    )

    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    assert "access" not in response.json()


@login_budgets()
def test_the_admin_login_form_is_brute_force_limited_too(client, make_user):
    staff = make_user("staffer")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])

    for n in range(4):
        client.post(
            "/admin/login/", {"username": "staffer", "password": f"guess-{n}"}, REMOTE_ADDR=f"198.51.100.{n}"
        )
    client.post("/admin/login/", {"username": "staffer", "password": PASSWORD}, REMOTE_ADDR="198.51.100.60")

    # The budget for "staffer" is spent: even the right password must not open a session.
    assert "_auth_user_id" not in client.session


def test_wrong_password_and_unknown_user_answer_alike(make_user):
    make_user("alice")

    wrong = login("alice", "wrong-password", "192.0.2.20")
    unknown = login("nobody-by-that-name", "wrong-password", "192.0.2.21")

    assert wrong.status_code == unknown.status_code == 401
    strip = {"instance", "request_id"}
    assert {k: v for k, v in wrong.json().items() if k not in strip} == {
        k: v for k, v in unknown.json().items() if k not in strip
    }


# --- API3: mass assignment --------------------------------------------------------------------

SMUGGLED = {
    "balance": 10**12,
    "owner": "{bob_id}",
    "owner_id": "{bob_id}",
    "status": "frozen",
    "currency": "EUR",
    "kind": "system",
    "is_staff": True,
    "is_superuser": True,
}

# endpoint -> (method, path, legitimate body, the smuggled fields that are not its own)
WRITABLE = {
    "register": (
        "post",
        "/api/v1/auth/register",
        {"username": "mallory", "email": "mallory@example.com", "password": "An0ther-s3cure-pass"},
        list(SMUGGLED),
    ),
    "wallet-create": (
        "post",
        "/api/v1/wallets",
        {"currency": "USD"},
        [f for f in SMUGGLED if f != "currency"],
    ),
    "wallet-rename": ("patch", "/api/v1/wallets/{a_wallet}", {"name": "renamed"}, list(SMUGGLED)),
    "deposit": ("post", "/api/v1/wallets/{a_wallet}/deposits", {"amount": 100}, list(SMUGGLED)),
    "withdrawal": ("post", "/api/v1/wallets/{a_wallet}/withdrawals", {"amount": 100}, list(SMUGGLED)),
    "transfer": (
        "post",
        "/api/v1/transfers",
        {"source_wallet_id": "{a_wallet}", "destination_wallet_id": "{b_wallet}", "amount": 100},
        [*SMUGGLED, "initiated_by_id", "id", "created_at"],
    ),
}
MASS_ASSIGNMENT_CASES = [(endpoint, field) for endpoint, spec in WRITABLE.items() for field in spec[3]]


@pytest.mark.parametrize(
    ("endpoint", "field"), MASS_ASSIGNMENT_CASES, ids=[f"{e}-{f}" for e, f in MASS_ASSIGNMENT_CASES]
)
def test_fields_a_client_does_not_own_are_refused(api_client, world, endpoint, field):
    method, path, body, _ = WRITABLE[endpoint]
    ids = {"a_wallet": str(world["a_wallet"].id), "b_wallet": str(world["b_wallet"].id)}
    value = SMUGGLED.get(field, str(uuid.uuid4()))
    value = world["bob"].id if value == "{bob_id}" else value
    client = api_client(None if endpoint == "register" else world["alice"])
    before, records = money_state(), IdempotencyRecord.objects.count()

    response = _call(client, method, _fill(path, **ids), {**_fill(body, **ids), field: value})

    problem = assert_problem(response, 400, "validation_error")
    assert field in problem["errors"], problem
    assert money_state() == before
    assert IdempotencyRecord.objects.count() == records
    assert not User.objects.filter(username="mallory").exists()


@pytest.mark.parametrize("endpoint", WRITABLE)
def test_the_legitimate_body_alone_is_accepted(api_client, world, endpoint):
    """Control: each body above fails only because of the smuggled field."""
    method, path, body, _ = WRITABLE[endpoint]
    ids = {"a_wallet": str(world["a_wallet"].id), "b_wallet": str(world["b_wallet"].id)}
    client = api_client(None if endpoint == "register" else world["alice"])

    response = _call(client, method, _fill(path, **ids), _fill(body, **ids))

    assert response.status_code in (200, 201), response.content


# --- API4: resource consumption ---------------------------------------------------------------

BODY_ENDPOINTS = {
    "register": ("post", "/api/v1/auth/register", False),
    "login": ("post", "/api/v1/auth/token", False),
    "wallet-create": ("post", "/api/v1/wallets", True),
    "wallet-rename": ("patch", "/api/v1/wallets/{a_wallet}", True),
    "deposit": ("post", "/api/v1/wallets/{a_wallet}/deposits", True),
    "transfer": ("post", "/api/v1/transfers", True),
}


def _raw(world, endpoint: str, payload: str):
    method, path, authed = BODY_ENDPOINTS[endpoint]
    client = APIClient()
    if authed:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(world['alice'])}")
    return getattr(client, method)(
        path.format(a_wallet=world["a_wallet"].id), data=payload, content_type="application/json", **idem()
    )


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS)
def test_a_body_over_the_cap_is_413(world, endpoint):
    payload = json.dumps({"amount": 100, "description": "x" * settings.API_MAX_BODY_BYTES})
    before = money_state()

    response = _raw(world, endpoint, payload)

    assert_problem(response, 413, "payload_too_large")
    assert money_state() == before


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS)
def test_a_body_just_under_the_cap_is_parsed(world, endpoint):
    """Control: the 413 is about size; a big but allowed body reaches validation."""
    padding = settings.API_MAX_BODY_BYTES - 200
    payload = json.dumps({"amount": 100, "description": "x" * padding})

    response = _raw(world, endpoint, payload)

    assert response.status_code == 400, response.content[:300]


@pytest.mark.parametrize("depth", [settings.API_MAX_JSON_DEPTH + 1, 30_000])
@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS)
def test_deeply_nested_json_is_400_not_500(world, endpoint, depth):
    payload = '{"amount": ' + "[" * depth + "]" * depth + "}"
    assert len(payload) < settings.API_MAX_BODY_BYTES
    before = money_state()

    response = _raw(world, endpoint, payload)

    assert_problem(response, 400, "malformed_request")
    assert money_state() == before


@pytest.mark.parametrize("limit", ["1000000", "1" + "0" * 40])
def test_a_huge_page_limit_is_clamped_to_100(api_client, make_user, limit):
    owner = make_user()
    Wallet.objects.bulk_create(Wallet(owner=owner, currency="USD") for _ in range(105))

    response = api_client(owner).get(f"/api/v1/wallets?limit={limit}")

    assert response.status_code == 200
    page = response.json()
    assert len(page["results"]) == 100
    assert page["next"]


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "9" * 5000])
def test_a_nonsense_page_limit_is_400(api_client, world, limit):
    response = api_client(world["alice"]).get(f"/api/v1/wallets?limit={limit}")

    assert_problem(response, 400, "validation_error")


# --- API5: function-level authorization ------------------------------------------------------

ADMIN_PATHS = [
    "/admin/",
    "/admin/wallets/wallet/",
    "/admin/transfers/transfer/",
    "/admin/users/user/",
    "/admin/audit/auditevent/",
]


def _refused_admin(response) -> None:
    assert response.status_code in (302, 403), response.status_code
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/")
    assert b"Site administration" not in response.content


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_a_superuser_does_reach_the_admin(client, path):
    """Control: the refusals below are about the user, not missing pages."""
    client.force_login(User.objects.create_superuser("root", "root@example.com", PASSWORD))

    response = client.get(path)

    assert response.status_code == 200


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_non_staff_users_never_reach_the_admin(client, make_user, path):
    client.force_login(make_user())

    _refused_admin(client.get(path))


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_a_jwt_is_no_admin_credential(api_client, make_user, path):
    _refused_admin(api_client(make_user()).get(path))


@pytest.mark.parametrize("path", ADMIN_PATHS[1:])
def test_staff_without_model_permissions_are_refused(client, make_user, path):
    user = make_user()
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)

    response = client.get(path)

    assert response.status_code == 403


def test_a_non_staff_user_cannot_log_into_the_admin(client, make_user):
    user = make_user()

    response = client.post(
        "/admin/login/?next=/admin/", {"username": user.username, "password": PASSWORD, "next": "/admin/"}
    )

    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session
    _refused_admin(client.get("/admin/"))


def _refused_metrics(response) -> None:
    assert response.status_code in (403, 404), response.status_code
    assert b"# HELP" not in response.content and b"# TYPE" not in response.content


@pytest.mark.parametrize("path", ["/metrics", "/metrics/"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_X_FORWARDED_FOR": "127.0.0.1"},
        {"HTTP_X_REAL_IP": "127.0.0.1", "HTTP_FORWARDED": "for=127.0.0.1"},
        {"HTTP_AUTHORIZATION": "Bearer wrong-token"},
    ],
    ids=["plain", "spoofed-xff", "spoofed-real-ip", "wrong-token"],
)
@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS="127.0.0.1/32,::1/128")
def test_metrics_refuse_anonymous_callers_from_outside(client, path, headers):
    _refused_metrics(client.get(path, REMOTE_ADDR="203.0.113.7", **headers))


@override_settings(METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS="127.0.0.1/32,::1/128")
def test_a_user_jwt_is_no_metrics_credential(api_client, make_user):
    _refused_metrics(api_client(make_user()).get("/metrics", REMOTE_ADDR="203.0.113.7"))
