"""The Ledger overview in a real headless Chromium (Debian's chromium and chromium-driver,
driven by selenium), against pytest-django's live server.

Screenshots go to .artifacts/screenshots/ (git-ignored). Without the browser, its driver or
selenium (scripts/ensure_browser.sh installs the first two; requirements-dev.txt the last)
or if Chromium does not start, these tests skip and say why; the rest of the suite runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.tests.conftest import STAFF_PASSWORD
from transfers import services as ledger
from webhooks import services as webhooks
from webhooks.dispatch import fan_out_settled
from webhooks.models import WebhookEndpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"
OVERVIEW = "/admin/ledger-overview/"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    reason = "selenium is not installed (requirements-dev.txt)"
    webdriver = pytest.importorskip("selenium.webdriver", reason=reason)
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("Chromium or its driver is not installed (scripts/ensure_browser.sh installs both)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2600"):
        options.add_argument(argument)
    try:
        # The driver's path is given, so selenium's manager never tries to download one.
        session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    except WebDriverException as exc:
        pytest.skip(f"Chromium did not start: {exc.msg}")
    session.set_page_load_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield session
    session.quit()


def log_in(browser, base: str, username: str, password: str, next_url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{base}/admin/login/?next={next_url}")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(password)
    follow(browser, browser.find_element(By.CSS_SELECTOR, '#login-form [type="submit"]'))


def follow(browser, element) -> None:
    """Click a link or button and wait for the page it leads to.

    click() returns once the click is sent, not once the answer is shown: a lookup made
    right after it may see neither page (a refused login's new form included). So wait
    until the element's page is gone and the next one has loaded.
    """
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    element.click()
    wait = WebDriverWait(browser, 30)
    wait.until(expected_conditions.staleness_of(element))
    wait.until(lambda session: session.execute_script("return document.readyState") == "complete")


def test_staff_see_figures_and_charts(browser, live_server, scene):
    from selenium.webdriver.common.by import By

    log_in(browser, live_server.url, "operator", STAFF_PASSWORD, "/admin/")
    link = browser.find_element(By.LINK_TEXT, "Ledger overview")
    browser.save_screenshot(str(SCREENSHOTS / "admin_index.png"))
    follow(browser, link)
    assert browser.current_url == live_server.url + OVERVIEW
    assert browser.find_element(By.CSS_SELECTOR, "#content h1").text == "Ledger overview"

    cells = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#section-positions td")]
    assert cells[cells.index("USD") : cells.index("USD") + 7] == [
        "USD", "2", "137.50 USD", "7.00 USD", "-137.50 USD", "0.00 USD", "balanced",
    ]  # fmt: skip
    balanced = browser.find_elements(By.CSS_SELECTOR, "#section-positions td.tone-ok")
    assert [cell.text for cell in balanced] == ["balanced", "balanced"]
    assert balanced[0].value_of_css_property("color") == "rgba(27, 127, 59, 1)"  # green

    charts = browser.find_elements(By.CSS_SELECTOR, "#ledger-overview svg[role=img]")
    titles = {chart.get_attribute("data-chart") for chart in charts}
    assert {"USD, last 24 hours", "USD, last 30 days", "Refusals by code, last 30 days"} <= titles
    usd = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart="USD, last 24 hours"]')
    bars = usd.find_elements(By.CSS_SELECTOR, "rect.bar")
    assert [bar.get_attribute("data-value") for bar in bars] == ["15000", "1250", "3000", "0", "0"]
    assert bars[0].size["width"] == 220  # drawn: the longest bar at full length
    labels = [text.text for text in usd.find_elements(By.CSS_SELECTOR, "text.bar-value")]
    assert labels[:3] == ["150.00 USD", "12.50 USD", "30.00 USD"]

    refusals = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#section-refusals td")]
    assert refusals[refusals.index("insufficient_funds") + 1 :][:2] == ["1", "1"]
    holds = browser.find_element(By.CSS_SELECTOR, '#section-holds li[data-label^="Pending holds"] .value')
    assert holds.text == "1"
    status = browser.find_element(By.CSS_SELECTOR, '#section-reconciliation li[data-label="Status"] .value')
    assert status.text == "Clean"
    browser.save_screenshot(str(SCREENSHOTS / "ledger_overview.png"))


def test_not_staff_get_the_login_page(browser, live_server, make_user):
    from selenium.webdriver.common.by import By

    make_user("customer", password="Customer-pass-99")
    log_in(browser, live_server.url, "customer", "Customer-pass-99", OVERVIEW)
    assert browser.find_elements(By.ID, "login-form")
    assert "staff account" in browser.find_element(By.CSS_SELECTOR, ".errornote").text
    browser.get(live_server.url + OVERVIEW)
    assert browser.current_url.startswith(f"{live_server.url}/admin/login/?next=")
    assert browser.find_elements(By.ID, "login-form")
    assert not browser.find_elements(By.ID, "ledger-overview")
    browser.save_screenshot(str(SCREENSHOTS / "not_staff_login.png"))


# What a change list's width is measured against: the page itself, the results box (Django
# scrolls a wide table inside it) and the table. A list fits when none scrolls sideways.
OVERFLOW = """
const page = document.documentElement;
const box = document.querySelector('#changelist .results');
const table = document.querySelector('#result_list');
return {
    page: [page.scrollWidth, page.clientWidth],
    box: box ? [box.scrollWidth, box.clientWidth] : null,
    table: table ? [Math.ceil(table.getBoundingClientRect().right), page.clientWidth] : null,
};
"""


def test_every_admin_list_fits_a_1400px_window(browser, live_server, scene, make_user):
    from selenium.webdriver.common.by import By

    # Webhook endpoints and deliveries too (the scene has everything else): an event
    # after the endpoint exists is fanned out to it. A long URL (stored as is: creating it
    # would resolve the host) is one no list may show whole.
    public = "https://93.184.215.14/hooks"
    webhooks.endpoint_create(owner_id=scene.alice.id, url=public, event_types=["*"])
    long, _ = webhooks.endpoint_create(owner_id=scene.bob.id, url=public, event_types=["*"])
    WebhookEndpoint.objects.filter(pk=long.pk).update(url=f"https://hooks.example.com/{'receiver/' * 20}")
    ledger.deposit_create(wallet_id=scene.usd.id, owner_id=scene.alice.id, amount=100)
    fan_out_settled()
    root = make_user("root", password="Root-pass-4242")
    root.is_staff = root.is_superuser = True
    root.save(update_fields=["is_staff", "is_superuser"])

    log_in(browser, live_server.url, "root", "Root-pass-4242", "/admin/")
    # Every model the admin site lists on its index, not a list written out here.
    lists = [
        link.get_attribute("href")
        for link in browser.find_elements(By.CSS_SELECTOR, '#content-main tr[class^="model-"] th a')
    ]
    assert len(lists) >= 10, lists
    measured, empty, too_wide = [], [], {}
    for url in lists:
        browser.get(url)
        if not browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"):
            empty.append(url.removeprefix(live_server.url))
            continue
        widths = browser.execute_script(OVERFLOW)
        measured.append(url.removeprefix(live_server.url))
        if any(used > room for used, room in filter(None, widths.values())):
            too_wide[url.removeprefix(live_server.url)] = widths
            name = url.removeprefix(live_server.url).strip("/").replace("/", "_")
            browser.save_screenshot(str(SCREENSHOTS / f"too_wide_{name}.png"))
    # The lists the audit named all had rows to measure.
    for model in (
        "wallets/wallet", "transfers/transfer", "transfers/ledgerentry", "audit/auditevent",
        "events/event", "transfers/idempotencyrecord", "transfers/hold",
        "corrections/adjustmentproposal", "webhooks/webhookendpoint", "webhooks/webhookdelivery",
    ):  # fmt: skip
        assert f"/admin/{model}/" in measured, (model, measured, empty)
    assert too_wide == {}, too_wide
