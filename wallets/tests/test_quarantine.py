"""Quarantine: reconciliation's findings put wallets under review, operators release them
(wallets.services.wallets_mark_reconciled and wallet_release), and limits are set by
operators (wallet_set_limits). Called directly; the races use real threads and commits."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from testing.threads import Threads, held_in_transaction, lock_waiters, wait_until
from wallets.errors import (
    InvalidLimit,
    ReviewStatusReserved,
    WalletError,
    WalletNotFound,
    WalletNotUnderReview,
    WalletStillInconsistent,
)
from wallets.models import Wallet
from wallets.services import (
    adjustment_wallet_id,
    system_wallet_id,
    wallet_release,
    wallet_set_limits,
    wallet_set_status,
    wallets_mark_reconciled,
)

pytestmark = pytest.mark.django_db

UNDER_REVIEW = Wallet.Status.UNDER_REVIEW


def events(action: str, wallet_id: uuid.UUID | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.filter(action=action)
    if wallet_id is not None:
        found = found.filter(target_type="wallet", target_id=str(wallet_id))
    return list(found.order_by("id"))


def statuses(*wallets: Wallet) -> list[str]:
    return [Wallet.objects.get(pk=w.pk).status for w in wallets]


def mark(*wallets: Wallet, inconsistent: tuple[Wallet, ...] = (), **kwargs) -> list[uuid.UUID]:
    return wallets_mark_reconciled(
        checked={w.id for w in wallets},
        inconsistent={w.id for w in inconsistent},
        found_at=kwargs.pop("found_at", timezone.now()),
        **kwargs,
    )


def under_review(wallet: Wallet, *, was: str = "active") -> Wallet:
    """The wallet as reconciliation leaves it: flagged and under review (from `was`)."""
    if was != "active":
        wallet_set_status(wallet_id=wallet.id, status=was, actor_id=None)
    mark(wallet, inconsistent=(wallet,))
    wallet.refresh_from_db()
    assert wallet.status == UNDER_REVIEW
    return wallet


def outcome(call):
    """A job for Threads that returns the call's result or the WalletError it raised."""

    def job():
        try:
            return call()
        except WalletError as error:
            return error

    return job


def found_consistent(wallet: Wallet) -> None:
    mark(wallet)  # a later run checked it clean: the flag clears, the status stays


# --- going under review -------------------------------------------------------------------------


def test_only_active_and_frozen_user_wallets_go_under_review(make_user, make_wallet):
    owner = make_user()
    active, frozen, closed, clean = (make_wallet(owner) for _ in range(4))
    wallet_set_status(wallet_id=frozen.id, status="frozen", actor_id=None)
    wallet_set_status(wallet_id=closed.id, status="closed", actor_id=None)
    system = Wallet.objects.get(pk=system_wallet_id(currency="USD"))
    adjustment = Wallet.objects.get(pk=adjustment_wallet_id(currency="USD"))
    everything = (active, frozen, closed, clean, system, adjustment)

    put = mark(*everything, inconsistent=(active, frozen, closed, system, adjustment))

    assert sorted(put) == sorted([active.id, frozen.id])
    assert statuses(*everything) == ["under_review", "under_review", "closed", "active", "active", "active"]
    # Every one of them is flagged all the same; only the clean one is not.
    flagged = set(Wallet.objects.filter(inconsistent_since__isnull=False).values_list("id", flat=True))
    assert flagged == {active.id, frozen.id, closed.id, system.id, adjustment.id}


def test_going_under_review_is_audited_as_the_system_with_the_old_status_and_the_findings(
    make_user, make_wallet
):
    owner = make_user()
    active, frozen = make_wallet(owner), make_wallet(owner)
    wallet_set_status(wallet_id=frozen.id, status="frozen", actor_id=None)
    found_at = timezone.now() - timedelta(minutes=3)

    mark(
        active,
        frozen,
        inconsistent=(active, frozen),
        found_at=found_at,
        findings={active.id: ["held_mismatch", "balance_mismatch", "held_mismatch"]},
        run_id=42,
    )

    (on_active,) = events(AuditEvent.Action.WALLET_UNDER_REVIEW, active.id)
    assert (on_active.actor_id, on_active.currency, on_active.target_type) == (None, "USD", "wallet")
    assert on_active.details == {
        "status": {"old": "active", "new": "under_review"},
        "inconsistent_since": found_at.isoformat(),
        "discrepancies": ["balance_mismatch", "held_mismatch"],
        "reconciliation_run": 42,
    }
    (on_frozen,) = events(AuditEvent.Action.WALLET_UNDER_REVIEW, frozen.id)
    assert on_frozen.details["status"] == {"old": "frozen", "new": "under_review"}


def test_a_wallet_found_again_and_again_is_put_under_review_once(make_user, make_wallet):
    wallet = under_review(make_wallet(make_user()))

    assert mark(wallet, inconsistent=(wallet,)) == []
    assert mark(wallet, inconsistent=(wallet,)) == []

    assert len(events(AuditEvent.Action.WALLET_UNDER_REVIEW, wallet.id)) == 1


def test_a_clean_run_clears_the_flag_but_never_releases(make_user, make_wallet):
    wallet = under_review(make_wallet(make_user()))

    found_consistent(wallet)

    wallet.refresh_from_db()
    assert (wallet.status, wallet.inconsistent_since) == (UNDER_REVIEW, None)
    assert not events(AuditEvent.Action.WALLET_RELEASED)


def test_a_wallet_found_but_not_checked_in_this_batch_is_left_alone(make_user, make_wallet):
    owner = make_user()
    checked, elsewhere = make_wallet(owner), make_wallet(owner)

    mark(checked, inconsistent=(elsewhere,))

    assert statuses(checked, elsewhere) == ["active", "active"]


# --- release -------------------------------------------------------------------------------------


def test_release_is_refused_while_reconciliation_still_finds_the_wallet_inconsistent(make_user, make_wallet):
    operator = make_user()
    wallet = under_review(make_wallet(make_user()))

    with pytest.raises(WalletStillInconsistent) as refused:
        wallet_release(wallet_id=wallet.id, actor_id=operator.id)

    assert refused.value.code == "wallet_still_inconsistent"
    assert f"reconcile --wallet {wallet.id}" in refused.value.detail
    assert statuses(wallet) == ["under_review"]
    assert not events(AuditEvent.Action.WALLET_RELEASED)


def test_release_once_consistent_restores_active_and_is_audited_naming_the_operator(make_user, make_wallet):
    operator = make_user()
    wallet = under_review(make_wallet(make_user()))
    found_consistent(wallet)

    released = wallet_release(wallet_id=wallet.id, actor_id=operator.id)

    assert released.status == Wallet.Status.ACTIVE
    (event,) = events(AuditEvent.Action.WALLET_RELEASED, wallet.id)
    assert (event.actor_id, event.currency) == (operator.id, "USD")
    assert event.details == {"status": {"old": "under_review", "new": "active"}}


def test_release_gives_a_frozen_wallet_back_frozen(make_user, make_wallet):
    operator = make_user()
    wallet = under_review(make_wallet(make_user()), was="frozen")
    found_consistent(wallet)

    released = wallet_release(wallet_id=wallet.id, actor_id=operator.id)

    assert released.status == Wallet.Status.FROZEN
    (event,) = events(AuditEvent.Action.WALLET_RELEASED, wallet.id)
    assert event.details == {"status": {"old": "under_review", "new": "frozen"}}


def test_release_after_a_second_review_uses_the_latest_one(make_user, make_wallet):
    operator = make_user()
    wallet = under_review(make_wallet(make_user()), was="frozen")
    found_consistent(wallet)
    wallet_release(wallet_id=wallet.id, actor_id=operator.id)  # back to frozen
    wallet_set_status(wallet_id=wallet.id, status="active", actor_id=operator.id)
    under_review(wallet)  # this time from active
    found_consistent(wallet)

    assert wallet_release(wallet_id=wallet.id, actor_id=operator.id).status == Wallet.Status.ACTIVE


@pytest.mark.parametrize("status", ["active", "frozen", "closed"])
def test_release_refuses_a_wallet_that_is_not_under_review(make_user, make_wallet, status):
    wallet = make_wallet(make_user())
    if status != "active":
        wallet_set_status(wallet_id=wallet.id, status=status, actor_id=None)

    with pytest.raises(WalletNotUnderReview) as refused:
        wallet_release(wallet_id=wallet.id, actor_id=None)

    assert refused.value.extra["wallet_status"] == status
    assert statuses(wallet) == [status]
    assert not events(AuditEvent.Action.WALLET_RELEASED)


def test_release_refuses_a_missing_wallet():
    with pytest.raises(WalletNotFound):
        wallet_release(wallet_id=uuid.uuid4(), actor_id=None)


# --- wallet_set_status leaves review to reconciliation and release --------------------------------


def test_set_status_neither_puts_under_review_nor_takes_out_of_it(make_user, make_wallet):
    owner = make_user()
    wallet = make_wallet(owner, name="main")

    with pytest.raises(ReviewStatusReserved):
        wallet_set_status(wallet_id=wallet.id, status="under_review", actor_id=None)
    assert statuses(wallet) == ["active"]

    under_review(wallet)
    found_consistent(wallet)  # even once consistent: a release is the way out
    for status in ("active", "frozen", "closed"):
        with pytest.raises(ReviewStatusReserved):
            wallet_set_status(wallet_id=wallet.id, status=status, actor_id=None)
    assert statuses(wallet) == ["under_review"]

    # Renaming, or saving the same status, is fine.
    renamed = wallet_set_status(wallet_id=wallet.id, status="under_review", name="checked", actor_id=None)
    assert (renamed.status, renamed.name) == ("under_review", "checked")
    assert wallet_set_status(wallet_id=wallet.id, name="again", actor_id=None).name == "again"
    updates = events(AuditEvent.Action.WALLET_UPDATED, wallet.id)
    assert [e.details for e in updates] == [
        {"name": {"old": "main", "new": "checked"}},
        {"name": {"old": "checked", "new": "again"}},
    ]


# --- limits --------------------------------------------------------------------------------------


def test_set_limits_records_each_old_and_new_value_and_only_what_changed(make_user, make_wallet):
    operator = make_user()
    wallet = make_wallet(make_user())

    first = wallet_set_limits(
        wallet_id=wallet.id, max_outgoing_amount=5_000, max_outgoing_per_day=20_000, actor_id=operator.id
    )
    same = wallet_set_limits(
        wallet_id=wallet.id, max_outgoing_amount=5_000, max_outgoing_per_day=20_000, actor_id=operator.id
    )
    lifted = wallet_set_limits(
        wallet_id=wallet.id, max_outgoing_amount=None, max_outgoing_per_day=20_000, actor_id=None
    )

    assert (first.max_outgoing_amount, first.max_outgoing_per_day) == (5_000, 20_000)
    assert (same.max_outgoing_amount, lifted.max_outgoing_amount, lifted.max_outgoing_per_day) == (
        5_000,
        None,
        20_000,
    )
    updates = events(AuditEvent.Action.WALLET_UPDATED, wallet.id)
    assert [(e.actor_id, e.details) for e in updates] == [
        (
            operator.id,
            {
                "max_outgoing_amount": {"old": None, "new": 5_000},
                "max_outgoing_per_day": {"old": None, "new": 20_000},
            },
        ),
        (None, {"max_outgoing_amount": {"old": 5_000, "new": None}}),
    ]


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "100"])
@pytest.mark.parametrize("field", ["max_outgoing_amount", "max_outgoing_per_day"])
def test_set_limits_refuses_anything_but_a_positive_integer_or_none(make_user, make_wallet, field, value):
    wallet = make_wallet(make_user())
    limits = {"max_outgoing_amount": None, "max_outgoing_per_day": None, field: value}

    with pytest.raises(InvalidLimit) as refused:
        wallet_set_limits(wallet_id=wallet.id, actor_id=None, **limits)

    assert refused.value.extra["field"] == field
    stored = Wallet.objects.get(pk=wallet.id)
    assert (stored.max_outgoing_amount, stored.max_outgoing_per_day) == (None, None)
    assert not events(AuditEvent.Action.WALLET_UPDATED, wallet.id)


def test_set_limits_refuses_a_system_wallet_and_a_missing_one(make_user, make_wallet):
    make_wallet(make_user(), balance=10)
    system = system_wallet_id(currency="USD")

    with pytest.raises(InvalidLimit):
        wallet_set_limits(wallet_id=system, max_outgoing_amount=10, max_outgoing_per_day=None, actor_id=None)
    with pytest.raises(WalletNotFound):
        wallet_set_limits(
            wallet_id=uuid.uuid4(), max_outgoing_amount=10, max_outgoing_per_day=None, actor_id=None
        )
    # No limits asked of a system wallet: nothing to refuse, nothing written.
    wallet_set_limits(wallet_id=system, max_outgoing_amount=None, max_outgoing_per_day=None, actor_id=None)
    assert not AuditEvent.objects.filter(
        action=AuditEvent.Action.WALLET_UPDATED, target_id=str(system)
    ).exists()


# --- races ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_release_waits_for_a_finding_in_flight_and_then_refuses(make_user, make_wallet):
    operator = make_user()
    wallet = under_review(make_wallet(make_user()))
    found_consistent(wallet)

    # A run finds the wallet inconsistent again and has not committed yet.
    with held_in_transaction(lambda: mark(wallet, inconsistent=(wallet,))):
        release = Threads(
            [outcome(lambda: wallet_release(wallet_id=wallet.id, actor_id=operator.id))]
        ).start()
        wait_until(lambda: lock_waiters() >= 1 or release.finished, "the release waits for the row")
        assert not release.finished
    (refused,) = release.join()

    assert isinstance(refused, WalletStillInconsistent)

    assert statuses(wallet) == ["under_review"]
    assert not events(AuditEvent.Action.WALLET_RELEASED)


@pytest.mark.django_db(transaction=True)
def test_a_finding_that_waits_for_a_release_puts_the_wallet_back_under_review(make_user, make_wallet):
    operator = make_user()
    wallet = under_review(make_wallet(make_user()))
    found_consistent(wallet)

    with held_in_transaction(lambda: wallet_release(wallet_id=wallet.id, actor_id=operator.id)):
        finding = Threads([lambda: mark(wallet, inconsistent=(wallet,))]).start()
        wait_until(lambda: lock_waiters() >= 1 or finding.finished, "the finding waits for the row")
        assert not finding.finished
    (put,) = finding.join()

    assert put == [wallet.id]  # it read the released status, not the one from before the lock
    assert statuses(wallet) == ["under_review"]
    actions = [e.action for e in AuditEvent.objects.filter(target_id=str(wallet.id)).order_by("id")]
    assert actions[-2:] == [AuditEvent.Action.WALLET_RELEASED, AuditEvent.Action.WALLET_UNDER_REVIEW]


@pytest.mark.django_db(transaction=True)
def test_two_operators_setting_limits_at_once_each_record_what_they_replaced(make_user, make_wallet):
    first, second = make_user(), make_user()
    wallet = make_wallet(make_user())

    def set_by(operator, amount):
        return lambda: wallet_set_limits(
            wallet_id=wallet.id, max_outgoing_amount=amount, max_outgoing_per_day=None, actor_id=operator.id
        )

    with held_in_transaction(set_by(first, 100)):
        later = Threads([set_by(second, 200)]).start()
        wait_until(lambda: lock_waiters() >= 1 or later.finished, "the second operator waits for the row")
    later.join()

    updates = events(AuditEvent.Action.WALLET_UPDATED, wallet.id)
    assert [(e.actor_id, e.details["max_outgoing_amount"]) for e in updates] == [
        (first.id, {"old": None, "new": 100}),
        (second.id, {"old": 100, "new": 200}),
    ]
    assert Wallet.objects.get(pk=wallet.id).max_outgoing_amount == 200
