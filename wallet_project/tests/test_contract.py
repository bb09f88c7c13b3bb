"""Contract tests: the server answers exactly as its OpenAPI document says.

The schemathesis CLI reads /api/schema/ from a live server on the test database,
generates valid and invalid requests for every operation (examples, coverage and
fuzzing phases, then stateful scenarios that follow the document's links: open a
wallet, deposit into it, read the transfer...) and runs every check it has on each
answer: no 5xx, only documented statuses, content types, headers and bodies, valid
data accepted, invalid data refused, authentication enforced.

The run is the one the README shows against `make run`; its settings (seed,
example counts, and each exclusion with its reason) live in schemathesis.toml.
The server is pytest-django's live server: this process, the test database (with
real commits) and the test settings' rate-limit budgets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.servers.basehttp import WSGIRequestHandler
from rest_framework_simplejwt.tokens import RefreshToken

from webhooks import network

BASE_DIR = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Operations reached without a token; they ignore one, so the run with a token covers them.
PUBLIC_OPERATIONS = "^v1_auth_(register|token|token_refresh|logout)_create$"


@pytest.fixture(autouse=True)
def _no_nagle(monkeypatch):
    # Django's live server sends a response's headers and body in two writes; on a kept-alive
    # connection Nagle's algorithm holds the body until the client's delayed ACK, about 40 ms
    # per request. TCP_NODELAY (socketserver's disable_nagle_algorithm) makes the run ~10x faster.
    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)


# RFC 5737's documentation address: what names under the reserved `.example` TLD resolve to here.
EXAMPLE_ADDRESS = "192.0.2.1"


@pytest.fixture
def _example_hosts_resolve(monkeypatch):
    # This machine has no DNS, so every webhook URL schemathesis sends would be 422
    # `webhook_url_unresolvable` and no endpoint would exist for the links from a created one
    # (GET, PATCH, rotate-secret, deliveries, DELETE) to follow. Names under `.example` (the
    # schema's examples, schemathesis.toml's `webhook-urls`) resolve to a documentation address
    # taken as public; every other name resolves, or fails, as it does in production.
    # No delivery runs (no worker), and `post` fails the run if one ever tried to connect.
    resolve, is_public = network._resolve, network._is_public

    def example_resolve(host: str, port: int) -> list[str]:
        return [EXAMPLE_ADDRESS] if host.rstrip(".").endswith(".example") else resolve(host, port)

    def never_post(*args, **kwargs):
        raise AssertionError("the contract run must not deliver webhooks")

    monkeypatch.setattr(network, "_resolve", example_resolve)
    monkeypatch.setattr(
        network, "_is_public", lambda address: address == EXAMPLE_ADDRESS or is_public(address)
    )
    monkeypatch.setattr(network, "post", never_post)


def schemathesis_run(live_server, *args: str, token: str = "") -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "WALLET_API_TOKEN"}
    if token:
        env["WALLET_API_TOKEN"] = token
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--no-color",
            "--config-file",
            str(BASE_DIR / "schemathesis.toml"),
            "run",
            f"{live_server.url}/api/schema/?format=json",
            *args,
        ],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(result.stdout, result.stderr)  # the run's report, shown by `pytest -rP` or on failure
    return result


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_example_hosts_resolve")
def test_api_with_a_token(live_server, make_user):
    token = RefreshToken.for_user(make_user()).access_token

    result = schemathesis_run(live_server, token=str(token))

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db(transaction=True)
def test_api_without_a_token(live_server):
    # No stateful phase: without a token no operation answers anything a link could follow.
    # Fewer fuzzed requests per operation than with a token: authentication is the first
    # thing every one of these operations does (the body and the parameters are read
    # after it), so past the examples and the coverage phase's boundary values more
    # random inputs only ask the same question again. This run was 40 % of the contract
    # test's time for that.
    result = schemathesis_run(
        live_server,
        "--exclude-operation-id-regex",
        PUBLIC_OPERATIONS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "25",
    )

    assert result.returncode == 0, result.stdout + result.stderr
