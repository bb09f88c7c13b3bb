"""The wallet admin: what an operator sees in the list, at a constant number of queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from conftest import admin_columns, admin_page, admin_row
from transfers import services as ledger
from wallets.models import Wallet
from wallets.services import system_wallet_id

pytestmark = pytest.mark.django_db

LIST = "/admin/wallets/wallet/"


def row_of(html: str, wallet_id: object) -> str:
    return admin_row(html, f"/admin/wallets/wallet/{wallet_id}/change/")


def test_the_list_shows_balances_in_major_units_and_system_wallets_their_ledger_sum(
    admin_client, make_user, make_wallet
):
    alice = make_user()
    wallet = make_wallet(alice, balance=2_500)
    ledger.withdrawal_create(wallet_id=wallet.id, owner_id=alice.id, amount=500)
    yen = make_wallet(alice, currency="JPY", balance=1_200)
    system_usd = system_wallet_id(currency="USD")
    assert Wallet.objects.get(pk=system_usd).balance == 0  # what the list used to show

    html = admin_page(admin_client, LIST)

    assert ">20.00 USD<" in row_of(html, wallet.id)
    assert ">1200 JPY<" in row_of(html, yen.id)
    assert ">-20.00 USD<" in row_of(html, system_usd)  # 2,500 out to alice, 500 back
    assert ">-1200 JPY<" in row_of(html, system_wallet_id(currency="JPY"))


def test_the_list_has_few_columns_and_short_ids(admin_client, make_user, make_wallet):
    wallet = make_wallet(make_user(), balance=100)

    html = admin_page(admin_client, LIST)

    assert admin_columns(html) <= 7
    row = row_of(html, wallet.id)
    assert f">{str(wallet.id)[:8]}<" in row
    assert f">{wallet.id}<" not in row  # the full id only in the link


def test_the_list_costs_the_same_queries_for_more_rows(admin_client, make_user, make_wallet):
    make_wallet(make_user(), balance=100)
    make_wallet(make_user(), currency="EUR", balance=100)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            admin_page(admin_client, LIST)
        return len(captured)

    few = queries()
    for currency in ("USD", "EUR", "GBP", "JPY"):
        make_wallet(make_user(), currency=currency, balance=300)
    assert queries() == few


def test_the_change_page_shows_the_ledger_flag_and_a_link_to_the_findings(
    admin_client, make_user, make_wallet
):
    wallet = make_wallet(make_user())
    html = admin_page(admin_client, f"/admin/wallets/wallet/{wallet.id}/change/")
    assert "field-inconsistent_since" in html
    assert f"/admin/transfers/discrepancy/?q={wallet.id}" in html


def test_saving_without_a_change_writes_no_wallet_event(admin_client, make_user, make_wallet):
    wallet = make_wallet(make_user(), name="main")
    url = f"/admin/wallets/wallet/{wallet.id}/change/"

    response = admin_client.post(url, {"name": "main", "status": "active"})

    assert response.status_code == 302, response.content[:300]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_UPDATED).exists()


def test_renaming_and_freezing_name_the_operator_and_every_old_and_new_value(
    admin_client, admin_user, make_user, make_wallet
):
    wallet = make_wallet(make_user(), name="main")
    url = f"/admin/wallets/wallet/{wallet.id}/change/"

    response = admin_client.post(url, {"name": "savings", "status": "frozen"})

    assert response.status_code == 302, response.content[:300]
    (updated,) = AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_UPDATED)
    assert updated.actor_id == admin_user.id
    assert updated.details == {
        "status": {"old": "active", "new": "frozen"},
        "name": {"old": "main", "new": "savings"},
    }
    (change,) = AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_CHANGE)
    assert change.actor_id == admin_user.id
    assert change.details["changes"] == updated.details
