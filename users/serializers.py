"""Request and response bodies of the auth endpoints (users.api)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from foundation.serializers import StrictCharField, StrictSerializer
from users.models import User


class RegisterSerializer(StrictSerializer):
    username = StrictCharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = serializers.EmailField(max_length=254)
    password = StrictCharField(write_only=True, max_length=128, trim_whitespace=False)


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email"]
        read_only_fields = fields


class MeSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email", "date_joined"]
        read_only_fields = fields


class RefreshTokenSerializer(StrictSerializer):
    refresh = StrictCharField()


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LoginSerializer(StrictSerializer):
    username = StrictCharField()
    # As registered: a password's spaces are part of it.
    password = StrictCharField(trim_whitespace=False)


def me_data(user: User) -> dict[str, Any]:
    """The current user as `GET auth/me` shows it (MeSerializer, without its per-call field building)."""
    return {"id": user.id, "username": user.username, "email": user.email, "date_joined": user.date_joined}
