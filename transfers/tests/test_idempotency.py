"""The Idempotency-Key executor (transfers.idempotency.execute_idempotent), driven directly.

No HTTP: each test builds an IdempotentRequest and a Movement and calls the executor,
sometimes with the ledger made to fail in a controlled way (a real PostgreSQL error
raised on the real connection, a backend killed, a row held locked by another
transaction). The API's use of it is tested in test_transfer_api.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY

from audit.models import AuditEvent
from testing.database import kill_current_backend
from testing.threads import held_in_transaction, run_concurrently
from transfers import services
from transfers.errors import IdempotencyKeyInUse, IdempotencyKeyReused, ServiceBusy
from transfers.idempotency import IdempotentRequest, StoredResponse, execute_idempotent, request_hash
from transfers.models import IdempotencyRecord, Transfer
from transfers.services import Movement
from transfers.tests.movements import balance, deposit, ledger_rows, transfer, withdrawal
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

TRANSFERS = "/api/v1/transfers"


def request(
    movement: Movement, key: str | None = None, path: str = TRANSFERS, **body: Any
) -> IdempotentRequest:
    """The request `movement`'s initiator sends: bound to POST `path` and a hash of its body."""
    return IdempotentRequest(
        user_id=movement.initiated_by_id,
        key=key or str(uuid.uuid4()),
        method="POST",
        path=path,
        request_hash=request_hash({"amount": movement.amount, **body}),
    )


def fresh(movement: Movement) -> tuple[IdempotentRequest, Movement]:
    return request(movement), movement


def record(req: IdempotentRequest) -> IdempotencyRecord:
    return IdempotencyRecord.objects.get(user_id=req.user_id, key=req.key)


def money_failed() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.MONEY_FAILED).order_by("id"))


def idempotency_events(outcome: str) -> float:
    return REGISTRY.get_sample_value("wallet_idempotency_events_total", {"outcome": outcome}) or 0.0


def failing_first(monkeypatch, times: int, fail: Callable[[], None]) -> list[int]:
    """Make movement_prepare call `fail` (which raises, or breaks the connection) on its first
    `times` calls; returns the call log."""
    original, calls = services.movement_prepare, []

    def prepare(movement: Movement) -> services.PreparedMovement:
        calls.append(len(calls) + 1)
        if len(calls) <= times:
            fail()
        return original(movement)

    monkeypatch.setattr(services, "movement_prepare", prepare)
    return calls


def raise_sqlstate(condition: str) -> None:
    """PostgreSQL raises the error `condition` names, on this connection, as it would for real."""
    with connection.cursor() as cursor:
        cursor.execute(f"DO $$ BEGIN RAISE EXCEPTION '{condition}' USING ERRCODE = '{condition}'; END $$")


# --- a fresh request --------------------------------------------------------------------------


def test_a_fresh_request_moves_the_money_and_stores_its_201_body(accounts):
    movement = transfer(accounts.a, accounts.b, 250, reference="inv-9")
    req = request(movement)

    result = execute_idempotent(req, movement)

    made = Transfer.objects.get(reference="inv-9")
    assert (result.status, result.replayed) == (201, False)
    body = json.loads(result.body)
    assert (body["id"], body["amount"], body["source_wallet_id"]) == (str(made.id), 250, str(accounts.a.id))
    stored = record(req)
    assert (stored.status_code, bytes(stored.response_body), stored.transfer_id) == (
        201,
        result.body,
        made.id,
    )
    assert (stored.method, stored.path, stored.request_hash) == ("POST", TRANSFERS, req.request_hash)
    assert (balance(accounts.a), balance(accounts.b)) == (750, 750)


def test_a_deposits_body_carries_the_wallet_after_the_movement(accounts):
    movement = deposit(accounts.a, 40)

    result = execute_idempotent(request(movement, path=f"/api/v1/wallets/{accounts.a.id}/deposits"), movement)

    body = json.loads(result.body)
    assert (body["transfer"]["kind"], body["wallet"]["id"], body["wallet"]["balance"]) == (
        "deposit",
        str(accounts.a.id),
        1040,
    )


def test_the_record_is_written_by_the_movements_own_statement(accounts):
    movement = withdrawal(accounts.a, 10)

    with CaptureQueriesContext(connection) as captured:
        execute_idempotent(request(movement), movement)

    (write,) = [q["sql"] for q in captured if "INSERT" in q["sql"]]
    assert "INSERT INTO transfers_transfer" in write
    assert "INSERT INTO transfers_idempotencyrecord" in write
    # No look-up of the key first: a fresh request pays nothing for idempotency.
    assert not [q for q in captured if "FROM transfers_idempotencyrecord" in q["sql"].replace('"', "")]


@pytest.mark.django_db(transaction=True)
def test_the_record_commits_with_the_movement_or_not_at_all(accounts, monkeypatch):
    original = services.PreparedMovement.write

    def write_then_fail(prepared, **kwargs):
        original(prepared, **kwargs)  # the movement and its record, in the open transaction
        raise RuntimeError("the process dies before COMMIT")

    monkeypatch.setattr(services.PreparedMovement, "write", write_then_fail)
    movement = withdrawal(accounts.a, 10)
    req = request(movement)
    before = ledger_rows()

    with pytest.raises(RuntimeError, match="before COMMIT"):
        execute_idempotent(req, movement)

    assert ledger_rows() == before
    monkeypatch.setattr(services.PreparedMovement, "write", original)
    assert execute_idempotent(req, movement).replayed is False  # the key was never used


# --- a repeat -----------------------------------------------------------------------------------


def test_a_repeat_replays_the_stored_bytes_and_moves_nothing(accounts):
    movement = transfer(accounts.a, accounts.b, 100)
    req = request(movement)
    first = execute_idempotent(req, movement)
    after_first, replays = ledger_rows(), idempotency_events("replayed")

    second = execute_idempotent(req, movement)

    assert second == StoredResponse(status=201, body=first.body, replayed=True)
    assert ledger_rows() == after_first
    assert idempotency_events("replayed") == replays + 1


def test_a_repeat_replays_the_first_answer_even_when_it_would_now_be_refused(accounts):
    movement = withdrawal(accounts.a, 1000)
    req = request(movement)
    first = execute_idempotent(req, movement)
    Wallet.objects.filter(pk=accounts.a.pk).update(status=Wallet.Status.FROZEN)  # and its money is gone
    state = ledger_rows()

    second = execute_idempotent(req, movement)

    assert (second.status, second.body, second.replayed) == (201, first.body, True)
    assert ledger_rows() == state  # no money_failed event either


@pytest.mark.parametrize(
    "change", [{"amount": 101}, {"path": "/api/v1/wallets/x/deposits"}], ids=["other-body", "other-path"]
)
def test_the_same_key_for_another_request_is_refused_and_audited(accounts, change):
    movement = withdrawal(accounts.a, 100)
    first = request(movement, key="once")
    execute_idempotent(first, movement)
    after_first, reused = ledger_rows(), idempotency_events("reused")
    other = withdrawal(accounts.a, change.get("amount", 100))
    req = request(other, key="once", path=change.get("path", TRANSFERS))
    assert req.request_hash != first.request_hash or req.path != first.path

    with pytest.raises(IdempotencyKeyReused):
        execute_idempotent(req, other)

    balances, counts = ledger_rows()
    assert balances == after_first[0]
    assert counts["Transfer"] == after_first[1]["Transfer"]
    assert counts["IdempotencyRecord"] == after_first[1]["IdempotencyRecord"]
    (event,) = money_failed()
    assert (event.outcome, event.actor_id, event.target_id) == (
        "idempotency_key_reused",
        accounts.alice.id,
        str(accounts.a.id),
    )
    assert (event.amount, event.currency) == (other.amount, "")  # refused before any wallet was read
    assert event.details["kind"] == "withdrawal"
    assert idempotency_events("reused") == reused + 1


def test_keys_are_scoped_to_the_user(accounts):
    alices, bobs = deposit(accounts.a, 10), deposit(accounts.b, 10)

    first = execute_idempotent(request(alices, key="shared"), alices)
    second = execute_idempotent(request(bobs, key="shared"), bobs)

    assert (first.replayed, second.replayed) == (False, False)
    assert (balance(accounts.a), balance(accounts.b)) == (1010, 510)


@pytest.mark.django_db(transaction=True)
def test_a_record_that_vanished_after_the_conflict_is_in_use(accounts, monkeypatch):
    """The unique index said the key is taken, but the record is gone by the time it is read."""
    movement = withdrawal(accounts.a, 10)
    req = request(movement)
    execute_idempotent(req, movement)
    original = services.PreparedMovement.write

    def write_then_lose_the_record(prepared, **kwargs):
        try:
            return original(prepared, **kwargs)
        except IntegrityError:
            # Another connection deletes the record (a cleanup run) and commits.
            run_concurrently([lambda: IdempotencyRecord.objects.filter(key=req.key).delete()])
            raise

    monkeypatch.setattr(services.PreparedMovement, "write", write_then_lose_the_record)
    in_use, before = idempotency_events("in_use"), ledger_rows()

    with pytest.raises(IdempotencyKeyInUse):
        execute_idempotent(req, movement)

    balances, counts = ledger_rows()
    assert (balances, counts["Transfer"]) == (before[0], before[1]["Transfer"])
    assert idempotency_events("in_use") == in_use + 1


# --- refusals -------------------------------------------------------------------------------------


def test_a_business_refusal_is_stored_audited_and_replayed(accounts):
    movement = withdrawal(accounts.eur, 301)
    req = request(movement)

    first = execute_idempotent(req, movement)

    assert (first.status, first.replayed) == (422, False)
    problem = json.loads(first.body)
    assert (problem["status"], problem["code"], problem["wallet_id"]) == (
        422,
        "insufficient_funds",
        str(accounts.eur.id),
    )
    stored = record(req)
    assert (stored.status_code, bytes(stored.response_body), stored.transfer_id) == (422, first.body, None)
    (event,) = money_failed()
    assert (event.outcome, event.amount, event.currency, event.target_id) == (
        "insufficient_funds",
        301,
        "EUR",
        str(accounts.eur.id),
    )
    assert event.details["source_wallet_id"] == str(accounts.eur.id)

    # Funded since, the same request still gets its first answer; a new key is a new request.
    execute_idempotent(*fresh(deposit(accounts.eur, 5_000)))
    funded = ledger_rows()
    again = execute_idempotent(req, movement)
    assert (again.status, again.body, again.replayed) == (422, first.body, True)
    assert ledger_rows() == funded
    assert execute_idempotent(*fresh(movement)).status == 201


def test_a_validation_error_is_not_stored(accounts):
    bad = withdrawal(accounts.a, 0)
    req = request(bad, key="retry-me")

    with pytest.raises(ValueError, match="amount must be an int"):
        execute_idempotent(req, bad)

    assert not IdempotencyRecord.objects.filter(key="retry-me").exists()
    good = withdrawal(accounts.a, 1)
    retried = execute_idempotent(request(good, key="retry-me"), good)
    assert (retried.status, retried.replayed) == (201, False)


def test_a_reference_taken_after_the_check_is_stored_as_a_duplicate(accounts, monkeypatch):
    """The check before the lock passed; the unique constraint on the write caught the race."""
    original = execute_idempotent(*fresh(withdrawal(accounts.a, 5, reference="inv-1")))
    monkeypatch.setattr(services, "_check_reference_free", lambda movement: None)
    movement = withdrawal(accounts.a, 7, reference="inv-1")
    req = request(movement)
    before = ledger_rows()

    result = execute_idempotent(req, movement)

    assert (result.status, result.replayed) == (409, False)
    problem = json.loads(result.body)
    assert (problem["code"], problem["original_transfer_id"]) == (
        "duplicate_reference",
        json.loads(original.body)["transfer"]["id"],
    )
    assert record(req).status_code == 409
    balances, counts = ledger_rows()
    assert (balances, counts["Transfer"]) == (before[0], before[1]["Transfer"])
    assert money_failed()[-1].outcome == "duplicate_reference"


# --- database failures -------------------------------------------------------------------------


@pytest.mark.parametrize("condition", ["deadlock_detected", "serialization_failure"])
def test_a_deadlock_or_serialization_failure_is_retried(accounts, monkeypatch, settings, condition):
    settings.MONEY_TX_RETRIES = 2
    calls = failing_first(monkeypatch, 2, partial(raise_sqlstate, condition))
    movement = withdrawal(accounts.a, 100)

    result = execute_idempotent(request(movement), movement)

    assert (result.status, result.replayed) == (201, False)
    assert calls == [1, 2, 3]
    assert balance(accounts.a) == 900
    assert Transfer.objects.filter(kind="withdrawal").count() == 1


@pytest.mark.parametrize("condition", ["deadlock_detected", "serialization_failure"])
def test_retries_stop_after_money_tx_retries(accounts, monkeypatch, settings, condition):
    settings.MONEY_TX_RETRIES = 2
    calls = failing_first(monkeypatch, 99, partial(raise_sqlstate, condition))
    movement = withdrawal(accounts.a, 100)
    req = request(movement)
    before = ledger_rows()

    with pytest.raises(OperationalError, match=condition):
        execute_idempotent(req, movement)

    assert calls == [1, 2, 3]  # the first attempt and MONEY_TX_RETRIES more
    assert ledger_rows() == before


def test_another_database_error_is_not_retried(accounts, monkeypatch):
    calls = failing_first(monkeypatch, 99, partial(raise_sqlstate, "disk_full"))
    movement = withdrawal(accounts.a, 100)

    with pytest.raises(OperationalError, match="disk_full"):
        execute_idempotent(request(movement), movement)

    assert calls == [1]


def test_a_cancelled_statement_is_tried_again_like_a_lock_timeout(accounts, monkeypatch):
    # PostgreSQL reports a lock timeout that fires as the lock is granted as a plain cancel
    # ("canceling statement due to user request"); nothing was written, so try again.
    calls = failing_first(monkeypatch, 2, partial(raise_sqlstate, "query_canceled"))
    movement = withdrawal(accounts.a, 100)

    result = execute_idempotent(request(movement), movement)

    assert (result.status, calls) == (201, [1, 2, 3])
    assert balance(accounts.a) == 900


@pytest.mark.django_db(transaction=True)
@override_settings(DB_LOCK_ATTEMPT_MS=100, DB_LOCK_TIMEOUT_MS=600)
def test_a_lock_not_got_in_time_is_service_busy_after_several_attempts_and_nothing_is_stored(
    accounts, monkeypatch
):
    calls = failing_first(monkeypatch, 0, lambda: None)
    movement = withdrawal(accounts.a, 100)
    req = request(movement)
    before = ledger_rows()
    lock_wallet = partial(Wallet.objects.select_for_update(no_key=True).get, pk=accounts.a.pk)

    started = time.monotonic()
    with held_in_transaction(lock_wallet), pytest.raises(ServiceBusy) as busy:
        execute_idempotent(req, movement)
    waited = time.monotonic() - started

    assert (busy.value.status, busy.value.retry_after) == (503, 1)
    assert len(calls) >= 3  # attempts of 100 ms, with pauses, within the 600 ms
    assert 0.5 <= waited < 3.0
    assert ledger_rows() == before
    # Once the wallet is free, the same key moves the money.
    assert execute_idempotent(req, movement).replayed is False
    assert balance(accounts.a) == 900


@pytest.mark.django_db(transaction=True)
@override_settings(DB_LOCK_ATTEMPT_MS=100, DB_LOCK_TIMEOUT_MS=5000)
def test_a_lock_released_within_the_budget_is_waited_for_in_attempts(accounts, monkeypatch):
    calls = failing_first(monkeypatch, 0, lambda: None)
    movement = withdrawal(accounts.a, 100)
    locked = threading.Event()

    def hold_for_400_ms() -> None:
        try:
            with transaction.atomic():
                Wallet.objects.select_for_update(no_key=True).get(pk=accounts.a.pk)
                locked.set()
                time.sleep(0.4)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_for_400_ms)
    holder.start()
    assert locked.wait(timeout=10)
    result = execute_idempotent(request(movement), movement)
    holder.join(timeout=10)

    assert result.status == 201
    assert len(calls) >= 2  # the first attempts gave up after 100 ms and let go
    assert balance(accounts.a) == 900


# --- a lost connection ------------------------------------------------------------------------


def dying_before_commit(monkeypatch) -> list[int]:
    """Make the first write's COMMIT never reach the server; returns the write log."""
    original, calls = services.PreparedMovement.write, []

    def write(prepared, **kwargs):
        written = original(prepared, **kwargs)  # the movement and its record, not yet committed
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            kill_current_backend()
        return written

    monkeypatch.setattr(services.PreparedMovement, "write", write)
    return calls


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["before-the-movement", "before-the-commit"])
def test_a_lost_connection_reconnects_and_moves_the_money_exactly_once(
    accounts, monkeypatch, settings, where
):
    settings.DB_RECONNECT_BACKOFF_SECONDS = 0
    if where == "before-the-movement":
        calls = failing_first(monkeypatch, 1, kill_current_backend)
    else:
        calls = dying_before_commit(monkeypatch)
    movement = withdrawal(accounts.a, 250)
    req = request(movement)

    result = execute_idempotent(req, movement)

    assert (result.status, result.replayed) == (201, False)
    assert calls == [1, 2]  # the transaction ran again on a fresh connection
    assert balance(accounts.a) == 750
    made = Transfer.objects.get(kind="withdrawal")
    assert record(req).transfer_id == made.id


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_keeps_dying_gives_up_after_db_reconnect_attempts(accounts, monkeypatch, settings):
    settings.DB_RECONNECT_ATTEMPTS = 2
    settings.DB_RECONNECT_BACKOFF_SECONDS = 0
    calls = failing_first(monkeypatch, 99, kill_current_backend)
    movement = withdrawal(accounts.a, 250)

    with pytest.raises((OperationalError, InterfaceError)):
        execute_idempotent(request(movement), movement)

    assert calls == [1, 2, 3]  # the first attempt and DB_RECONNECT_ATTEMPTS reconnects
    assert balance(accounts.a) == 1000


# --- concurrent duplicates ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["transfer", "withdrawal"])
def test_concurrent_duplicates_move_the_money_exactly_once(accounts, kind):
    movement = transfer(accounts.a, accounts.b, 100) if kind == "transfer" else withdrawal(accounts.a, 100)
    req = request(movement)

    def send() -> StoredResponse | str:
        try:
            return execute_idempotent(req, movement)
        except IdempotencyKeyInUse:
            return "in_use"

    results = run_concurrently([send] * 12)

    answers = [r for r in results if r != "in_use"]
    originals = [r for r in answers if not r.replayed]
    assert len(originals) == 1, results
    (original,) = originals
    assert original.status == 201
    assert all(r.body == original.body and r.status == 201 for r in answers)
    made = Transfer.objects.get(kind=kind)
    assert bytes(record(req).response_body) == original.body
    assert record(req).transfer_id == made.id
    assert balance(accounts.a) == 900
