"""Reading a user's refresh tokens in the auth tests."""

from __future__ import annotations

from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from users.models import User


def live_refresh_tokens(user: User) -> list[str]:
    """The user's refresh tokens that could still be redeemed, oldest first."""
    return list(
        OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
        .order_by("id")
        .values_list("token", flat=True)
    )
