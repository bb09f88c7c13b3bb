from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from foundation.errors import api_not_found
from foundation.health import healthz, readyz
from foundation.metrics.view import metrics_view
from transfers.api import TransferViewSet
from users.api import LogoutView, MeView, RefreshView, RegisterView, TokenView
from wallets.api import WalletViewSet


class OptionalSlashRouter(SimpleRouter):
    """Every route answers with and without a trailing slash (no redirects)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("wallets", WalletViewSet, basename="wallet")
router.register("transfers", TransferViewSet, basename="transfer")

auth_patterns = [
    re_path(r"^register/?$", RegisterView.as_view(), name="register"),
    re_path(r"^token/?$", TokenView.as_view(), name="token"),
    re_path(r"^token/refresh/?$", RefreshView.as_view(), name="token-refresh"),
    re_path(r"^logout/?$", LogoutView.as_view(), name="logout"),
    re_path(r"^me/?$", MeView.as_view(), name="me"),
]

urlpatterns = [
    path("api/v1/auth/", include(auth_patterns)),
    path("api/v1/", include(router.urls)),
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
