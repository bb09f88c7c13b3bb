"""The Ledger overview page. The admin site serves it behind admin_view (staff only)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.response import TemplateResponse

from dashboard.sections import Window, build


def ledger_overview(request: HttpRequest, *, admin_context: dict[str, Any]) -> TemplateResponse:
    window = Window()
    context = {
        **admin_context,
        "title": "Ledger overview",
        "window": window,
        "sections": build(window),
    }
    return TemplateResponse(request, "dashboard/ledger_overview.html", context)
