from events.api import EventViewSet
from foundation.routing import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("events", EventViewSet, basename="event")
urlpatterns = router.urls
