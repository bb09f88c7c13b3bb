"""Registration, JWT tokens, logout and the current user."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from foundation.openapi import problem_responses, request_examples
from foundation.ratelimits import AnonQuota
from foundation.views import OneRoundTripMixin
from users.serializers import (
    LoginSerializer,
    MeSerializer,
    RefreshTokenSerializer,
    RegisterSerializer,
    TokenPairSerializer,
    UserSerializer,
    me_data,
)
from users.services import token_pair, token_refresh, token_revoke, user_create, user_login


class PublicView(APIView):
    """An endpoint reached without a token; a bad credential is still a 401, not a 403."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AnonQuota]

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


# The password of Swagger's example requests (no account's credential).
EXAMPLE_WORDS = "correct-horse-42"
REFRESH_REFUSED = "`not_authenticated`: the refresh token is malformed, expired, blacklisted or already used."


class RegisterView(PublicView):
    @extend_schema(
        request=RegisterSerializer,
        responses={201: UserSerializer},
        examples=request_examples(
            registration={"username": "alice", "email": "alice@example.com", "password": EXAMPLE_WORDS}
        ),
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_create(**serializer.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class MeView(OneRoundTripMixin, APIView):
    @extend_schema(responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        return Response(me_data(request.user))


class RefreshView(PublicView):
    """Redeem a refresh token once: a new pair, the old refresh token blacklisted (rotation)."""

    @extend_schema(
        request=RefreshTokenSerializer,
        responses={200: TokenPairSerializer, **problem_responses({401: REFRESH_REFUSED})},
        examples=request_examples(refresh={"refresh": "<the refresh token from auth/token>"}),
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            pair = token_refresh(refresh=serializer.validated_data["refresh"])
        except TokenError as exc:
            raise InvalidToken(str(exc)) from None
        return Response(pair, status=status.HTTP_200_OK)


class TokenView(PublicView):
    """Log in. Failures count against per-IP and per-username budgets (LoginGuard); both are audited."""

    @extend_schema(
        request=LoginSerializer,
        responses={
            200: TokenPairSerializer,
            **problem_responses(
                {
                    401: "`not_authenticated`: wrong username or password.",
                    429: "`rate_limited`: too many requests, or failed logins for this IP or username.",
                }
            ),
        },
        examples=request_examples(login={"username": "alice", "password": EXAMPLE_WORDS}),
    )
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_login(request=request, **serializer.validated_data)
        if user is None:
            raise AuthenticationFailed("No active account found with the given credentials")
        return Response(token_pair(user=user), status=status.HTTP_200_OK)


class LogoutView(PublicView):
    """Blacklist a refresh token. Possession of the token is the proof needed."""

    @extend_schema(
        request=RefreshTokenSerializer,
        responses={
            205: OpenApiResponse(description="Logged out: the refresh token is blacklisted. No body."),
            **problem_responses({401: REFRESH_REFUSED}),
        },
        examples=request_examples(logout={"refresh": "<the refresh token from auth/token>"}),
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token_revoke(refresh=serializer.validated_data["refresh"])
        except TokenError as exc:
            raise InvalidToken(str(exc)) from None
        return Response(status=status.HTTP_205_RESET_CONTENT)
