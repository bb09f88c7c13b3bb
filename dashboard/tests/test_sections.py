"""The sections' building blocks: bar geometry, and a page made of any list of providers."""

from __future__ import annotations

import pytest

from dashboard import sections
from dashboard.charts import BAR_AREA, bar_chart


def test_bars_scale_to_the_largest_and_a_small_one_still_shows():
    chart = bar_chart("t", [("a", 1_000_000, "1"), ("b", 1, "2"), ("c", 0, "3"), ("d", -500_000, "4")])
    assert [bar.width for bar in chart.bars] == [BAR_AREA, 2, 0, BAR_AREA // 2]
    assert [bar.y for bar in chart.bars] == sorted({bar.y for bar in chart.bars})  # one row each


def test_a_chart_of_nothing_draws_no_bar():
    assert bar_chart("t", []).bars == ()
    assert [bar.width for bar in bar_chart("t", [("a", 0, "0")]).bars] == [0]


@pytest.mark.django_db
def test_a_provider_is_one_function(client, staff, monkeypatch):
    def payouts(window: sections.Window) -> sections.Section:
        chart = bar_chart("Payouts by rail", [("sepa", 3, "3"), ("ach", 1, "1")])
        figure = sections.Figure("Payouts, 24 h", "4", sections.BAD)
        return sections.Section("payouts", "Payouts", figures=(figure,), charts=(chart,))

    monkeypatch.setattr(sections, "SECTIONS", [*sections.SECTIONS, payouts])
    client.force_login(staff)
    html = client.get("/admin/ledger-overview/").content.decode()
    assert '<section class="dash-section module" id="section-payouts"' in html
    assert 'data-chart="Payouts by rail"' in html
    assert html.index('id="section-adjustments"') < html.index('id="section-payouts"')
