"""URL plumbing shared by the apps' APIs: routes with an optional trailing slash, UUID ids."""

from __future__ import annotations

from uuid import UUID

from django.http import Http404
from rest_framework.routers import SimpleRouter

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def parse_uuid(value: str) -> UUID:
    """A path id as a UUID; anything else is a 404 (no such resource), never a 500."""
    try:
        return UUID(str(value))
    except ValueError:
        raise Http404 from None


class OptionalSlashRouter(SimpleRouter):
    """Every route answers with and without a trailing slash (no redirects)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
