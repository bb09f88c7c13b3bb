"""Writes on wallets that move no money (wallets.services), called directly."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from testing.threads import Threads, held_in_transaction, lock_waiters, wait_until
from wallets import services
from wallets.errors import UnsupportedCurrency, WalletNotFound
from wallets.models import Wallet
from wallets.services import (
    system_wallet_id,
    wallet_create,
    wallet_set_status,
    wallet_update,
    wallets_mark_reconciled,
)

pytestmark = pytest.mark.django_db


def wallet_events(wallet_id: uuid.UUID) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(target_type="wallet", target_id=str(wallet_id)).order_by("id"))


# --- wallet_create ------------------------------------------------------------------------------


def test_wallet_create_opens_an_empty_active_user_wallet_and_audits_it(make_user):
    owner = make_user()

    wallet = wallet_create(owner_id=owner.id, currency="EUR", name="travel")

    stored = Wallet.objects.get(pk=wallet.pk)
    assert (stored.owner_id, stored.kind, stored.currency, stored.name) == (owner.id, "user", "EUR", "travel")
    assert (stored.balance, stored.status) == (0, "active")
    (event,) = wallet_events(wallet.id)
    assert (event.action, event.actor_id, event.currency, event.details) == (
        AuditEvent.Action.WALLET_CREATED,
        owner.id,
        "EUR",
        {"name": "travel"},
    )


@pytest.mark.parametrize("currency", ["XXX", "usd", "EURO"])
def test_wallet_create_refuses_an_unsupported_currency_and_writes_nothing(make_user, currency):
    owner = make_user()

    with pytest.raises(UnsupportedCurrency):
        wallet_create(owner_id=owner.id, currency=currency)

    assert not Wallet.objects.filter(owner=owner).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_CREATED).exists()


# --- wallet_update ------------------------------------------------------------------------------


def test_wallet_update_renames_and_audits(make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, balance=300, name="old")

    renamed = wallet_update(wallet_id=wallet.id, owner_id=owner.id, name="new")

    assert (renamed.name, renamed.balance) == ("new", 300)
    assert Wallet.objects.get(pk=wallet.pk).name == "new"
    (event,) = [e for e in wallet_events(wallet.id) if e.action == AuditEvent.Action.WALLET_UPDATED]
    assert (event.actor_id, event.details) == (owner.id, {"name": "new"})


@pytest.mark.parametrize("whose", ["someone-elses", "system", "missing"])
def test_wallet_update_of_a_wallet_that_is_not_the_callers_is_not_found(make_user, make_wallet, whose):
    owner, other = make_user(), make_user()
    theirs = make_wallet(other, name="theirs", balance=1)
    wallet_id = {
        "someone-elses": theirs.id,
        "system": system_wallet_id(currency="USD"),
        "missing": uuid.uuid4(),
    }[whose]
    names = dict(Wallet.objects.values_list("id", "name"))
    events = AuditEvent.objects.count()

    with pytest.raises(WalletNotFound), transaction.atomic():
        wallet_update(wallet_id=wallet_id, owner_id=owner.id, name="mine now")

    assert dict(Wallet.objects.values_list("id", "name")) == names
    assert AuditEvent.objects.count() == events


# --- wallet_set_status ----------------------------------------------------------------------------


def test_wallet_set_status_names_the_operator_and_each_old_and_new_value(make_user, make_wallet):
    operator, owner = make_user(), make_user()
    wallet = make_wallet(owner, balance=40, name="main")

    frozen = wallet_set_status(wallet_id=wallet.id, status="frozen", actor_id=operator.id, name="held")

    assert (frozen.status, frozen.name, frozen.balance) == ("frozen", "held", 40)
    assert Wallet.objects.get(pk=wallet.pk).status == "frozen"
    (event,) = [e for e in wallet_events(wallet.id) if e.action == AuditEvent.Action.WALLET_UPDATED]
    assert event.actor_id == operator.id
    assert event.details == {
        "status": {"old": "active", "new": "frozen"},
        "name": {"old": "main", "new": "held"},
    }


def test_wallet_set_status_records_only_what_changed(
    make_user, make_wallet, django_capture_on_commit_callbacks
):
    wallet = make_wallet(make_user(), name="main")
    wallet_set_status(wallet_id=wallet.id, status="closed", actor_id=None)
    before = len(wallet_events(wallet.id))

    same = wallet_set_status(wallet_id=wallet.id, status="closed", actor_id=None, name="main")
    renamed = wallet_set_status(wallet_id=wallet.id, status="closed", actor_id=None, name="archive")

    assert (same.status, renamed.name) == ("closed", "archive")
    events = wallet_events(wallet.id)
    assert len(events) == before + 1  # the no-op wrote nothing
    assert events[-1].details == {"name": {"old": "main", "new": "archive"}}
    assert events[-1].actor_id is None  # the system itself


def test_wallet_set_status_refuses_an_unknown_status_and_a_missing_wallet(make_user, make_wallet):
    wallet = make_wallet(make_user())

    with pytest.raises(ValueError, match="unknown wallet status"):
        wallet_set_status(wallet_id=wallet.id, status="deleted", actor_id=None)
    with pytest.raises(WalletNotFound), transaction.atomic():
        wallet_set_status(wallet_id=uuid.uuid4(), status="frozen", actor_id=None)

    assert Wallet.objects.get(pk=wallet.pk).status == "active"


# --- wallets_mark_reconciled --------------------------------------------------------------------


def test_reconciliation_flags_keep_the_first_finding_and_clear_when_consistent(make_user, make_wallet):
    owner = make_user()
    a, b, c = make_wallet(owner), make_wallet(owner), make_wallet(owner)
    first, later = timezone.now() - timedelta(hours=1), timezone.now()

    wallets_mark_reconciled(checked={a.id, b.id}, inconsistent={a.id, c.id}, found_at=first)
    wallets_mark_reconciled(checked={a.id, b.id, c.id}, inconsistent={a.id, b.id}, found_at=later)
    flags = dict(Wallet.objects.filter(owner=owner).values_list("id", "inconsistent_since"))
    assert flags == {a.id: first, b.id: later, c.id: None}  # c was not checked the first time

    wallets_mark_reconciled(checked={a.id}, inconsistent=set(), found_at=later)
    flags = dict(Wallet.objects.filter(owner=owner).values_list("id", "inconsistent_since"))
    assert flags == {a.id: None, b.id: later, c.id: None}


# --- system_wallet_id ---------------------------------------------------------------------------


def test_system_wallet_id_creates_the_wallet_once(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = system_wallet_id(currency="CHF")
    services.clear_system_wallet_cache()  # another process: it finds the row
    again = system_wallet_id(currency="CHF")

    assert again == first
    (system,) = Wallet.objects.filter(currency="CHF")
    assert (system.id, system.kind, system.owner_id, system.name, system.balance) == (
        first,
        "system",
        None,
        "System CHF",
        0,
    )


def test_system_wallet_id_is_cached_only_once_committed(
    django_capture_on_commit_callbacks, django_assert_num_queries
):
    with django_capture_on_commit_callbacks(execute=False):
        created = system_wallet_id(currency="CHF")
    with django_assert_num_queries(1):  # not committed: not cached, looked up again
        assert system_wallet_id(currency="CHF") == created

    with django_capture_on_commit_callbacks(execute=True):
        system_wallet_id(currency="CHF")
    with django_assert_num_queries(0):
        assert system_wallet_id(currency="CHF") == created


@pytest.mark.django_db(transaction=True)
def test_a_system_wallet_created_in_a_rolled_back_transaction_is_forgotten():
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = system_wallet_id(currency="CHF")
        raise RuntimeError("the movement that needed it failed")

    assert not Wallet.objects.filter(pk=rolled_back).exists()
    created = system_wallet_id(currency="CHF")
    assert created != rolled_back
    assert Wallet.objects.get(kind="system", currency="CHF").id == created


@pytest.mark.django_db(transaction=True)
def test_a_first_use_racing_another_waits_for_it_and_returns_its_wallet():
    made: list[Wallet] = []

    def create() -> None:
        made.append(Wallet.objects.create(kind=Wallet.Kind.SYSTEM, owner=None, currency="CHF"))

    # Another first use has inserted the row but not committed: the look-up cannot see it,
    # so the insert waits on the unique index, fails once the other commits, and reads its row.
    with held_in_transaction(create):
        racing = Threads([lambda: system_wallet_id(currency="CHF")]).start()
        wait_until(lambda: lock_waiters() >= 1 or racing.finished, "the racing first use waits")
    (found,) = racing.join()

    assert found == made[0].id
    assert Wallet.objects.filter(kind="system", currency="CHF").count() == 1
