"""HTTP for wallets: open, list, read and rename.

A wallet's money (deposits, withdrawals, history) is served by transfers.api under the
same /wallets/{id}/ prefix.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from foundation.openapi import PAGE_EXAMPLES, parameter_examples, request_examples
from foundation.pagination import KeysetPagination
from foundation.routing import UUID_PATTERN, parse_uuid
from foundation.views import OneRoundTripMixin
from wallets import selectors, services
from wallets.serializers import WalletCreateSerializer, WalletSerializer, WalletUpdateSerializer, wallet_data

# A wallet's id in the examples of every operation on /wallets/{id} (this app's and transfers.api's).
EXAMPLE_WALLET_ID = "0b7e5b8e-3c0f-4d43-9a3e-1f6c2d8a7b91"
WALLET_ID_EXAMPLE = parameter_examples(OpenApiParameter.PATH, {"id": EXAMPLE_WALLET_ID})


class WalletPagination(KeysetPagination):
    ordering = ("-created_at", "-id")


class WalletViewSet(OneRoundTripMixin, viewsets.GenericViewSet):
    serializer_class = WalletSerializer
    pagination_class = WalletPagination
    lookup_value_regex = UUID_PATTERN

    @extend_schema(
        responses={200: WalletSerializer(many=True)},
        examples=parameter_examples(OpenApiParameter.QUERY, PAGE_EXAMPLES),
    )
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.wallet_list(owner_id=request.user.id))
        return self.get_paginated_response([wallet_data(wallet) for wallet in page])

    @extend_schema(
        request=WalletCreateSerializer,
        responses={201: WalletSerializer},
        examples=request_examples(wallet={"currency": "USD", "name": "main"}),
    )
    def create(self, request: Request) -> Response:
        serializer = WalletCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        wallet = services.wallet_create(owner_id=request.user.id, **serializer.validated_data)
        return Response(wallet_data(wallet), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: WalletSerializer}, examples=WALLET_ID_EXAMPLE)
    def retrieve(self, request: Request, pk: str) -> Response:
        wallet = selectors.wallet_get(wallet_id=parse_uuid(pk), owner_id=request.user.id)
        return Response(wallet_data(wallet))

    @extend_schema(
        request=WalletUpdateSerializer,
        responses={200: WalletSerializer},
        examples=[*request_examples(rename={"name": "holidays"}), *WALLET_ID_EXAMPLE],
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        """Rename a wallet. Only `name` can change; balance, owner, currency and status cannot."""
        serializer = WalletUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        wallet = services.wallet_update(
            wallet_id=parse_uuid(pk), owner_id=request.user.id, name=serializer.validated_data["name"]
        )
        return Response(wallet_data(wallet))
