from collections.abc import Callable

from django.urls import URLPattern

from events.api import EventViewSet
from foundation.routing import OptionalSlashRouter


def event_routes(*, wallet_check: Callable[..., None]) -> list[URLPattern]:
    """GET /events and /events/{id}, with `wallet_check(wallet_id=, owner_id=)` (raises
    WalletNotFound unless the wallet is the caller's) for the `wallet` filter. The project's
    urls.py wires in the wallets app's check: that app is a layer above this one."""
    router = OptionalSlashRouter()
    router.register(
        "events",
        type("EventViewSet", (EventViewSet,), {"wallet_check": staticmethod(wallet_check)}),
        basename="event",
    )
    return router.urls
