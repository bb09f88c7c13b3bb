"""The hourly totals: a page reads the same figures before and after its hours are added up."""

from __future__ import annotations

import io
from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from dashboard import sections
from dashboard.models import HousePosition, MovementHour, RefusalHour, Rollup
from dashboard.rollup import EPOCH, LOCK_KEY, SETTLE, floor_hour, rollup
from transfers import services as ledger
from transfers.models import Transfer
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def figures(now) -> list:
    window = sections.Window(now=now)
    return [(s.key, s.figures, s.tables, s.charts) for s in sections.build(window)]


def test_rolled_up_hours_read_as_the_rows_did(scene):
    later = timezone.now() + timedelta(hours=3)  # the scene's hour is over and settled by then
    before = figures(later)
    assert Rollup.objects.count() == 0
    assert rollup(now=later) == floor_hour(later - SETTLE)
    assert MovementHour.objects.filter(kind="deposit", currency="USD").get().count == 1
    assert RefusalHour.objects.get(action="money.failed").outcome == "insufficient_funds"
    system = Wallet.objects.get(kind=Wallet.Kind.SYSTEM, currency="USD")
    assert HousePosition.objects.get(wallet_id=system.id).amount == -13750
    assert figures(later) == before


def test_rows_after_the_mark_are_added_to_the_totals(scene):
    now = timezone.now()
    system = Wallet.objects.get(kind=Wallet.Kind.SYSTEM, currency="EUR")
    HousePosition.objects.create(wallet_id=system.id, amount=0)  # a total to add the rows to
    assert rollup(now=now) <= now - SETTLE  # the scene's rows are after the mark
    ledger.deposit_create(wallet_id=scene.eur.id, owner_id=scene.alice.id, amount=500)
    window = sections.Window()
    (eur,) = [p for p in window.positions if p.currency == "EUR"]
    assert (eur.user_balance, eur.system_position, eur.imbalance) == (2500, -2500, 0)
    moved = sections.money_moved(window).tables[0].rows
    assert ("EUR", "Deposit", "2", "25.00 EUR") in [tuple(c.text for c in row[:4]) for row in moved]


def test_each_hour_is_added_once(scene):
    later = timezone.now() + timedelta(hours=3)
    rollup(now=later)
    rows = list(MovementHour.objects.values_list("hour", "kind", "currency", "count", "amount"))
    positions = list(HousePosition.objects.values_list("wallet_id", "amount"))
    # Five minutes on, at most one more hour settles (when `later` is just past the hour), with nothing in it.
    assert rollup(now=later + timedelta(minutes=5)) == floor_hour(later + timedelta(minutes=5) - SETTLE)
    assert list(MovementHour.objects.values_list("hour", "kind", "currency", "count", "amount")) == rows
    assert list(HousePosition.objects.values_list("wallet_id", "amount")) == positions


def test_an_hour_not_settled_yet_waits(scene):
    now = timezone.now()
    assert rollup(now=floor_hour(now) + SETTLE - timedelta(seconds=1)) <= floor_hour(now)
    assert not MovementHour.objects.filter(hour=floor_hour(now)).exists()


def test_the_windows_start_on_the_hour():
    window = sections.Window()
    assert window.day == floor_hour(window.now - timedelta(hours=24))
    assert window.month.minute == window.month.second == 0
    assert timedelta(days=30) <= window.now - window.month < timedelta(days=30, hours=1)
    assert window.rolled == EPOCH


def test_while_another_view_adds_up_this_one_does_not(scene):
    """Another connection holds the rollup's lock: this view adds nothing up and keeps the old
    mark (its page reads the rows since), and adds up once the lock is free."""
    later = timezone.now() + timedelta(hours=3)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(autocommit=True, **params) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        assert rollup(now=later) == EPOCH
    assert not MovementHour.objects.exists()
    assert not Rollup.objects.exists()
    assert rollup(now=later) == floor_hour(later - SETTLE)  # the lock is free again


def test_a_view_out_of_budget_leaves_the_rest_to_the_next(scene, monkeypatch):
    monkeypatch.setattr("dashboard.rollup.STEP", timedelta(hours=1))
    later = timezone.now() + timedelta(hours=3)
    before = figures(later)
    first = floor_hour(Transfer.objects.earliest("created_at").created_at)  # where the history starts
    assert rollup(now=later, budget=0) == first + timedelta(hours=1)  # one step, then out of time
    assert figures(later) == before
    assert rollup(now=later, budget=None) == floor_hour(later - SETTLE)
    assert figures(later) == before


def test_the_command_adds_up_everything(scene):
    out = io.StringIO()
    call_command("dashboard_rollup", stdout=out)
    mark = Rollup.objects.get().rolled_until
    assert mark == floor_hour(timezone.now() - SETTLE)
    assert f"rolled up until {mark.isoformat()} (was {EPOCH.isoformat()})" in out.getvalue()
