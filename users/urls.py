"""/api/v1/auth/: registration, tokens, logout and the current user."""

from django.urls import re_path

from users.api import LogoutView, MeView, RefreshView, RegisterView, TokenView

urlpatterns = [
    re_path(r"^register/?$", RegisterView.as_view(), name="register"),
    re_path(r"^token/?$", TokenView.as_view(), name="token"),
    re_path(r"^token/refresh/?$", RefreshView.as_view(), name="token-refresh"),
    re_path(r"^logout/?$", LogoutView.as_view(), name="logout"),
    re_path(r"^me/?$", MeView.as_view(), name="me"),
]
