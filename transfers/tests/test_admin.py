"""The ledger's admin pages: readable lists at a constant number of queries, every field on the detail."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import admin_columns, admin_page, admin_row
from transfers import services as ledger
from transfers.models import Discrepancy, LedgerEntry
from transfers.reconciliation import reconciliation_run
from transfers.tests.test_reconciliation import corrupt_balance

pytestmark = pytest.mark.django_db


@pytest.fixture
def moved(make_user, make_wallet):
    alice, bob = make_user(), make_user()
    source = make_wallet(alice, balance=10_000)
    destination = make_wallet(bob)
    transfer = ledger.transfer_create(
        source_wallet_id=source.id,
        destination_wallet_id=destination.id,
        initiated_by_id=alice.id,
        amount=1_234,
    )
    return transfer


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        admin_page(client, url)
    return len(captured)


def test_the_index_spells_the_plurals(admin_client):
    html = admin_page(admin_client, "/admin/")
    assert "Ledger entries" in html and "Discrepancies" in html
    assert "entrys" not in html and "Discrepancys" not in html


def test_the_transfer_list_is_narrow_and_shows_amounts_in_major_units(admin_client, moved):
    html = admin_page(admin_client, "/admin/transfers/transfer/")

    row = admin_row(html, f"/admin/transfers/transfer/{moved.id}/change/")
    assert ">12.34 USD<" in row
    assert (
        f">{str(moved.source_wallet_id)[:8]}<" in row and f">{str(moved.destination_wallet_id)[:8]}<" in row
    )
    assert str(moved.source_wallet_id) not in row  # short ids only
    assert admin_columns(html) <= 7


def test_the_entry_list_shows_signed_amounts_and_balances_in_major_units(admin_client, moved):
    html = admin_page(admin_client, "/admin/transfers/ledgerentry/")

    out = LedgerEntry.objects.get(transfer=moved, amount__lt=0)
    row = admin_row(html, f"/admin/transfers/ledgerentry/{out.id}/change/")
    assert ">-12.34 USD<" in row and ">87.66 USD<" in row
    assert admin_columns(html) <= 7


@pytest.mark.django_db(transaction=True)  # corrupted balances (for findings to list) must commit
@pytest.mark.parametrize(
    "url", ["/admin/transfers/transfer/", "/admin/transfers/ledgerentry/", "/admin/transfers/discrepancy/"]
)
def test_lists_cost_the_same_queries_for_more_rows(admin_client, make_user, make_wallet, url):
    wallet = make_wallet(make_user(), balance=100)
    corrupt_balance(wallet, +1)
    reconciliation_run()
    few = queries(admin_client, url)

    for currency in ("USD", "EUR", "JPY"):
        more = make_wallet(make_user(), currency=currency, balance=500)
        ledger.withdrawal_create(wallet_id=more.id, owner_id=more.owner_id, amount=1)
        corrupt_balance(more, -1)
    reconciliation_run()

    assert Discrepancy.objects.count() >= 4
    assert queries(admin_client, url) == few


def test_the_transfer_and_entry_pages_show_when_they_were_made(admin_client, moved):
    entry = LedgerEntry.objects.filter(transfer=moved).first()
    for url in (
        f"/admin/transfers/transfer/{moved.id}/change/",
        f"/admin/transfers/ledgerentry/{entry.id}/change/",
    ):
        html = admin_page(admin_client, url)
        assert "field-created_at" in html, url
        assert "field-id" in html, url
