"""The ledger's admin pages: readable lists at a constant number of queries, every field on the detail."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import admin_columns, admin_page, admin_row
from transfers import holds
from transfers import services as ledger
from transfers.models import Discrepancy, Hold, LedgerEntry
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
    "url",
    [
        "/admin/transfers/transfer/",
        "/admin/transfers/ledgerentry/",
        "/admin/transfers/discrepancy/",
        "/admin/transfers/hold/",
    ],
)
def test_lists_cost_the_same_queries_for_more_rows(admin_client, make_user, make_wallet, url):
    wallet = make_wallet(make_user(), balance=100)
    holds.hold_create(wallet_id=wallet.id, owner_id=wallet.owner_id, amount=1)
    corrupt_balance(wallet, +1)
    reconciliation_run()
    few = queries(admin_client, url)

    for currency in ("USD", "EUR", "JPY"):
        more = make_wallet(make_user(), currency=currency, balance=500)
        ledger.withdrawal_create(wallet_id=more.id, owner_id=more.owner_id, amount=1)
        holds.hold_create(wallet_id=more.id, owner_id=more.owner_id, amount=1)
        corrupt_balance(more, -1)
    reconciliation_run()

    assert Discrepancy.objects.count() >= 4 and Hold.objects.count() == 4
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


# --- holds -------------------------------------------------------------------------------------


@pytest.fixture
def held(make_user, make_wallet):
    """alice's wallet: one pending hold of 25.00 and one captured (10.00 of 20.00)."""
    alice, bob = make_user(), make_user()
    wallet, other = make_wallet(alice, balance=10_000), make_wallet(bob)
    pending = holds.hold_create(wallet_id=wallet.id, owner_id=alice.id, amount=2_500)
    captured = holds.hold_create(wallet_id=wallet.id, owner_id=alice.id, amount=2_000)
    holds.hold_capture(hold_id=captured.id, owner_id=alice.id, amount=1_000, destination_wallet_id=other.id)
    elsewhere = holds.hold_create(wallet_id=other.id, owner_id=bob.id, amount=300)
    return SimpleNamespace(wallet=wallet, pending=pending, captured=captured, elsewhere=elsewhere)


HOLDS = "/admin/transfers/hold/"


def test_the_hold_list_shows_amounts_and_narrows_by_wallet_and_status(admin_client, held):
    every = admin_page(admin_client, HOLDS)
    row = admin_row(every, f"{HOLDS}{held.captured.id}/change/")
    assert ">20.00 USD<" in row and ">10.00 USD<" in row and "Captured" in row
    assert admin_columns(every) <= 7

    pending_of_wallet = admin_page(admin_client, f"{HOLDS}?q={held.wallet.id}&status__exact=pending")

    assert f"{HOLDS}{held.pending.id}/change/" in pending_of_wallet
    assert f"{HOLDS}{held.captured.id}/change/" not in pending_of_wallet
    assert f"{HOLDS}{held.elsewhere.id}/change/" not in pending_of_wallet


def test_holds_are_read_only_in_the_admin(admin_client, held):
    page = admin_page(admin_client, f"{HOLDS}{held.pending.id}/change/")

    assert "field-expires_at" in page and 'name="amount"' not in page
    assert admin_client.get(f"{HOLDS}add/").status_code == 403
    assert admin_client.post(f"{HOLDS}{held.pending.id}/change/", {"status": "voided"}).status_code == 403
    assert admin_client.post(f"{HOLDS}{held.pending.id}/delete/", {"post": "yes"}).status_code == 403
    assert Hold.objects.get(pk=held.pending.id).status == Hold.Status.PENDING


def test_the_wallet_page_links_to_its_pending_holds(admin_client, held):
    html = admin_page(admin_client, f"/admin/wallets/wallet/{held.wallet.id}/change/")

    assert f"{HOLDS}?q={held.wallet.id}&amp;status__exact=pending" in html
