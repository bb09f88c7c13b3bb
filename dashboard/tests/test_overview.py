"""The Ledger overview page: its figures, its charts, who may see it, and its query budget."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from dashboard import sections
from dashboard.selectors import CurrencyPosition
from dashboard.tests.conftest import STAFF_PASSWORD
from transfers import services as ledger
from transfers.models import Hold, ReconciliationRun
from wallets.services import wallet_create
from webhooks.dispatch import fan_out_settled
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

URL = "/admin/ledger-overview/"


def page(client, user) -> str:
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


def cells(html: str, section: str) -> list[list[str]]:
    """The text of every body row's cells in a section's tables."""
    body = re.search(rf'<section[^>]*id="section-{section}".*?</section>', html, re.S).group(0)
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in rows
        if "<td" in row
    ]


def test_the_url_is_the_admin_sites():
    assert reverse("admin:ledger_overview") == URL


def test_positions_balance_and_say_so(client, scene):
    html = page(client, scene.staff)
    rows = cells(html, "positions")
    # alice USD 150.00 - 12.50 - 30.00 = 107.50, bob 30.00; the system wallet paid in 150.00
    # and took 12.50 back out.
    assert ["EUR", "1", "20.00 EUR", "0.00 EUR", "-20.00 EUR", "0.00 EUR", "balanced"] in rows
    assert ["USD", "2", "137.50 USD", "7.00 USD", "-137.50 USD", "0.00 USD", "balanced"] in rows
    assert html.count('<td class="tone-ok">balanced</td>') == 2


def test_a_currency_that_does_not_sum_to_zero_is_red():
    window = sections.Window()
    window.__dict__["positions"] = [CurrencyPosition("USD", 1, 1000, 0, -900, 0, 0, 0)]
    section = sections.ledger_positions(window)
    (row,) = section.tables[0].rows
    assert (row[-1].text, row[-1].tone) == ("off by 1.00 USD", sections.BAD)
    assert section.figures[0].tone == sections.BAD


def test_reconciliation_links_its_discrepancies(client, scene):
    run = ReconciliationRun.objects.latest("id")
    html = page(client, scene.staff)
    assert f"#{run.pk}, " in html
    assert f"/admin/transfers/discrepancy/?run__id__exact={run.pk}" in html
    assert "/admin/wallets/wallet/?status__exact=under_review" in html
    assert re.search(
        r'data-label="Status">\s*<span class="label">Status</span>\s*<span class="value tone-ok">Clean', html
    )


def test_no_run_yet_is_red(client, staff):
    html = page(client, staff)
    assert re.search(r'<li class="figure tone-bad" data-label="Last run">.*?never', html, re.S)


def test_money_moved_by_kind_in_a_chart_and_a_table(client, scene):
    html = page(client, scene.staff)
    rows = cells(html, "money-moved")
    assert ["USD", "Deposit", "1", "150.00 USD", "1", "150.00 USD"] in rows
    assert ["USD", "Withdrawal", "1", "12.50 USD", "1", "12.50 USD"] in rows
    assert ["USD", "Transfer", "1", "30.00 USD", "1", "30.00 USD"] in rows
    assert ["EUR", "Deposit", "1", "20.00 EUR", "1", "20.00 EUR"] in rows
    charts = re.findall(r'<svg[^>]*data-chart="([^"]+)"', html)
    assert {"USD, last 24 hours", "USD, last 30 days", "EUR, last 24 hours", "EUR, last 30 days"} <= set(
        charts
    )
    # The deposit is the longest USD bar (220 px), the withdrawal 12.50/150 of it.
    usd = re.search(r'data-chart="USD, last 24 hours".*?</svg>', html, re.S).group(0)
    assert re.findall(r'width="(\d+)" height="16" data-value="(\d+)"', usd) == [
        ("220", "15000"), ("18", "1250"), ("44", "3000"), ("0", "0"), ("0", "0"),
    ]  # fmt: skip


def test_refusals_by_code_and_rate_limited_clients(client, scene):
    html = page(client, scene.staff)
    rows = cells(html, "refusals")
    assert ["insufficient_funds", "1", "1"] in rows
    assert ["user", "1", "1"] in rows  # three 429s, one client in one window: one record
    assert 'data-chart="Refusals by code, last 30 days"' in html


def test_holds_expiring_and_proposals_waiting(client, scene):
    hold = Hold.objects.get()
    html = page(client, scene.staff)
    (row,) = cells(html, "holds")
    assert row[:3] == [str(hold.id), str(scene.usd.id), "7.00 USD"]
    (row,) = cells(html, "adjustments")
    assert row[1:4] == [str(scene.bob_usd.id), "-5.00 USD", "duplicate payout"]
    assert "/admin/corrections/adjustmentproposal/?status__exact=proposed" in html


def test_every_link_on_the_page_opens(client, scene):
    html = page(client, scene.staff)
    scene.staff.is_superuser = True  # to follow links into every model's admin
    scene.staff.save(update_fields=["is_superuser"])
    client.force_login(scene.staff)
    links = set(
        re.findall(r'href="(/admin/[^"#]*)"', re.search(r'<div id="ledger-overview">.*', html, re.S).group(0))
    )
    assert len(links) >= 8
    for link in sorted(links):
        response = client.get(link.replace("&amp;", "&"))
        assert response.status_code == 200, link
        assert b"?e=1" not in response.get("Location", "").encode(), link


def test_the_admin_index_links_the_overview(client, staff):
    client.force_login(staff)
    assert f'href="{URL}"' in client.get("/admin/").content.decode()


def test_not_staff_gets_the_login_page(client, make_user):
    user = make_user()
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/ledger-overview/")


def test_anonymous_gets_the_login_page(client):
    response = client.get(URL, follow=True)
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert b'id="login-form"' in response.content


def test_staff_log_in_through_the_form(client, staff):
    response = client.post(
        f"/admin/login/?next={URL}",
        {"username": "operator", "password": STAFF_PASSWORD, "next": URL},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == URL
    assert b'id="ledger-overview"' in response.content


# The admin's own: session, user, and the user's and groups' permissions for the sidebar (4);
# whether an hour is to be rolled up (1); the snapshot (here a savepoint and its release;
# in production SET TRANSACTION, 1); the rolled-up mark as the snapshot sees it (1); then
# one query per figure: positions (and wallets to review), last run, money moved, refusals,
# webhook deliveries given up, holds expiring, proposals waiting (7).
BUDGET = 15


def test_query_budget_does_not_grow_with_the_ledger(client, scene, make_wallet, api_client):
    client.force_login(scene.staff)
    client.get(URL)
    with CaptureQueriesContext(connection) as small:
        assert client.get(URL).status_code == 200
    more = api_client(scene.bob)
    for _ in range(3):
        wallet = make_wallet(scene.bob, currency="GBP", balance=500)
        more.post(
            f"/api/v1/wallets/{wallet.id}/holds", {"amount": 5, "expires_in_seconds": 60}, format="json"
        )
    with CaptureQueriesContext(connection) as large:
        assert client.get(URL).status_code == 200
    assert len(small) == len(large) <= BUDGET, [q["sql"][:200] for q in large.captured_queries]


def test_each_provider_is_a_bounded_number_of_queries(scene, django_assert_max_num_queries):
    for provider in sections.SECTIONS:
        window = sections.Window()
        with django_assert_max_num_queries(3):  # the shared mark and positions reads, and its own
            provider(window)


def test_rate_limit_refusals_are_recorded_once_per_client_and_window(api_client, make_user, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "user": "1/d"}
    carol, dave = make_user(), make_user()
    for user in (carol, carol, carol, dave):
        api_client(user).get("/api/v1/wallets")
    events = AuditEvent.objects.filter(action=AuditEvent.Action.RATE_LIMITED)
    assert [(e.outcome, e.details["key"], e.details["limit"], e.actor_id) for e in events] == [
        ("user", f"u{carol.id}", 1, carol.id)
    ]
    assert events.get().client_ip == "127.0.0.1"


def test_webhook_deliveries_given_up_are_counted_by_last_error(client, scene):
    endpoint, _ = endpoint_create(owner_id=scene.bob.id, url="https://93.184.215.14/hooks", event_types=["*"])
    wallet = wallet_create(owner_id=scene.bob.id, currency="USD")
    for amount in (1, 2, 3):
        ledger.deposit_create(wallet_id=wallet.id, owner_id=scene.bob.id, amount=amount)
    fan_out_settled()
    deliveries = list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id"))
    assert len(deliveries) == 3
    now = timezone.now()
    for delivery, error, days in zip(
        deliveries, ["timeout", "http_error", "http_error"], [0, 0, 3], strict=True
    ):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status="failed", attempts=30, last_error=error, finished_at=now - timedelta(days=days)
        )

    html = page(client, scene.staff)

    assert cells(html, "webhooks") == [["http_error", "1", "2"], ["timeout", "1", "1"]]
