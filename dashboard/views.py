"""The Ledger overview page. The admin site serves it behind admin_view (staff only)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest
from django.template.response import TemplateResponse

from dashboard.rollup import rollup
from dashboard.sections import Window, build


@contextmanager
def one_snapshot() -> Iterator[None]:
    """Every read inside sees the database at one instant (REPEATABLE READ, read only), so
    the sections agree with each other and the rolled-up mark with the totals it marks.
    Inside a transaction already (a test's), the reads join it."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def ledger_overview(request: HttpRequest, *, admin_context: dict[str, Any]) -> TemplateResponse:
    window = Window()
    rollup(now=window.now)
    with one_snapshot():
        sections = build(window)
    context = {**admin_context, "title": "Ledger overview", "window": window, "sections": sections}
    return TemplateResponse(request, "dashboard/ledger_overview.html", context)
