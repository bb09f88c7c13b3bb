"""The project's URLs: each app's API under /api/v1/, the schema and docs, probes, metrics, admin."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from events.urls import event_routes
from foundation.errors import api_not_found
from foundation.health import healthz, readyz
from foundation.metrics.view import metrics_view
from wallets.selectors import wallet_check_owner

urlpatterns = [
    path("api/v1/auth/", include("users.urls")),
    path("api/v1/", include("wallets.urls")),
    path("api/v1/", include("transfers.urls")),
    path("api/v1/", include(event_routes(wallet_check=wallet_check_owner))),
    path("api/v1/", include("webhooks.urls")),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    re_path(r"^healthz/?$", healthz, name="healthz"),
    re_path(r"^readyz/?$", readyz, name="readyz"),
    re_path(r"^metrics/?$", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # Unknown API paths answer problem+json even when DEBUG shows HTML 404 pages elsewhere.
    re_path(r"^api/", api_not_found),
]

handler400 = "foundation.errors.handler400"
handler403 = "foundation.errors.handler403"
handler404 = "foundation.errors.handler404"
handler500 = "foundation.errors.handler500"
