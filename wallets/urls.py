"""/api/v1/wallets and /api/v1/wallets/{id}: the wallets themselves."""

from foundation.routing import OptionalSlashRouter
from wallets.api import WalletViewSet

router = OptionalSlashRouter()
router.register("wallets", WalletViewSet, basename="wallet")
urlpatterns = router.urls
