"""What every answer under /api/ promises, whoever writes it: Django, DRF or our views.

An error is application/problem+json with a stable `code`, whatever the method or the
failure (CSRF, a bad Host header, 404, 405, 411, 413, 500), with DEBUG on or off. Every
answer carries X-Request-ID. Nothing under /api/ but the schema and its docs page may
be cached. A body the API would not read whole (chunked, no Content-Length) is a 411,
never read as empty.

This module is also a URLconf (the project's, plus views that fail on purpose), used by
the tests marked `@pytest.mark.urls(__name__)`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from functools import partial
from pathlib import Path

import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.test import APIClient
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

from conftest import PROBLEM, assert_problem, idem
from transfers.models import LedgerEntry, Transfer
from wallet_project import urls as project_urls
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parent.parent.parent


# --- a URLconf with views that fail on purpose -----------------------------------------------------


def _raises(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


class _RaisesView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    def get(self, request: Request) -> HttpResponse:
        raise RuntimeError("a bug")


def _csrf_protected(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/test-raises", _raises),
    path("api/v1/test-raises-drf", _RaisesView.as_view()),
    path("api/v1/test-csrf", _csrf_protected),
    *project_urls.urlpatterns,
]
handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500


# --- helpers ---------------------------------------------------------------------------------------


def browserless_client() -> Client:
    """A client as on the Internet: CSRF is enforced, a 500 is an answer rather than an exception."""
    client = Client(enforce_csrf_checks=True)
    client.raise_request_exception = False
    return client


def assert_api_problem(response, status: int, code: str) -> dict:
    body = assert_problem(response, status, code)
    assert response["X-Request-ID"]
    assert response["Cache-Control"] == "no-store"
    return body


def money() -> tuple:
    return (
        tuple(Wallet.objects.order_by("id").values_list("id", "balance")),
        Transfer.objects.count(),
        LedgerEntry.objects.count(),
    )


DEBUG = pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
UNSAFE = pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])


# --- 404: unknown paths, whatever the method -------------------------------------------------------


@DEBUG
@UNSAFE
@pytest.mark.parametrize(
    "path",
    ["/api/v1/nope", "/api/v1/wallets/not-a-uuid/deposits", "/api/v1/transfers/x/y", "/api", "/api/"],
)
def test_an_unsafe_request_to_an_unknown_api_path_is_a_problem_404(method, path, debug):
    with override_settings(DEBUG=debug):
        response = browserless_client().generic(method, path, b"{}", content_type="application/json")

    assert_api_problem(response, 404, "not_found")


@DEBUG
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["//api/v1/wallets", "//api/v1/nope", "///api/v1/transfers"])
def test_double_slashes_are_a_problem_404(method, path, debug):
    # Set PATH_INFO itself: the test client would read "//api" as a host name.
    with override_settings(DEBUG=debug):
        response = browserless_client().generic(
            method, "/", b"{}", content_type="application/json", PATH_INFO=path
        )

    assert response.wsgi_request.path_info == path
    assert_api_problem(response, 404, "not_found")


@DEBUG
def test_a_path_outside_the_api_keeps_djangos_404(debug):
    """Control: only /api/ promises problem+json; DEBUG's page elsewhere is Django's."""
    with override_settings(DEBUG=debug):
        response = browserless_client().get("/no-such-page")

    assert response.status_code == 404
    assert response["X-Request-ID"]
    assert "Cache-Control" not in response
    if debug:
        assert response["Content-Type"].startswith("text/html")


# --- CSRF --------------------------------------------------------------------------------------------


@pytest.mark.urls(__name__)
def test_a_csrf_refusal_under_the_api_is_a_problem():
    response = browserless_client().post("/api/v1/test-csrf", b"{}", content_type="application/json")

    assert_api_problem(response, 403, "csrf_failed")


def test_the_admin_keeps_djangos_csrf_page():
    response = browserless_client().post("/admin/login/", {"username": "a", "password": "b"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert b"CSRF verification failed" in response.content


# --- a bad Host header -------------------------------------------------------------------------------


@DEBUG
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_host_header_is_a_problem_400_with_the_request_id(method, debug):
    with override_settings(DEBUG=debug):
        response = browserless_client().generic(
            method, "/api/v1/wallets", HTTP_HOST="evil.example", HTTP_X_REQUEST_ID="trace-me-1"
        )

    assert_api_problem(response, 400, "bad_request")
    assert response["X-Request-ID"] == "trace-me-1"


# --- 405, 406, 411, 413 ------------------------------------------------------------------------------


@DEBUG
@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/api/v1/transfers"), ("DELETE", "/api/v1/wallets"), ("GET", "/api/v1/auth/token")],
)
def test_a_wrong_method_is_a_problem_405_with_allow(make_user, api_client, method, path, debug):
    client = api_client(make_user())
    client.raise_request_exception = False

    with override_settings(DEBUG=debug):
        response = client.generic(method, path)

    assert_api_problem(response, 405, "method_not_allowed")
    assert response["Allow"]


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/api/schema?format=nope", {}),
        ("/api/docs?format=nope", {}),
        ("/api/schema", {"HTTP_ACCEPT": "application/xml"}),
    ],
)
def test_errors_of_the_schema_views_are_problem_json_too(path, extra):
    """Those views render YAML and HTML; their errors must still be JSON problems."""
    response = browserless_client().get(path, **extra)

    assert response.status_code in (404, 406)
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] in ("not_found", "not_acceptable")


@DEBUG
def test_an_oversized_body_is_a_problem_413(make_user, make_wallet, api_client, debug):
    user = make_user()
    wallet = make_wallet(user, balance=100)
    before = money()

    with override_settings(DEBUG=debug):
        response = api_client(user).post(
            f"/api/v1/wallets/{wallet.id}/deposits",
            b'{"amount": 1, "description": "' + b"x" * 70_000 + b'"}',
            content_type="application/json",
            **idem(),
        )

    assert_api_problem(response, 413, "payload_too_large")
    assert money() == before


@pytest.fixture
def alice(make_user, make_wallet):
    user = make_user()
    return user, make_wallet(user, balance=100)


def _chunked(client: APIClient, path: str, body: bytes, **extra: str):
    # What a WSGI server hands over for `Transfer-Encoding: chunked`: the header, no Content-Length.
    return client.generic(
        "POST",
        path,
        body,
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        **extra,
    )


def test_a_chunked_body_is_411_not_read_as_empty(alice, api_client):
    user, wallet = alice
    before = money()

    response = _chunked(api_client(user), f"/api/v1/wallets/{wallet.id}/deposits", b'{"amount": 5}', **idem())

    assert_api_problem(response, 411, "length_required")
    assert money() == before


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/token", "/api/v1/auth/register", "/api/v1/wallets", "/api/v1/nope"]
)
def test_every_api_path_refuses_a_chunked_body(api_client, make_user, path):
    response = _chunked(api_client(make_user()), path, b'{"username": "x"}')

    assert_api_problem(response, 411, "length_required")


def test_the_same_body_with_a_content_length_is_accepted(alice, api_client):
    """Control: the 411 is about the missing length, not about the request."""
    user, wallet = alice

    response = api_client(user).post(
        f"/api/v1/wallets/{wallet.id}/deposits", b'{"amount": 5}', content_type="application/json", **idem()
    )

    assert response.status_code == 201, response.content[:300]


@pytest.mark.parametrize("length", ["abc", "-1", "1e3"])
def test_a_content_length_that_is_no_number_is_400(alice, api_client, length):
    user, wallet = alice
    client = api_client(user)
    client.raise_request_exception = False

    response = client.generic(
        "POST",
        f"/api/v1/wallets/{wallet.id}/deposits",
        b'{"amount": 5}',
        content_type="application/json",
        CONTENT_LENGTH=length,
        **idem(),
    )

    assert_api_problem(response, 400, "malformed_request")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def gunicorn_port(tmp_path):
    """A real gunicorn (one sync worker) on a free loopback port; stopped after the test.

    Its database is this test run's (never the development one), though the requests
    sent to it never reach a view that queries.
    """
    port = _free_port()
    config = tmp_path / "gunicorn_test.conf.py"
    config.write_text("")  # not the project's gunicorn.conf.py: no metrics hooks, one worker
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "wallet_project.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "OTEL_SDK_DISABLED": "true",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(config),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "20",
            "--graceful-timeout",
            "2",
            "wallet_project.wsgi:application",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, "gunicorn exited"
            try:
                if b" 200 " in _exchange(
                    port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                ):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer in 30 s"
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def _post(port: int, path: str, body: bytes, *, chunked: bool) -> tuple[bytes, bytes]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n"
    )
    if chunked:
        request = head.encode() + b"Transfer-Encoding: chunked\r\n\r\n"
        request += f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        request = head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    answer = _exchange(port, request)
    headers, _, payload = answer.partition(b"\r\n\r\n")
    return headers, payload


def test_a_real_chunked_request_through_gunicorn_is_411(gunicorn_port):
    body = b'{"username": "alice", "password": "x"}'

    headers, payload = _post(gunicorn_port, "/api/v1/auth/token", body, chunked=True)

    assert headers.startswith(b"HTTP/1.1 411 "), headers
    assert b"Content-Type: application/problem+json" in headers
    assert b'"code":"length_required"' in payload
    # Control: with a length, gunicorn and Django read the body (here: a field is missing).
    headers, payload = _post(gunicorn_port, "/api/v1/auth/token", b'{"username": "alice"}', chunked=False)
    assert headers.startswith(b"HTTP/1.1 400 "), headers
    assert b'"password"' in payload


# --- 500 ---------------------------------------------------------------------------------------------


@DEBUG
@pytest.mark.urls(__name__)
@pytest.mark.parametrize("path", ["/api/v1/test-raises", "/api/v1/test-raises-drf"])
def test_a_bug_is_a_problem_500_even_with_debug_on(path, debug):
    with override_settings(DEBUG=debug):
        response = browserless_client().get(path, HTTP_X_REQUEST_ID="trace-me-2")

    body = assert_api_problem(response, 500, "internal_error")
    assert "a bug" not in body["detail"]
    assert response["X-Request-ID"] == "trace-me-2"


# --- caching -----------------------------------------------------------------------------------------


def test_api_answers_are_never_stored_by_a_cache(alice, api_client):
    user, wallet = alice
    client = api_client(user)
    refresh = str(RefreshToken.for_user(user))
    other = Wallet.objects.create(owner=user, currency="USD")
    answers = {
        "token": APIClient().post(
            "/api/v1/auth/token", {"username": user.username, "password": "S3cure-pass-123"}, format="json"
        ),
        "refresh": APIClient().post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json"),
        "me": client.get("/api/v1/auth/me"),
        "wallets": client.get("/api/v1/wallets"),
        "wallet": client.get(f"/api/v1/wallets/{wallet.id}"),
        "transactions": client.get(f"/api/v1/wallets/{wallet.id}/transactions"),
        "deposit": client.post(
            f"/api/v1/wallets/{wallet.id}/deposits", {"amount": 5}, format="json", **idem()
        ),
        "withdrawal": client.post(
            f"/api/v1/wallets/{wallet.id}/withdrawals", {"amount": 5}, format="json", **idem()
        ),
        "transfer": client.post(
            "/api/v1/transfers",
            {"source_wallet_id": str(wallet.id), "destination_wallet_id": str(other.id), "amount": 5},
            format="json",
            **idem(),
        ),
        "transfers": client.get("/api/v1/transfers"),
        "not-found": client.get(f"/api/v1/wallets/{uuid.uuid4()}"),
        "unauthenticated": APIClient().get("/api/v1/wallets"),
    }

    for name, response in answers.items():
        assert response.status_code in (200, 201, 401, 404), (name, response.content[:200])
        assert response["Cache-Control"] == "no-store", name


@pytest.mark.parametrize("path", ["/api/schema", "/api/docs"])
def test_the_schema_and_its_docs_may_be_cached(path):
    response = Client().get(path)

    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


def test_a_replayed_money_answer_is_not_cacheable_either(alice, api_client):
    user, wallet = alice
    client = api_client(user)
    key = idem()
    client.post(f"/api/v1/wallets/{wallet.id}/deposits", {"amount": 5}, format="json", **key)

    replay = client.post(f"/api/v1/wallets/{wallet.id}/deposits", {"amount": 5}, format="json", **key)

    assert replay["Idempotent-Replayed"] == "true"
    assert replay["Cache-Control"] == "no-store"


@pytest.mark.django_db(transaction=True)
def test_a_rename_behind_a_stuck_row_lock_is_503_service_busy_not_500(api_client, make_user, make_wallet):
    from testing.threads import held_in_transaction
    from wallets.models import Wallet

    owner = make_user()
    wallet = make_wallet(owner)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '200ms'")
    lock = partial(Wallet.objects.select_for_update().get, pk=wallet.pk)

    with held_in_transaction(lock):
        response = api_client(owner).patch(f"/api/v1/wallets/{wallet.id}", {"name": "x"}, format="json")

    assert response.status_code == 503, response.content
    assert (response["Content-Type"], response.json()["code"]) == (PROBLEM, "service_busy")
    assert response["Retry-After"] == "1"
