"""Run by test_sqlite_embedded in a subprocess: the `make run` default on SQLite.

Migrates a fresh SQLite file, then registers, logs in, opens wallets, deposits,
transfers (including from several threads at once) and reads history through
the real HTTP stack. Exits non-zero on the first surprise.
"""

import json
import os
import sys
import threading
import uuid

os.environ["DJANGO_SETTINGS_MODULE"] = "wallet_project.settings.local"

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

assert connection.vendor == "sqlite", connection.vendor
assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
call_command("migrate", verbosity=0, interactive=False)


def post(client, path, body, token=None, key=True):
    headers = {}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if key:
        headers["HTTP_IDEMPOTENCY_KEY"] = str(uuid.uuid4())
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def check(response, status):
    if response.status_code != status:
        sys.exit(f"expected {status}, got {response.status_code}: {response.content!r}")
    return response.json() if response.content else None


client = Client()
tokens = {}
for name in ("alice", "bob"):
    check(
        post(
            client,
            "/api/v1/auth/register",
            {"username": name, "password": "S3cure-pass-123", "email": f"{name}@example.com"},
            key=False,
        ),
        201,
    )
    tokens[name] = check(
        post(client, "/api/v1/auth/token", {"username": name, "password": "S3cure-pass-123"}, key=False), 200
    )["access"]

alice_wallet = check(post(client, "/api/v1/wallets", {"currency": "USD"}, tokens["alice"], key=False), 201)[
    "id"
]
bob_wallet = check(post(client, "/api/v1/wallets", {"currency": "USD"}, tokens["bob"], key=False), 201)["id"]
check(post(client, f"/api/v1/wallets/{alice_wallet}/deposits", {"amount": 10_000}, tokens["alice"]), 201)

errors = []


def send():
    try:
        response = post(
            Client(),
            "/api/v1/transfers",
            {"source_wallet_id": alice_wallet, "destination_wallet_id": bob_wallet, "amount": 100},
            tokens["alice"],
        )
        if response.status_code != 201:
            errors.append(response.content)
    finally:
        connection.close()


threads = [threading.Thread(target=send) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
if errors:
    sys.exit(f"concurrent transfers failed on SQLite: {errors!r}")

check(post(client, f"/api/v1/wallets/{alice_wallet}/withdrawals", {"amount": 200}, tokens["alice"]), 201)
auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens['alice']}"}
wallet = check(client.get(f"/api/v1/wallets/{alice_wallet}", **auth), 200)
assert wallet["balance"] == 10_000 - 800 - 200, wallet
history = check(client.get(f"/api/v1/wallets/{alice_wallet}/transactions", **auth), 200)["results"]
assert [e["type"] for e in history] == ["withdrawal"] + ["transfer_out"] * 8 + ["deposit"], history
assert history[0]["balance_after"] == 9_000, history[0]

# The append-only rule holds on SQLite too.
with connection.cursor() as cursor:
    try:
        cursor.execute("UPDATE transfers_ledgerentry SET amount = 1")
    except Exception as exc:
        assert "append-only" in str(exc), exc
    else:
        sys.exit("SQLite accepted an UPDATE of a ledger entry")
print("sqlite scenario ok")
