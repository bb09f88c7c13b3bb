"""HTTP for wallets: open, list, read, history, deposits and withdrawals."""

from __future__ import annotations

from uuid import UUID

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from foundation.db_router import replica_reads
from foundation.openapi import problem_responses, request_examples
from foundation.pagination import KeysetPagination
from foundation.ratelimits import Quotas, UserQuota
from foundation.routing import UUID_PATTERN, parse_uuid
from transfers import selectors as ledger_selectors
from transfers import services as ledger_services
from transfers.api import (
    IDEMPOTENCY_PARAMETER,
    MONEY_PROBLEMS,
    NOT_FOUND_WALLET,
    idempotent_response,
    render_json,
    require_idempotency_key,
)
from transfers.models import Transfer
from transfers.quotas import MoneyQuota, WalletOutgoingQuota
from transfers.serializers import (
    HistoryFilterSerializer,
    LedgerEntrySerializer,
    MovementResultSerializer,
    MovementSerializer,
    transfer_data,
)
from wallets import selectors, services
from wallets.serializers import WalletCreateSerializer, WalletSerializer, WalletUpdateSerializer, wallet_data

MOVEMENT_PROBLEMS = problem_responses({**MONEY_PROBLEMS, 404: NOT_FOUND_WALLET})


class WalletPagination(KeysetPagination):
    ordering = ("-created_at", "-id")


class HistoryPagination(KeysetPagination):
    # ORDER BY wallet_id, id DESC: exactly entry_wallet_id_idx (wallet_id, id DESC), so every
    # page reads that index, the last one included (transfers.selectors.wallet_history
    # pins wallet_id in a way the planner keeps in the ORDER BY). Cursors hold the id.
    ordering = "-id"
    ordering_prefix = ("wallet_id",)


class WalletViewSet(viewsets.GenericViewSet):
    serializer_class = WalletSerializer
    pagination_class = WalletPagination
    lookup_value_regex = UUID_PATTERN

    def get_throttles(self) -> list:
        if self.action == "deposits":
            return [Quotas(UserQuota(), MoneyQuota())]
        if self.action == "withdrawals":
            return [Quotas(UserQuota(), MoneyQuota(), WalletOutgoingQuota())]
        return super().get_throttles()

    @extend_schema(responses={200: WalletSerializer(many=True)})
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.wallet_list(owner_id=request.user.id))
        return self.get_paginated_response(WalletSerializer(page, many=True).data)

    @extend_schema(
        request=WalletCreateSerializer,
        responses={201: WalletSerializer},
        examples=request_examples(wallet={"currency": "USD", "name": "main"}),
    )
    def create(self, request: Request) -> Response:
        serializer = WalletCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        wallet = services.wallet_create(owner_id=request.user.id, **serializer.validated_data)
        return Response(WalletSerializer(wallet).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: WalletSerializer})
    def retrieve(self, request: Request, pk: str) -> Response:
        wallet = selectors.wallet_get(wallet_id=parse_uuid(pk), owner_id=request.user.id)
        return Response(WalletSerializer(wallet).data)

    @extend_schema(
        request=WalletUpdateSerializer,
        responses={200: WalletSerializer},
        examples=request_examples(rename={"name": "holidays"}),
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        """Rename a wallet. Only `name` can change; balance, owner, currency and status cannot."""
        serializer = WalletUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        wallet = services.wallet_update(
            wallet_id=parse_uuid(pk), owner_id=request.user.id, name=serializer.validated_data["name"]
        )
        return Response(WalletSerializer(wallet).data)

    @extend_schema(parameters=[HistoryFilterSerializer], responses={200: LedgerEntrySerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="transactions", pagination_class=HistoryPagination)
    def transactions(self, request: Request, pk: str) -> Response:
        filters = HistoryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        entries = ledger_selectors.wallet_history(
            wallet_id=parse_uuid(pk),
            owner_id=request.user.id,
            entry_type=filters.validated_data.get("type"),
            created_after=filters.validated_data.get("created_after"),
            created_before=filters.validated_data.get("created_before"),
        )
        with replica_reads(user_id=request.user.id):  # a non-critical list: the replica may serve it
            page = self.paginate_queryset(entries)
            data = LedgerEntrySerializer(page, many=True).data
        return self.get_paginated_response(data)

    def _movement(self, request: Request, pk: str, kind: str) -> HttpResponse:
        wallet_id = parse_uuid(pk)
        key = require_idempotency_key(request)
        serializer = MovementSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        service = ledger_services.deposit_create if kind == "deposit" else ledger_services.withdrawal_create

        def operation() -> tuple[int, bytes, UUID | None]:
            transfer: Transfer = service(
                wallet_id=wallet_id,
                owner_id=request.user.id,
                amount=data["amount"],
                reference=data.get("reference"),
                description=data["description"],
            )
            wallet = transfer.destination_wallet if kind == "deposit" else transfer.source_wallet
            body = {"transfer": transfer_data(transfer), "wallet": wallet_data(wallet)}
            return 201, render_json(body), transfer.id

        return idempotent_response(
            request,
            key,
            operation,
            reference_wallet_id=wallet_id,
            reference=data.get("reference"),
            audit_details={"kind": kind, "amount": data["amount"], "wallet_id": wallet_id},
        )

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=MovementSerializer,
        responses={201: MovementResultSerializer, **MOVEMENT_PROBLEMS},
        examples=request_examples(
            deposit={"amount": 2500, "description": "top-up"},
            with_a_reference={"amount": 2500, "reference": "topup-2024-0001"},
        ),
    )
    @action(detail=True, methods=["post"], url_path="deposits")
    def deposits(self, request: Request, pk: str) -> HttpResponse:
        return self._movement(request, pk, "deposit")

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=MovementSerializer,
        responses={201: MovementResultSerializer, **MOVEMENT_PROBLEMS},
        examples=request_examples(
            withdrawal={"amount": 500, "description": "cash"},
            with_a_reference={"amount": 500, "reference": "payout-2024-0001"},
        ),
    )
    @action(detail=True, methods=["post"], url_path="withdrawals")
    def withdrawals(self, request: Request, pk: str) -> HttpResponse:
        return self._movement(request, pk, "withdrawal")
