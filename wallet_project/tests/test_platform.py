"""Health checks, the OpenAPI schema and docs, and the API's 404."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import OperationalError
from django.test import Client

from conftest import PROBLEM, SLASHES

BASE_DIR = Path(__file__).resolve().parents[2]


# --- health ---------------------------------------------------------------------------


@SLASHES
def test_healthz_answers_without_database_access(slash):
    # No django_db mark: any query here would raise "Database access not allowed".
    response = Client().get(f"/healthz{slash}")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_healthz_runs_no_queries(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")

    assert response.status_code == 200


@SLASHES
@pytest.mark.django_db
def test_readyz_checks_the_database(slash, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = Client().get(f"/readyz{slash}")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.django_db
def test_readyz_answers_503_when_the_database_is_down(monkeypatch):
    class DownDatabase:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr("foundation.health.connection", DownDatabase())

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


# --- OpenAPI ----------------------------------------------------------------------------


@SLASHES
@pytest.mark.django_db
def test_schema_is_an_openapi_3_document(slash):
    response = Client().get(f"/api/schema{slash}", {"format": "json"})

    assert response.status_code == 200, response.content[:500]
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"]
    paths = schema["paths"]
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/api/v1/wallets",
        "/api/v1/wallets/{id}",
        "/api/v1/wallets/{id}/transactions",
        "/api/v1/wallets/{id}/deposits",
        "/api/v1/wallets/{id}/withdrawals",
        "/api/v1/transfers",
        "/api/v1/transfers/{id}",
    ]:
        assert any(p.rstrip("/") == path for p in paths), path
    transfer_post = next(v["post"] for p, v in paths.items() if p.rstrip("/") == "/api/v1/transfers")
    headers = {p["name"]: p for p in transfer_post["parameters"] if p["in"] == "header"}
    assert headers["Idempotency-Key"]["required"] is True


@pytest.mark.django_db
def test_schema_yaml_is_served_by_default():
    response = Client().get("/api/schema/")

    assert response.status_code == 200
    assert b"openapi: 3." in response.content


def test_schema_generation_is_valid_and_emits_no_warnings():
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            "/dev/null",
            "--settings=wallet_project.settings.test",
        ],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr
    assert "Error" not in result.stderr


@SLASHES
@pytest.mark.django_db
def test_swagger_ui_is_served(slash):
    response = Client().get(f"/api/docs{slash}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()


# --- unknown paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/", "/api/v1/", "/api/v1/nope", "/api/v1/wallets/x/y/z", "/api/v2/wallets", "/api/v1/auth/nope"],
)
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.django_db
def test_unknown_api_paths_are_problem_404(method, path):
    response = getattr(Client(), method)(path)

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert (body["code"], body["status"]) == ("not_found", 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/wallets/{wallet}"),
        ("delete", "/api/v1/wallets/{wallet}"),
        ("patch", "/api/v1/transfers"),
        ("get", "/api/v1/wallets/{wallet}/deposits"),
        ("get", "/api/v1/auth/token"),
    ],
)
def test_wrong_method_is_problem_405(api_client, make_user, make_wallet, method, path):
    user = make_user()
    wallet = make_wallet(user, balance=100)

    response = getattr(api_client(user), method)(path.format(wallet=wallet.id))

    assert response.status_code == 405
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "method_not_allowed"
    wallet.refresh_from_db()
    assert wallet.balance == 100
