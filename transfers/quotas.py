"""The money endpoints' budgets (foundation.ratelimits): per user, and per source wallet."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from rest_framework.request import Request

from foundation.ratelimits import Quota, UserQuota


class MoneyQuota(UserQuota):
    """Money-moving POSTs, per user."""

    scope = "money"
    money = True


class WalletOutgoingQuota(Quota):
    """Outgoing transfers and withdrawals per source wallet, whichever client sends them."""

    scope = "wallet_outgoing"
    money = True

    def key(self, request: Request, view: Any, user_id: int | None) -> str | None:
        raw = view.kwargs.get("pk")
        if raw is None and isinstance(request.data, dict):
            raw = request.data.get("source_wallet_id")
        if not isinstance(raw, str):
            return None
        try:
            # Canonical form: every spelling UUID() accepts shares one counter.
            return f"w{UUID(raw)}"
        except ValueError:
            return None  # not a wallet id; validation answers 400
