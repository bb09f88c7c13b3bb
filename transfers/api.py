"""HTTP for transfers, plus the idempotent response helper the money endpoints share."""

from __future__ import annotations

import json
from collections.abc import Callable
from uuid import UUID

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from foundation.db_router import replica_reads
from foundation.errors import PROBLEM_CONTENT_TYPE
from foundation.openapi import problem_responses, request_examples
from foundation.pagination import KeysetPagination
from foundation.ratelimits import Quotas, UserQuota
from foundation.routing import UUID_PATTERN, parse_uuid
from foundation.tracing import movement_span
from transfers import selectors, services
from transfers.idempotency import (
    KEY_PATTERN,
    IdempotentRequest,
    execute_idempotent,
    normalize_path,
    request_hash,
    validate_key,
)
from transfers.models import Transfer
from transfers.quotas import MoneyQuota, WalletOutgoingQuota
from transfers.serializers import (
    TransferCreateSerializer,
    TransferFilterSerializer,
    TransferSerializer,
    transfer_data,
)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name="Idempotency-Key",
    type={"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN.pattern},
    location=OpenApiParameter.HEADER,
    required=True,
    description=(
        "1-255 printable ASCII characters, unique per request you mean to make. Retrying with the "
        "same key and body replays the first response (header Idempotent-Replayed: true)."
    ),
    examples=[OpenApiExample("A fresh key", value="3f1c9a52-8d4e-4b7a-9a61-2f0c5e7d9b10")],
)
# The problems every money-moving POST may answer, beyond those of its shape (foundation.openapi).
MONEY_PROBLEMS = {
    400: (
        "`validation_error`, `malformed_request`, or `idempotency_key_required` / "
        "`idempotency_key_invalid` (the Idempotency-Key header is missing / not 1-255 printable characters)."
    ),
    409: (
        "`wallet_not_active` (frozen or closed), `duplicate_reference` (with `original_transfer_id`), "
        "or `idempotency_key_in_use` (retry)."
    ),
    422: (
        "`insufficient_funds`, `currency_mismatch`, `same_wallet`, `balance_limit_exceeded`, or "
        "`idempotency_key_reused` (the key was used for a different request)."
    ),
    503: (
        "`rate_limit_unavailable` (money limits fail closed), `service_busy` (a wallet stayed locked) or "
        "`database_unavailable`: retry with the same key after Retry-After."
    ),
}
NOT_FOUND_WALLET = "`not_found`: no such wallet, or not yours."
NOT_FOUND_TRANSFER_WALLET = "`not_found`: no such source wallet of yours, or no such destination."

_renderer = JSONRenderer()


def render_json(data: object) -> bytes:
    return _renderer.render(data)


def require_idempotency_key(request: Request) -> str:
    return validate_key(request.headers.get("Idempotency-Key"))


def idempotent_response(
    request: Request,
    key: str,
    operation: Callable[[], tuple[int, bytes, UUID | None]],
    *,
    reference_wallet_id: UUID | None,
    reference: str | None,
    audit_details: dict | None = None,
) -> HttpResponse:
    """Run a validated money operation once per Idempotency-Key and answer with its stored outcome."""
    req = IdempotentRequest(
        user_id=request.user.id,
        key=key,
        method=request.method,
        path=normalize_path(request.path),
        request_hash=request_hash(request.data),
        reference_wallet_id=reference_wallet_id,
        reference=reference,
        audit_details=audit_details or {},
    )
    details = audit_details or {}
    kind = details.get("kind", "transfer")
    # Deposits come from, and withdrawals go to, the currency's system wallet.
    own_wallet = details.get("wallet_id")
    with movement_span(
        kind=kind,
        source_wallet_id=details.get("source_wallet_id") or (own_wallet if kind == "withdrawal" else None),
        destination_wallet_id=details.get("destination_wallet_id")
        or (own_wallet if kind == "deposit" else None),
        amount=details.get("amount", 0),
        currency=None,  # services add it once they know the wallets
    ) as movement:
        result = execute_idempotent(req, operation)
        content_type = PROBLEM_CONTENT_TYPE if result.status >= 400 else "application/json"
        response = HttpResponse(result.body, status=result.status, content_type=content_type)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
            outcome = "replayed"
        elif result.status < 400:
            outcome = "completed"
        else:
            outcome = json.loads(result.body).get("code", "failed")
        movement.set_outcome(outcome, result.status)
    return response


class TransferViewSet(viewsets.GenericViewSet):
    serializer_class = TransferSerializer
    pagination_class = KeysetPagination
    lookup_value_regex = UUID_PATTERN

    class Pagination(KeysetPagination):
        ordering = ("-created_at", "-id")

    pagination_class = Pagination

    def get_throttles(self) -> list:
        if self.action == "create":
            return [Quotas(UserQuota(), MoneyQuota(), WalletOutgoingQuota())]
        return super().get_throttles()

    @extend_schema(
        parameters=[
            OpenApiParameter("wallet", OpenApiTypes.UUID, description="Only this wallet's transfers."),
        ],
        responses={
            200: TransferSerializer(many=True),
            **problem_responses({404: "`not_found`: `wallet` is no wallet of yours."}),
        },
    )
    def list(self, request: Request) -> Response:
        filters = TransferFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = selectors.transfer_list(
            user_id=request.user.id, wallet_id=filters.validated_data.get("wallet")
        )
        with replica_reads(user_id=request.user.id):  # a non-critical list: the replica may serve it
            page = self.paginate_queryset(queryset)
            data = TransferSerializer(page, many=True).data
        return self.get_paginated_response(data)

    @extend_schema(responses={200: TransferSerializer})
    def retrieve(self, request: Request, pk: str) -> Response:
        transfer = selectors.transfer_get(transfer_id=parse_uuid(pk), user_id=request.user.id)
        return Response(TransferSerializer(transfer).data)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=TransferCreateSerializer,
        responses={
            201: TransferSerializer,
            **problem_responses({**MONEY_PROBLEMS, 404: NOT_FOUND_TRANSFER_WALLET}),
        },
        examples=request_examples(
            transfer={
                "source_wallet_id": "0b7e5b8e-3c0f-4d43-9a3e-1f6c2d8a7b91",
                "destination_wallet_id": "5d2f8c1a-6b4e-4f7d-8e2a-9c3b1a0d4e6f",
                "amount": 1000,
                "description": "lunch",
            },
            with_a_reference={
                "source_wallet_id": "0b7e5b8e-3c0f-4d43-9a3e-1f6c2d8a7b91",
                "destination_wallet_id": "5d2f8c1a-6b4e-4f7d-8e2a-9c3b1a0d4e6f",
                "amount": 1000,
                "reference": "invoice-2024-0042",
            },
        ),
    )
    def create(self, request: Request) -> HttpResponse:
        key = require_idempotency_key(request)
        serializer = TransferCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def operation() -> tuple[int, bytes, UUID | None]:
            transfer: Transfer = services.transfer_create(
                source_wallet_id=data["source_wallet_id"],
                destination_wallet_id=data["destination_wallet_id"],
                initiated_by_id=request.user.id,
                amount=data["amount"],
                reference=data.get("reference"),
                description=data["description"],
            )
            return 201, render_json(transfer_data(transfer)), transfer.id

        return idempotent_response(
            request,
            key,
            operation,
            reference_wallet_id=data["source_wallet_id"],
            reference=data.get("reference"),
            audit_details={
                "kind": "transfer",
                "amount": data["amount"],
                "source_wallet_id": data["source_wallet_id"],
                "destination_wallet_id": data["destination_wallet_id"],
            },
        )
