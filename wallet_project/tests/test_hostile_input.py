"""Hostile input at every endpoint: never a 5xx, always a problem with a code, never money moved.

The endpoints come from the URLconf, their body fields and query parameters from the
OpenAPI schema, so an endpoint added later is swept without touching this file. Each
hostile value goes, one place at a time, into every body field (and a body key), every
query parameter, the path parameter and five headers, anonymously and with a token.

Values are what a client can put on the wire. In a JSON body a lone surrogate is the
escape `\\ud800` and NUL is `\\u0000`. A query string, a path and a header arrive as bytes:
WSGI hands them to Django as latin-1 text (PEP 3333), so there a lone surrogate is its
UTF-8-style bytes ED A0 80 (percent-encoded in a URL) and can never be a Python
surrogate code point.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from audit.models import AuditEvent
from conftest import PROBLEM, assert_problem
from events.models import Event
from foundation.parsers import loads_strict
from transfers import services as ledger
from transfers.holds import hold_create, hold_void
from transfers.models import Hold, LedgerEntry, Transfer
from users.login_guard import LoginGuard
from wallets.models import Wallet
from webhooks.models import WebhookEndpoint
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

PASSWORD = "S3cure-pass-123"
PUBLIC_URL = "https://93.184.215.14/hooks"  # public, and an IP literal: no DNS lookup
WITHIN_CAP = settings.API_MAX_BODY_BYTES - 4096
BEYOND_CAP = 100_000
assert WITHIN_CAP > 50_000 and BEYOND_CAP > settings.API_MAX_BODY_BYTES

# Strings inside a JSON body (json.dumps writes the escapes).
BODY_VALUES = {
    "lone-surrogate": "x\ud800",
    "nul": "a\x00b",
    "long-within-cap": "A" * WITHIN_CAP,
    "long-beyond-cap": "A" * BEYOND_CAP,
}
# Percent-encoded, for a query string or a path.
URL_VALUES = {"lone-surrogate": "x%ED%A0%80", "nul": "a%00b", "long": "A" * BEYOND_CAP}
# Header values as WSGI delivers the bytes: latin-1 text.
HEADER_VALUES = {"lone-surrogate": "x\xed\xa0\x80", "nul": "a\x00b", "long": "A" * BEYOND_CAP}
HEADERS = ["Idempotency-Key", "X-Request-ID", "Authorization", "User-Agent", "X-Forwarded-For"]


# --- the endpoints -------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    groups: tuple[str, ...]
    methods: tuple[str, ...]


def _methods(callback: Any) -> tuple[str, ...]:
    actions = getattr(callback, "actions", None)  # a DRF viewset
    if actions:
        return tuple(sorted(method.upper() for method in actions))
    view_class = getattr(callback, "view_class", None)  # a class-based view
    if view_class is not None:
        names = [m for m in view_class.http_method_names if m not in ("options", "head")]
        return tuple(sorted(m.upper() for m in names if hasattr(view_class, m)))
    return ("GET",)  # a function view


def _routes() -> list[Route]:
    """Every named endpoint in the URLconf, the admin's aside (it is not the API)."""
    found: dict[str, Route] = {}

    def walk(patterns: list[Any]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace != "admin":
                    walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and pattern.name:
                groups = tuple(pattern.pattern.regex.groupindex)
                found.setdefault(pattern.name, Route(pattern.name, groups, _methods(pattern.callback)))

    walk(get_resolver().url_patterns)
    return list(found.values())


ROUTES = {route.name: route for route in _routes()}


def test_the_sweep_sees_every_endpoint():
    """Control: the enumeration finds the endpoints (a broken walk would sweep nothing)."""
    expected = {
        "register",
        "token",
        "token-refresh",
        "logout",
        "me",
        "wallet-list",
        "wallet-detail",
        "wallet-transactions",
        "wallet-deposits",
        "wallet-withdrawals",
        "transfer-list",
        "transfer-detail",
        "transfer-refunds",
        "wallet-holds",
        "wallet-balance",
        "wallet-statement",
        "idempotency-key",
        "hold-list",
        "hold-detail",
        "hold-capture",
        "hold-void",
        "webhook-endpoint-list",
        "webhook-endpoint-detail",
        "webhook-endpoint-rotate-secret",
        "schema",
        "docs",
        "healthz",
        "readyz",
        "metrics",
    }
    assert expected <= set(ROUTES)
    assert ROUTES["wallet-detail"].methods == ("GET", "PATCH")
    assert ROUTES["transfer-list"].methods == ("GET", "POST")


@pytest.fixture(scope="module")
def operations() -> dict[tuple[str, str], dict[str, list[str]]]:
    """(route name, METHOD) -> {"body": field names, "query": parameter names}, from the schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema.get("components", {}).get("schemas", {})
    found: dict[tuple[str, str], dict[str, list[str]]] = {}
    for path, operations_ in schema["paths"].items():
        name = resolve(path.replace("{id}", str(uuid.uuid4()))).url_name
        for method, operation in operations_.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            body_schema = body.get("schema", {})
            if "$ref" in body_schema:
                body_schema = components[body_schema["$ref"].rsplit("/", 1)[1]]
            found[(name, method.upper())] = {
                "body": sorted(body_schema.get("properties", {})),
                "query": sorted(p["name"] for p in operation.get("parameters", []) if p["in"] == "query"),
            }
    return found


# --- the world the requests act on -----------------------------------------------------------


@dataclass
class World:
    alice: Any
    wallet: Wallet  # active, with money
    other: Wallet  # active
    frozen: Wallet  # refuses movements (409), which is audited and stored
    transfer: Transfer  # wallet -> other
    refused_refund: Transfer  # wallet -> frozen: its refund comes from a frozen wallet (409)
    hold: Hold  # pending, on wallet
    finished_hold: Hold  # voided: capturing or voiding it again is refused (409)
    event: Event  # alice's latest
    endpoint: WebhookEndpoint  # alice's

    def money(self) -> tuple:
        """Everything a refused request must leave as it was."""
        return (
            tuple(Wallet.objects.exclude(balance=0).order_by("id").values_list("id", "balance")),
            Transfer.objects.count(),
            LedgerEntry.objects.count(),
        )


@pytest.fixture
def world(make_user, make_wallet) -> World:
    alice = make_user("alice", password=PASSWORD)
    wallet = make_wallet(alice, balance=1_000)
    other = make_wallet(alice)
    frozen = make_wallet(alice, balance=500)
    transfer = ledger.transfer_create(
        source_wallet_id=wallet.id, destination_wallet_id=other.id, initiated_by_id=alice.id, amount=1
    )
    refused_refund = ledger.transfer_create(
        source_wallet_id=wallet.id, destination_wallet_id=frozen.id, initiated_by_id=alice.id, amount=1
    )
    Wallet.objects.filter(pk=frozen.pk).update(status=Wallet.Status.FROZEN)
    hold = hold_create(wallet_id=wallet.id, owner_id=alice.id, amount=10)
    finished_hold = hold_create(wallet_id=wallet.id, owner_id=alice.id, amount=10)
    hold_void(hold_id=finished_hold.id, owner_id=alice.id)
    event = Event.objects.filter(owner_id=alice.id).order_by("-sequence").first()
    endpoint, _ = endpoint_create(owner_id=alice.id, url=PUBLIC_URL, event_types=["*"])
    return World(alice, wallet, other, frozen, transfer, refused_refund, hold, finished_hold, event, endpoint)


def _unique() -> str:
    return uuid.uuid4().hex[:12]


def valid_body(world: World, name: str, *, refused: bool = False) -> dict[str, Any]:
    """A body the endpoint accepts. refused=True: one that passes validation and is then
    refused by a business rule (audited, stored), so it reaches as deep as a request goes
    without moving money."""
    source = world.frozen if refused else world.wallet
    bodies: dict[str, Callable[[], dict[str, Any]]] = {
        "register": lambda: {
            "username": f"u{_unique()}",
            "email": f"{_unique()}@example.com",
            "password": PASSWORD,
        },
        "token": lambda: {"username": "alice", "password": "wrong" if refused else PASSWORD},
        "token-refresh": lambda: {"refresh": str(RefreshToken.for_user(world.alice))},
        "logout": lambda: {"refresh": str(RefreshToken.for_user(world.alice))},
        "wallet-list": lambda: {"currency": "USD", "name": "n"},
        "wallet-detail": lambda: {"name": "n"},
        "wallet-deposits": lambda: {"amount": 1, "reference": _unique(), "description": "d"},
        "wallet-withdrawals": lambda: {"amount": 1, "reference": _unique(), "description": "d"},
        "transfer-list": lambda: {
            "source_wallet_id": str(source.id),
            "destination_wallet_id": str(world.other.id),
            "amount": 1,
            "reference": _unique(),
            "description": "d",
        },
        "transfer-refunds": lambda: {"amount": 1, "reason": "r", "reference": _unique()},
        "wallet-holds": lambda: {
            "amount": 1,
            "expires_in_seconds": 60,
            "reference": _unique(),
            "description": "d",
        },
        "hold-capture": lambda: {"amount": 1, "description": "d"},
        "webhook-endpoint-list": lambda: {"url": PUBLIC_URL, "event_types": ["*"], "description": "d"},
        "webhook-endpoint-detail": lambda: {"description": "d"},
    }
    return bodies.get(name, dict)()


def path_for(world: World, route: Route, *, refused: bool = False) -> str:
    ids = {
        "transfer": world.refused_refund.id if refused else world.transfer.id,
        "wallet": world.frozen.id if refused else world.wallet.id,
        "hold": world.finished_hold.id if refused else world.hold.id,
        "event": world.event.uuid,
        "webhook": world.endpoint.id,
        # An Idempotency-Key is any printable string: one the sweep knows how to replace.
        "idempotency": world.transfer.id,
    }
    kwargs = {group: str(ids.get(route.name.split("-")[0], uuid.uuid4())) for group in route.groups}
    return reverse(route.name, kwargs=kwargs)


# --- sending and judging ---------------------------------------------------------------------


def _client(world: World, authed: bool) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)  # as a real client: no CSRF exemption
    client.raise_request_exception = False  # a 500 is a finding, not a crash of the sweep
    if authed:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(world.alice)}")
    return client


def send(client: APIClient, method: str, path: str, body: Any = None, **headers: str):
    extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    if method in ("POST", "PUT", "PATCH"):
        extra.setdefault("HTTP_IDEMPOTENCY_KEY", str(uuid.uuid4()))
        data = json.dumps(body if body is not None else {}).encode()  # ensure_ascii: escapes
        return client.generic(method, path, data, content_type="application/json", **extra)
    return client.generic(method, path, **extra)


def judge(response: Any, label: str) -> str | None:
    """What is wrong with this answer, or None."""
    status = response.status_code
    if status >= 500:
        return f"{label}: {status} {response.content[:200]!r}"
    if "X-Request-ID" not in response:
        return f"{label}: no X-Request-ID"
    if status >= 400 and response.wsgi_request.path.lstrip("/").startswith("api"):
        if response.get("Content-Type") != PROBLEM:
            return f"{label}: {status} {response.get('Content-Type')}"
        body = response.json()
        if not isinstance(body.get("code"), str) or not body["code"] or body.get("status") != status:
            return f"{label}: {status} problem without a code {body}"
    return None


def _methods_to_try(route: Route) -> Iterator[str]:
    yield from route.methods
    yield next(m for m in ("DELETE", "PUT", "POST") if m not in route.methods)  # a 405


@pytest.fixture
def sweep(world, operations, settings):
    settings.TRUSTED_PROXY_COUNT = 1  # so X-Forwarded-For is read (rate-limit keys, audit)

    def run(route: Route, requests: Callable[[Route, str, APIClient, str], Iterator[tuple[str, Any]]]):
        before = world.money()
        failures = []
        for authed in (False, True):
            client = _client(world, authed)
            for method in _methods_to_try(route):
                label = f"{'token' if authed else 'anon'} {method} {route.name}"
                for what, response in requests(route, method, client, label):
                    problem = judge(response, f"{label} {what}")
                    if problem:
                        failures.append(problem)
        assert not failures, "\n".join(failures[:30])
        assert world.money() == before

    return run


ROUTE_NAMES = pytest.mark.parametrize("route_name", sorted(ROUTES))


@ROUTE_NAMES
def test_hostile_strings_in_every_body_field(world, operations, sweep, route_name):
    def requests(route: Route, method: str, client: APIClient, label: str):
        if method not in ("POST", "PUT", "PATCH"):
            return
        fields = operations.get((route.name, method), {}).get("body", []) or ["field"]
        for kind, value in BODY_VALUES.items():
            for field in fields:
                body = {**valid_body(world, route.name), field: value}
                yield f"body.{field}={kind}", send(client, method, path_for(world, route), body)
            body = {**valid_body(world, route.name), value[:1000]: 1}
            yield f"body key={kind}", send(client, method, path_for(world, route), body)

    sweep(ROUTES[route_name], requests)


@ROUTE_NAMES
def test_hostile_query_parameters(world, operations, sweep, route_name):
    def requests(route: Route, method: str, client: APIClient, label: str):
        names = [*operations.get((route.name, method), {}).get("query", []), "q"]
        for kind, value in URL_VALUES.items():
            for name in names:
                path = f"{path_for(world, route, refused=True)}?{name}={value}"
                body = valid_body(world, route.name, refused=True)
                yield f"?{name}={kind}", send(client, method, path, body)

    sweep(ROUTES[route_name], requests)


@pytest.mark.parametrize("route_name", sorted(name for name, route in ROUTES.items() if route.groups))
def test_hostile_path_parameters(world, operations, sweep, route_name):
    route = ROUTES[route_name]

    def requests(route: Route, method: str, client: APIClient, label: str):
        real = path_for(world, route)
        for kind, value in URL_VALUES.items():
            path = real
            for real_id in (
                world.wallet.id,
                world.transfer.id,
                world.hold.id,
                world.event.uuid,
                world.endpoint.id,
            ):
                path = path.replace(str(real_id), value)
            assert path != real
            yield f"path={kind}", send(client, method, path, valid_body(world, route.name))

    sweep(route, requests)


@ROUTE_NAMES
def test_hostile_headers(world, operations, sweep, route_name):
    def requests(route: Route, method: str, client: APIClient, label: str):
        for kind, value in HEADER_VALUES.items():
            for header in HEADERS:
                body = valid_body(world, route.name, refused=True)
                path = path_for(world, route, refused=True)
                yield f"{header}={kind}", send(client, method, path, body, **{header: value})

    sweep(ROUTES[route_name], requests)


# --- the findings, one by one ------------------------------------------------------------------


def test_a_lone_surrogate_username_at_login_is_400_not_500(world):
    client = APIClient()
    client.raise_request_exception = False

    response = client.post(
        "/api/v1/auth/token", b'{"username":"x\\ud800","password":"p"}', content_type="application/json"
    )

    assert_problem(response, 400, "malformed_request")


@pytest.mark.parametrize(
    "username",
    ["x\ud800", "\udfff", "a\x00b", "Alice", " alice ", "A" * 10_000],
    ids=["high-surrogate", "low-surrogate", "nul", "capital", "spaces", "long"],
)
def test_the_login_guard_counts_any_username(world, rf, username):
    """The guard runs before validation, so it must take any string: it keys on a digest."""
    request = rf.post("/api/v1/auth/token", REMOTE_ADDR="192.0.2.1")

    LoginGuard(request, username).attempt()  # no UnicodeEncodeError


def test_the_login_guard_shares_one_budget_between_spellings_of_a_name(world, rf):
    request = rf.post("/api/v1/auth/token", REMOTE_ADDR="192.0.2.1")

    spellings = ["alice", "Alice", " ALICE ", "\uff21lice"]  # the last: a fullwidth A

    keys = {LoginGuard(request, name).keys["login_user"] for name in spellings}

    assert len(keys) == 1
    assert LoginGuard(request, "bob").keys["login_user"] not in keys


@pytest.mark.parametrize(
    "raw",
    [
        '{"a": "x\\ud800"}',  # a lone high surrogate
        '{"a": "\\udc00x"}',  # a lone low surrogate
        '{"a": "\\udc00\\ud800"}',  # a pair in the wrong order
        '{"x\\ud800": 1}',  # in a key
        '{"a": [1, {"b": ["\\ud83d"]}]}',  # deep inside
        '{"a": "a\\u0000b"}',  # NUL
        '{"a\\u0000": 1}',
    ],
)
def test_the_parser_refuses_lone_surrogates_and_nul_anywhere(raw):
    with pytest.raises(ValueError):
        loads_strict(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('{"a": "\\ud83d\\ude00"}', "\U0001f600"),  # a proper pair is one character
        ('{"a": "\\\\u0000"}', "\\u0000"),  # an escaped backslash, then text
        ('{"a": "\\u00e9"}', "\u00e9"),
        ('{"a": "é"}', "é"),
    ],
)
def test_the_parser_keeps_what_is_valid(raw, value):
    """Control: the refusal is about lone surrogates and NUL, not about escapes."""
    assert loads_strict(raw) == {"a": value}


@pytest.mark.parametrize(
    "raw",
    [
        '{"amount": 1, "amount": 1000000}',
        '{"a": {"b": 1, "b": 1}}',
        '{"a": [{"b": 1}, {"c": 1, "c": 2}]}',
        '{"a": 1, "\\u0061": 2}',  # the same key spelled twice
    ],
)
def test_the_parser_refuses_repeated_keys_at_any_depth(raw):
    with pytest.raises(ValueError):
        loads_strict(raw)


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        (
            '{"a": '
            + "[" * (settings.API_MAX_JSON_DEPTH - 1)
            + "]" * (settings.API_MAX_JSON_DEPTH - 1)
            + "}",
            True,
        ),
        ('{"a": ' + "[" * settings.API_MAX_JSON_DEPTH + "]" * settings.API_MAX_JSON_DEPTH + "}", False),
        ('{"a": "' + "[{" * 100 + '"}', True),  # many brackets, in a string: shallow
        ('{"a": [' + "[], " * 100 + "[]]}", True),  # many brackets, side by side: shallow
    ],
    ids=["at-the-limit", "one-deeper", "brackets-in-a-string", "brackets-side-by-side"],
)
def test_nesting_depth_is_measured_not_guessed_from_the_brackets(raw, accepted):
    if accepted:
        assert isinstance(loads_strict(raw), dict)
    else:
        with pytest.raises(ParseError):
            loads_strict(raw)


def test_a_repeated_amount_moves_no_money(world, api_client):
    """A proxy or log that keeps the first value must never see another request than the ledger."""
    before = world.money()

    response = api_client(world.alice).post(
        f"/api/v1/wallets/{world.wallet.id}/deposits",
        b'{"amount": 1, "amount": 1000000}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )

    body = assert_problem(response, 400, "malformed_request")
    assert '"amount"' in body["detail"]
    assert world.money() == before


def test_a_nul_in_a_json_field_is_400(world, api_client):
    response = api_client(world.alice).patch(
        f"/api/v1/wallets/{world.wallet.id}", b'{"name": "a\\u0000b"}', content_type="application/json"
    )

    assert_problem(response, 400, "malformed_request")


@pytest.mark.parametrize(
    "agent", ["a\x00b", "x\xed\xa0\x80", "A" * 10_000], ids=["nul", "surrogate-bytes", "long"]
)
def test_a_hostile_user_agent_is_recorded_safely(world, api_client, agent):
    """The audit trail stores the User-Agent; PostgreSQL text cannot hold NUL."""
    response = api_client(world.alice).post(
        f"/api/v1/wallets/{world.wallet.id}/deposits",
        {"amount": 5},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        HTTP_USER_AGENT=agent,
    )

    assert response.status_code == 201, response.content[:300]
    stored = AuditEvent.objects.filter(action=AuditEvent.Action.DEPOSIT).latest("id").user_agent
    assert "\x00" not in stored
    assert stored == agent[:512].replace("\x00", "\ufffd")


# --- arbitrary JSON at the money endpoints --------------------------------------------------------

_text = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=20)  # surrogates included
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_MONEY_FIELDS = ["amount", "reference", "description", "source_wallet_id", "destination_wallet_id"]
_body = st.dictionaries(st.sampled_from(_MONEY_FIELDS) | _text, _json, max_size=6)


@hypothesis_settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_body, endpoint=st.sampled_from(["deposits", "withdrawals", "transfers"]))
def test_arbitrary_json_at_the_money_endpoints(world, api_client, body, endpoint):
    """Any JSON object: a 201 that moved exactly the amount asked for, or a problem; never a 5xx."""
    client = api_client(world.alice)
    client.raise_request_exception = False
    path = "/api/v1/transfers" if endpoint == "transfers" else f"/api/v1/wallets/{world.wallet.id}/{endpoint}"
    total = sum(Wallet.objects.filter(owner=world.alice).values_list("balance", flat=True))
    transfers = Transfer.objects.count()

    raw = json.dumps(body).encode()  # ensure_ascii: a surrogate becomes its \u escape

    response = client.post(path, raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))

    assert response.status_code < 500, response.content[:300]
    after = sum(Wallet.objects.filter(owner=world.alice).values_list("balance", flat=True))
    if response.status_code == 201:
        assert Transfer.objects.count() == transfers + 1
        moved = {"deposits": body["amount"], "withdrawals": -body["amount"], "transfers": 0}[endpoint]
        assert after - total == moved
    else:
        assert response["Content-Type"] == PROBLEM
        assert response.json()["code"]
        assert (after, Transfer.objects.count()) == (total, transfers)
