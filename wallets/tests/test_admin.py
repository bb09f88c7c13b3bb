"""The wallet admin: what an operator sees in the list, at a constant number of queries."""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from conftest import admin_columns, admin_page, admin_row
from transfers import holds
from transfers import services as ledger
from wallets.models import Wallet
from wallets.services import system_wallet_id, wallet_set_limits, wallets_mark_reconciled

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


# --- held, available, today's outgoing and limits ---------------------------------------------


def change_url(wallet) -> str:
    return f"/admin/wallets/wallet/{wallet.id}/change/"


def field_value(html: str, field: str) -> str:
    """The text an admin change page shows for a read-only field."""
    match = re.search(rf'field-{field}\b.*?<div class="readonly">(.*?)</div>', html, re.S)
    assert match, f"no read-only {field} on the page"
    return match.group(1).strip()


def test_the_change_page_shows_held_available_and_todays_allowance(admin_client, make_user, make_wallet):
    alice, bob = make_user(), make_user()
    wallet = make_wallet(alice, balance=10_000)
    other = make_wallet(bob)
    wallet_set_limits(
        wallet_id=wallet.id, max_outgoing_amount=None, max_outgoing_per_day=5_000, actor_id=None
    )
    holds.hold_create(wallet_id=wallet.id, owner_id=alice.id, amount=2_500)
    ledger.transfer_create(
        source_wallet_id=wallet.id, destination_wallet_id=other.id, initiated_by_id=alice.id, amount=1_200
    )

    html = admin_page(admin_client, change_url(wallet))

    assert field_value(html, "shown_balance") == "88.00 USD"
    assert field_value(html, "shown_held") == "25.00 USD"
    assert field_value(html, "shown_available") == "63.00 USD"
    assert field_value(html, "shown_outgoing_today") == "12.00 USD"
    assert field_value(html, "shown_remaining_today") == "38.00 USD"
    assert 'name="max_outgoing_per_day" value="5000"' in html
    assert (
        field_value(admin_page(admin_client, change_url(other)), "shown_remaining_today") == "no daily limit"
    )


def post_change(client, wallet, **fields):
    data = {
        "name": wallet.name,
        "status": wallet.status,
        "max_outgoing_amount": "",
        "max_outgoing_per_day": "",
    }
    data.update({k: "" if v is None else str(v) for k, v in fields.items()})
    return client.post(change_url(wallet), data)


def test_limits_set_in_the_admin_are_audited_with_old_and_new_values(
    admin_client, admin_user, make_user, make_wallet
):
    wallet = make_wallet(make_user(), name="main")

    response = post_change(admin_client, wallet, max_outgoing_amount=5_000, max_outgoing_per_day=20_000)

    assert response.status_code == 302, response.content[:500]
    stored = Wallet.objects.get(pk=wallet.id)
    assert (stored.max_outgoing_amount, stored.max_outgoing_per_day) == (5_000, 20_000)
    (updated,) = AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_UPDATED)
    assert updated.actor_id == admin_user.id
    assert updated.details == {
        "max_outgoing_amount": {"old": None, "new": 5_000},
        "max_outgoing_per_day": {"old": None, "new": 20_000},
    }
    (change,) = AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_CHANGE)
    assert change.details["changes"] == updated.details

    # Emptying a field lifts that limit.
    assert post_change(admin_client, wallet, max_outgoing_per_day=20_000).status_code == 302
    assert Wallet.objects.get(pk=wallet.id).max_outgoing_amount is None


@pytest.mark.parametrize("value", ["-1", "0", "1.5", "lots", str(2**63)])
@pytest.mark.parametrize("field", ["max_outgoing_amount", "max_outgoing_per_day"])
def test_the_admin_form_refuses_limits_that_are_not_positive_amounts(
    admin_client, make_user, make_wallet, field, value
):
    wallet = make_wallet(make_user())

    response = post_change(admin_client, wallet, **{field: value})

    assert response.status_code == 200  # the form again, with the error
    assert "errorlist" in response.content.decode()
    stored = Wallet.objects.get(pk=wallet.id)
    assert (stored.max_outgoing_amount, stored.max_outgoing_per_day) == (None, None)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_UPDATED).exists()


def test_a_system_wallets_limits_are_not_editable(admin_client, make_user, make_wallet):
    make_wallet(make_user(), balance=10)

    html = admin_page(admin_client, f"/admin/wallets/wallet/{system_wallet_id(currency='USD')}/change/")

    assert 'name="max_outgoing_amount"' not in html and 'name="max_outgoing_per_day"' not in html


# --- under review and release --------------------------------------------------------------------


def release_url(wallet) -> str:
    return f"/admin/wallets/wallet/{wallet.id}/release/"


def put_under_review(wallet) -> None:
    wallets_mark_reconciled(checked={wallet.id}, inconsistent={wallet.id}, found_at=timezone.now())
    wallet.refresh_from_db()
    assert wallet.status == Wallet.Status.UNDER_REVIEW


def test_under_review_is_not_an_operators_choice(admin_client, make_user, make_wallet):
    wallet = make_wallet(make_user())

    html = admin_page(admin_client, change_url(wallet))
    response = post_change(admin_client, wallet, status="under_review")

    assert 'value="frozen"' in html and 'value="under_review"' not in html
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert Wallet.objects.get(pk=wallet.id).status == Wallet.Status.ACTIVE


def test_a_wallet_under_review_shows_its_status_read_only_and_a_release_link(
    admin_client, make_user, make_wallet
):
    wallet = make_wallet(make_user(), name="main")
    put_under_review(wallet)

    html = admin_page(admin_client, change_url(wallet))

    assert '<select name="status"' not in html
    assert field_value(html, "status") == "Under review"
    assert f'href="{release_url(wallet)}"' in html
    assert release_url(wallet) not in admin_page(admin_client, change_url(make_wallet(make_user())))
    # Saving the page (a rename) leaves the status alone.
    assert admin_client.post(change_url(wallet), {"name": "checked"}).status_code == 302
    wallet.refresh_from_db()
    assert (wallet.status, wallet.name) == (Wallet.Status.UNDER_REVIEW, "checked")


def test_the_release_is_refused_in_the_admin_while_the_wallet_is_inconsistent(
    admin_client, make_user, make_wallet
):
    wallet = make_wallet(make_user())
    put_under_review(wallet)

    page = admin_page(admin_client, release_url(wallet))
    response = admin_client.post(release_url(wallet), follow=True)

    assert "cannot be released until a run finds it consistent" in page
    assert f"reconcile --wallet {wallet.id}" in page
    assert "<form" not in page.split('id="content-main"', 1)[1]  # nothing to press
    assert "not released" in response.content.decode()
    assert Wallet.objects.get(pk=wallet.id).status == Wallet.Status.UNDER_REVIEW
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_RELEASED).exists()


def test_the_admin_release_of_a_consistent_wallet_is_audited_naming_the_operator(
    admin_client, admin_user, make_user, make_wallet
):
    wallet = make_wallet(make_user())
    put_under_review(wallet)
    wallets_mark_reconciled(checked={wallet.id}, inconsistent=set(), found_at=timezone.now())

    page = admin_page(admin_client, release_url(wallet))
    response = admin_client.post(release_url(wallet))

    assert 'value="Release from review"' in page
    assert response.status_code == 302 and response["Location"] == change_url(wallet)
    assert Wallet.objects.get(pk=wallet.id).status == Wallet.Status.ACTIVE
    (released,) = AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_RELEASED)
    assert (released.actor_id, released.target_id) == (admin_user.id, str(wallet.id))
    assert released.details == {"status": {"old": "under_review", "new": "active"}}
    (logged,) = AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_CHANGE, target_id=str(wallet.id))
    assert logged.actor_id == admin_user.id and "Released from review" in logged.details["change"]
    # A second press finds nothing to release.
    admin_client.post(release_url(wallet))
    assert AuditEvent.objects.filter(action=AuditEvent.Action.WALLET_RELEASED).count() == 1


def test_the_release_page_is_for_staff_only_and_for_existing_wallets(
    client, admin_client, make_user, make_wallet
):
    wallet = make_wallet(make_user())
    put_under_review(wallet)
    wallets_mark_reconciled(checked={wallet.id}, inconsistent=set(), found_at=timezone.now())

    anonymous = client.post(release_url(wallet))

    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert Wallet.objects.get(pk=wallet.id).status == Wallet.Status.UNDER_REVIEW
    assert admin_client.get("/admin/wallets/wallet/not-a-uuid/release/").status_code == 404
    assert admin_client.get(f"/admin/wallets/wallet/{uuid.uuid4()}/release/").status_code == 404
