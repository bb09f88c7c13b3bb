"""/api/v1/webhook-endpoints and /api/v1/webhook-endpoints/{id}[/rotate-secret]."""

from foundation.routing import OptionalSlashRouter
from webhooks.api import WebhookEndpointViewSet

router = OptionalSlashRouter()
router.register("webhook-endpoints", WebhookEndpointViewSet, basename="webhook-endpoint")
urlpatterns = router.urls
