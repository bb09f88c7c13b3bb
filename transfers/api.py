"""HTTP for money: transfers and their refunds, holds, and deposits, withdrawals, holds and
history under /wallets/{id}/.

Every money POST reads the same way: parse the body, describe the command (a `Movement`,
a `HoldCreate` or a `HoldVoid`), and hand it to the idempotency executor
(transfers.idempotency), which runs it at most once per Idempotency-Key and returns the
stored answer.
"""

from __future__ import annotations

import json

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from foundation.db_router import replica_reads
from foundation.errors import PROBLEM_CONTENT_TYPE
from foundation.openapi import PAGE_EXAMPLES, parameter_examples, problem_responses, request_examples
from foundation.pagination import KeysetPagination
from foundation.ratelimits import Quotas, UserQuota
from foundation.routing import UUID_PATTERN, parse_uuid
from foundation.tracing import movement_span
from foundation.views import OneRoundTripMixin
from transfers import reports, selectors
from transfers.holds import HoldCreate, capture_movement, hold_expiry, void_command
from transfers.idempotency import (
    CREATED,
    KEY_PATTERN,
    Command,
    IdempotentRequest,
    execute_idempotent,
    normalize_path,
    request_hash,
    validate_key,
)
from transfers.models import Transfer
from transfers.quotas import MoneyQuota, WalletOutgoingQuota
from transfers.rendering import hold_data, transfer_data
from transfers.serializers import (
    BalanceAtFilterSerializer,
    BalanceAtSerializer,
    HistoryFilterSerializer,
    HoldCaptureSerializer,
    HoldCreateSerializer,
    HoldFilterSerializer,
    HoldSerializer,
    HoldVoidSerializer,
    IdempotencyKeySerializer,
    LedgerEntrySerializer,
    MovementResultSerializer,
    MovementSerializer,
    RefundCreateSerializer,
    StatementFilterSerializer,
    StatementSerializer,
    TransferCreateSerializer,
    TransferFilterSerializer,
    TransferSerializer,
    balance_at_data,
    entry_data,
    idempotency_key_data,
    statement_csv,
    statement_data,
)
from transfers.services import Movement, refund_movement
from wallets.api import EXAMPLE_WALLET_ID, WALLET_ID_EXAMPLE

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
        "`wallet_not_active` (frozen or closed), `wallet_under_review` (an operator is checking it), "
        "`duplicate_reference` (with `original_transfer_id`), or `idempotency_key_in_use` (retry)."
    ),
    422: (
        "`insufficient_funds` (with `available`), `currency_mismatch`, `same_wallet`, "
        "`balance_limit_exceeded`, `limit_exceeded` (with `limit`, `max` and `remaining`), or "
        "`idempotency_key_reused` (the key was used for a different request)."
    ),
    503: (
        "`rate_limit_unavailable` (money limits fail closed), `service_busy` (a wallet stayed locked) or "
        "`database_unavailable`: retry with the same key after Retry-After."
    ),
}
# Path and query parameter examples (schemathesis's examples phase sends them; Swagger shows them).
EXAMPLE_TRANSFER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
EXAMPLE_HOLD_ID = "a3bb189e-8bf9-4888-9912-ace4e6543002"
TRANSFER_ID_EXAMPLE = parameter_examples(OpenApiParameter.PATH, {"id": EXAMPLE_TRANSFER_ID})
HOLD_ID_EXAMPLE = parameter_examples(OpenApiParameter.PATH, {"id": EXAMPLE_HOLD_ID})

NOT_FOUND_TRANSFER_WALLET = "`not_found`: no such source wallet of yours, or no such destination."

NOT_FOUND_WALLET = "`not_found`: no such wallet, or not yours."
MOVEMENT_PROBLEMS = problem_responses({**MONEY_PROBLEMS, 404: NOT_FOUND_WALLET})


def money_response(request: Request, key: str, movement: Command, *, status: int = CREATED) -> HttpResponse:
    """Run `movement` (any money command) once per Idempotency-Key and answer with its
    stored outcome (`status` when it succeeds).

    `key` is the request's validated Idempotency-Key (the views check it before the body,
    so a missing key is the first error reported). Reads top to bottom: the request the
    key is bound to, the executor (which calls the ledger and stores the answer), the
    HTTP response. The `money.<kind>` span describes the command and how it ended.
    """
    req = IdempotentRequest(
        user_id=request.user.id,
        key=key,
        method=request.method,
        path=normalize_path(request.path),
        request_hash=request_hash(request.data),
    )
    with movement_span(
        kind=movement.kind,
        source_wallet_id=movement.source_wallet_id,
        destination_wallet_id=movement.destination_wallet_id,
        amount=movement.amount,
    ) as span:
        result = execute_idempotent(req, movement, status=status)
        content_type = PROBLEM_CONTENT_TYPE if result.status >= 400 else "application/json"
        response = HttpResponse(result.body, status=result.status, content_type=content_type)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
            outcome = "replayed"
        elif result.status < 400:
            outcome = "completed"
        else:
            outcome = json.loads(result.body).get("code", "failed")
        span.set_outcome(outcome, result.status)
    return response


class TransferViewSet(OneRoundTripMixin, viewsets.GenericViewSet):
    serializer_class = TransferSerializer
    lookup_value_regex = UUID_PATTERN

    class Pagination(KeysetPagination):
        ordering = ("-created_at", "-id")

    pagination_class = Pagination

    def get_throttles(self) -> list:
        if self.action == "create":
            return [Quotas(UserQuota(), MoneyQuota(), WalletOutgoingQuota())]
        if self.action == "refunds" and self.request.method == "POST":
            return [Quotas(UserQuota(), MoneyQuota())]
        return super().get_throttles()

    @extend_schema(
        parameters=[
            OpenApiParameter("wallet", OpenApiTypes.UUID, description="Only this wallet's transfers."),
        ],
        responses={
            200: TransferSerializer(many=True),
            **problem_responses({404: "`not_found`: `wallet` is no wallet of yours."}),
        },
        examples=parameter_examples(OpenApiParameter.QUERY, {"wallet": EXAMPLE_WALLET_ID, **PAGE_EXAMPLES}),
    )
    def list(self, request: Request) -> Response:
        filters = TransferFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = selectors.transfer_list(
            user_id=request.user.id, wallet_id=filters.validated_data.get("wallet")
        )
        with replica_reads(user_id=request.user.id):  # a non-critical list: the replica may serve it
            page = self.paginate_queryset(queryset)
            data = [transfer_data(transfer) for transfer in page]
        return self.get_paginated_response(data)

    @extend_schema(responses={200: TransferSerializer}, examples=TRANSFER_ID_EXAMPLE)
    def retrieve(self, request: Request, pk: str) -> Response:
        transfer = selectors.transfer_get(transfer_id=parse_uuid(pk), user_id=request.user.id)
        return Response(transfer_data(transfer))

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
        key = validate_key(request.headers.get("Idempotency-Key"))
        serializer = TransferCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        movement = Movement(
            kind=Transfer.Kind.TRANSFER,
            own_wallet_id=data["source_wallet_id"],
            other_wallet_id=data["destination_wallet_id"],
            amount=data["amount"],
            initiated_by_id=request.user.id,
            reference=data.get("reference"),
            description=data["description"],
        )
        return money_response(request, key, movement)

    @extend_schema(
        methods=["GET"],
        responses={
            200: TransferSerializer(many=True),
            **problem_responses({404: "`not_found`: no such transfer involving your wallets."}),
        },
        description="The refunds of a transfer involving one of your wallets, newest first.",
        examples=TRANSFER_ID_EXAMPLE,
    )
    @extend_schema(
        methods=["POST"],
        parameters=[IDEMPOTENCY_PARAMETER],
        request=RefundCreateSerializer,
        responses={
            201: TransferSerializer,
            **problem_responses(
                {
                    **MONEY_PROBLEMS,
                    404: "`not_found`: no such transfer reached a wallet of yours.",
                    422: MONEY_PROBLEMS[422]
                    + " Also `refund_exceeds_transfer` (with `refundable`: what is left to refund) and "
                    "`transfer_not_refundable` (only transfers between wallets are refunded).",
                }
            ),
        },
        description=(
            "Return all or part of a transfer you received to its sender: a transfer of kind `refund` "
            "from your wallet (the original's destination) to the original's source. Refunds of one "
            "transfer never add up to more than it moved."
        ),
        examples=[
            *request_examples(
                partial_refund={"amount": 300, "reason": "one item out of stock"},
                full_refund={"reason": "order cancelled", "reference": "refund-order-1042"},
            ),
            *TRANSFER_ID_EXAMPLE,
        ],
    )
    @action(detail=True, methods=["get", "post"], url_path="refunds", pagination_class=None)
    def refunds(self, request: Request, pk: str) -> HttpResponse:
        transfer_id = parse_uuid(pk)
        if request.method == "GET":
            refunds = selectors.refund_list(transfer_id=transfer_id, user_id=request.user.id)
            return Response([transfer_data(refund) for refund in refunds.order_by("-created_at", "-id")])
        key = validate_key(request.headers.get("Idempotency-Key"))
        serializer = RefundCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        movement = refund_movement(
            transfer_id=transfer_id,
            user_id=request.user.id,
            amount=data.get("amount"),
            reason=data["reason"],
            reference=data.get("reference"),
        )
        return money_response(request, key, movement)


HOLD_PROBLEMS = {
    **MONEY_PROBLEMS,
    409: MONEY_PROBLEMS[409] + " Also `hold_not_pending` (with `hold_status`: captured, voided or expired).",
}


class HoldViewSet(OneRoundTripMixin, viewsets.GenericViewSet):
    """/holds: list and read holds on your wallets, capture or void one. A hold is created on
    its wallet: POST /wallets/{id}/holds (WalletMoneyViewSet)."""

    serializer_class = HoldSerializer
    lookup_value_regex = UUID_PATTERN

    class Pagination(KeysetPagination):
        ordering = ("-created_at", "-id")

    pagination_class = Pagination

    def get_throttles(self) -> list:
        if self.action in ("capture", "void"):
            return [Quotas(UserQuota(), MoneyQuota())]
        return super().get_throttles()

    @extend_schema(
        parameters=[HoldFilterSerializer],
        responses={
            200: HoldSerializer(many=True),
            **problem_responses({404: "`not_found`: `wallet` is no wallet of yours."}),
        },
        examples=parameter_examples(
            OpenApiParameter.QUERY, {"wallet": EXAMPLE_WALLET_ID, "status": "pending", **PAGE_EXAMPLES}
        ),
    )
    def list(self, request: Request) -> Response:
        filters = HoldFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        holds = selectors.hold_list(
            user_id=request.user.id,
            wallet_id=filters.validated_data.get("wallet"),
            status=filters.validated_data.get("status"),
        )
        page = self.paginate_queryset(holds)
        return self.get_paginated_response([hold_data(hold) for hold in page])

    @extend_schema(
        responses={200: HoldSerializer, **problem_responses({404: "`not_found`: no such hold of yours."})},
        examples=HOLD_ID_EXAMPLE,
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(hold_data(selectors.hold_get(hold_id=parse_uuid(pk), user_id=request.user.id)))

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=HoldCaptureSerializer,
        responses={
            200: HoldSerializer,
            **problem_responses(
                {
                    **HOLD_PROBLEMS,
                    404: "`not_found`: no such hold of yours, or no such destination wallet.",
                    422: HOLD_PROBLEMS[422] + " Also `capture_exceeds_hold` (with `hold_amount`).",
                }
            ),
        },
        description=(
            "Capture all or part of a pending hold: to `destination_wallet_id` (a transfer) or out of "
            "the service (a withdrawal). The rest of the hold is released; a hold is captured once. "
            "The answer is the hold, with `capture_transfer_id`."
        ),
        examples=[
            *request_examples(
                capture_part_to_a_wallet={
                    "amount": 700,
                    "destination_wallet_id": "5d2f8c1a-6b4e-4f7d-8e2a-9c3b1a0d4e6f",
                },
                capture_all_as_a_withdrawal={},
            ),
            *HOLD_ID_EXAMPLE,
        ],
    )
    @action(detail=True, methods=["post"], url_path="capture")
    def capture(self, request: Request, pk: str) -> HttpResponse:
        hold_id = parse_uuid(pk)
        key = validate_key(request.headers.get("Idempotency-Key"))
        serializer = HoldCaptureSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        movement = capture_movement(
            hold_id=hold_id,
            user_id=request.user.id,
            amount=data.get("amount"),
            destination_wallet_id=data.get("destination_wallet_id"),
            description=data.get("description"),
        )
        return money_response(request, key, movement, status=200)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=HoldVoidSerializer,
        responses={
            200: HoldSerializer,
            **problem_responses({**HOLD_PROBLEMS, 404: "`not_found`: no such hold of yours."}),
        },
        description="Release a pending hold in full. The answer is the hold, now `voided`.",
        examples=[*request_examples(void={}), *HOLD_ID_EXAMPLE],
    )
    @action(detail=True, methods=["post"], url_path="void")
    def void(self, request: Request, pk: str) -> HttpResponse:
        hold_id = parse_uuid(pk)
        key = validate_key(request.headers.get("Idempotency-Key"))
        HoldVoidSerializer(data=request.data).is_valid(raise_exception=True)
        return money_response(
            request, key, void_command(hold_id=hold_id, user_id=request.user.id), status=200
        )


def movement_schema(*, name: str, example: dict, reference: str):
    """The OpenAPI of a deposit or withdrawal: Idempotency-Key, body, answers, two examples."""
    return extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=MovementSerializer,
        responses={201: MovementResultSerializer, **MOVEMENT_PROBLEMS},
        examples=[
            *request_examples(
                **{name: example}, with_a_reference={"amount": example["amount"], "reference": reference}
            ),
            *WALLET_ID_EXAMPLE,
        ],
    )


class HistoryPagination(KeysetPagination):
    # ORDER BY wallet_id, id DESC: exactly entry_wallet_id_idx (wallet_id, id DESC), so every
    # page reads that index, the last one included (transfers.selectors.wallet_history
    # pins wallet_id in a way the planner keeps in the ORDER BY). Cursors hold the id.
    ordering = "-id"
    ordering_prefix = ("wallet_id",)


class StatementPagination(KeysetPagination):
    # Oldest first. ORDER BY wallet_id DESC, id: entry_wallet_id_idx (wallet_id, id DESC) read
    # backwards, as HistoryPagination reads it forwards (transfers.reports.statement_entries).
    ordering = "id"
    ordering_prefix = ("-wallet_id",)


class StatementCSVRenderer(BaseRenderer):
    """Lets content negotiation pick CSV for a statement (`Accept: text/csv` or
    `?format=csv`); the view then streams the body itself (statement_csv_response)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        # Never reached: WalletMoneyViewSet.finalize_response answers every Response (errors,
        # OPTIONS) in JSON, and a statement's CSV is a StreamingHttpResponse of its own.
        raise RuntimeError("a Response reached the CSV renderer; finalize_response answers it in JSON")


CSV_DESCRIPTION = (
    "The whole period, streamed (`Accept: text/csv` or `?format=csv`; `cursor` and `limit` do not "
    "apply). CSV with a header row and LF line ends; columns `record,entry_id,created_at,type,amount,"
    "balance_after,currency,transfer_id,reference,description`. The first record is `opening` "
    "(`created_at` = from, empty if none was given; `balance_after` = the opening balance), then one "
    "`entry` per ledger entry, oldest first, then `closing` (`created_at` = to; `balance_after` = the "
    "closing balance). Times are UTC with microseconds (`2026-12-02T09:00:00.000000Z`); amounts and "
    "balances are integers in minor units. A reference or description starting with = + - @ or a "
    "tab is prefixed with ' so spreadsheets do not run it. The figures are also in the headers "
    "Statement-Opening-Balance, Statement-Closing-Balance, Statement-Total-In, Statement-Total-Out, "
    "Statement-Count, Statement-Currency and Statement-Exponent."
)
STATEMENT_PARAMETERS = [
    StatementFilterSerializer,
    OpenApiParameter(
        "format",
        str,
        enum=["json", "csv"],
        description="`csv`: the whole period as CSV, like `Accept: text/csv`. Default: JSON.",
    ),
    OpenApiParameter(
        "cursor",
        str,
        description="JSON pages: opaque, from a page's `next` or `previous` link. Any other value is a 400.",
    ),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "default": KeysetPagination.page_size},
        description=(
            f"JSON pages: entries per page, 1-{KeysetPagination.max_page_size} (default "
            f"{KeysetPagination.page_size}); larger values are served as {KeysetPagination.max_page_size}."
        ),
    ),
]
STATEMENT_HEADERS = (
    ("Statement-Opening-Balance", "opening_balance"),
    ("Statement-Closing-Balance", "closing_balance"),
    ("Statement-Total-In", "total_in"),
    ("Statement-Total-Out", "total_out"),
    ("Statement-Count", "count"),
    ("Statement-Currency", "currency"),
    ("Statement-Exponent", "exponent"),
)


def statement_csv_response(statement: reports.Statement) -> StreamingHttpResponse:
    """The statement as CSV, streamed chunk by chunk (constant memory: statement_csv)."""
    response = StreamingHttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="statement-{statement.wallet_id}.csv"'
    for header, attribute in STATEMENT_HEADERS:
        response[header] = str(getattr(statement, attribute))
    return response


class WalletMoneyViewSet(OneRoundTripMixin, viewsets.GenericViewSet):
    """/wallets/{id}/deposits, /withdrawals and /transactions: a wallet's money, served by the
    app that moves it (the wallet itself is wallets.api.WalletViewSet)."""

    serializer_class = LedgerEntrySerializer
    lookup_value_regex = UUID_PATTERN

    def finalize_response(self, request: Request, response: HttpResponse, *args, **kwargs) -> HttpResponse:
        # Only a statement's body is ever CSV, and the view streams it itself. Anything else
        # answered where CSV was negotiated (OPTIONS' metadata) is JSON.
        if isinstance(response, Response) and isinstance(
            getattr(request, "accepted_renderer", None), StatementCSVRenderer
        ):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def get_throttles(self) -> list:
        if self.action == "deposits":
            return [Quotas(UserQuota(), MoneyQuota())]
        if self.action in ("withdrawals", "holds"):
            return [Quotas(UserQuota(), MoneyQuota(), WalletOutgoingQuota())]
        return super().get_throttles()

    @extend_schema(
        parameters=[HistoryFilterSerializer],
        responses={200: LedgerEntrySerializer(many=True)},
        examples=[
            *WALLET_ID_EXAMPLE,
            *parameter_examples(
                OpenApiParameter.QUERY,
                {
                    "type": "deposit",
                    "created_after": "2026-11-01T00:00:00Z",
                    "created_before": "2026-12-01T00:00:00Z",
                    **PAGE_EXAMPLES,
                },
            ),
        ],
    )
    @action(detail=True, methods=["get"], url_path="transactions", pagination_class=HistoryPagination)
    def transactions(self, request: Request, pk: str) -> Response:
        filters = HistoryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        entries = selectors.wallet_history(
            wallet_id=parse_uuid(pk),
            owner_id=request.user.id,
            entry_type=filters.validated_data.get("type"),
            created_after=filters.validated_data.get("created_after"),
            created_before=filters.validated_data.get("created_before"),
        )
        with replica_reads(user_id=request.user.id):  # a non-critical list: the replica may serve it
            page = self.paginate_queryset(entries)
            data = [entry_data(entry) for entry in page]
        return self.get_paginated_response(data)

    @extend_schema(
        parameters=[BalanceAtFilterSerializer],
        responses={200: BalanceAtSerializer, **problem_responses({404: NOT_FOUND_WALLET})},
        description=(
            "The wallet's balance and held amount at an instant, from the ledger: the balance after the "
            "wallet's last entry stamped at or before `at`, and the holds pending then. Before the first "
            "entry: 0. A future `at` is answered as of now."
        ),
        examples=[
            *WALLET_ID_EXAMPLE,
            *parameter_examples(OpenApiParameter.QUERY, {"at": "2026-12-01T00:00:00Z"}),
        ],
    )
    @action(detail=True, methods=["get"], url_path="balance")
    def balance(self, request: Request, pk: str) -> Response:
        filters = BalanceAtFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        found = reports.balance_at(
            wallet_id=parse_uuid(pk), owner_id=request.user.id, at=filters.validated_data.get("at")
        )
        return Response(balance_at_data(found))

    @extend_schema(
        parameters=STATEMENT_PARAMETERS,
        responses={
            (200, "application/json"): StatementSerializer,
            (200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR, description=CSV_DESCRIPTION),
            **problem_responses({404: NOT_FOUND_WALLET}),
        },
        description=(
            "The wallet's statement for the period [from, to): opening and closing balance, total in, "
            "total out and count, in minor units of the wallet's currency (with its exponent), and the "
            "period's entries, oldest first, a page at a time. opening_balance + total_in - total_out = "
            "closing_balance. As CSV, the whole period in one streamed download."
        ),
        examples=[
            *WALLET_ID_EXAMPLE,
            *parameter_examples(
                OpenApiParameter.QUERY,
                {
                    "from": "2026-11-01T00:00:00Z",
                    "to": "2026-12-01T00:00:00Z",
                    "format": "json",
                    **PAGE_EXAMPLES,
                },
            ),
        ],
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="statement",
        pagination_class=StatementPagination,
        renderer_classes=[JSONRenderer, StatementCSVRenderer],
    )
    def statement(self, request: Request, pk: str) -> HttpResponse:
        filters = StatementFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        statement = reports.statement_get(
            wallet_id=parse_uuid(pk),
            owner_id=request.user.id,
            period_from=filters.validated_data.get("from"),
            period_to=filters.validated_data.get("to"),
        )
        if request.accepted_renderer.format == StatementCSVRenderer.format:
            return statement_csv_response(statement)
        page = self.paginate_queryset(reports.statement_entries(statement))
        return Response(
            {
                **statement_data(statement),
                "next": self.paginator.get_next_link(),
                "previous": self.paginator.get_previous_link(),
                "results": [entry_data(entry) for entry in page],
            }
        )

    @movement_schema(
        name="deposit", example={"amount": 2500, "description": "top-up"}, reference="topup-2024-0001"
    )
    @action(detail=True, methods=["post"], url_path="deposits")
    def deposits(self, request: Request, pk: str) -> HttpResponse:
        return self._own_wallet_movement(request, pk, Transfer.Kind.DEPOSIT)

    @movement_schema(
        name="withdrawal", example={"amount": 500, "description": "cash"}, reference="payout-2024-0001"
    )
    @action(detail=True, methods=["post"], url_path="withdrawals")
    def withdrawals(self, request: Request, pk: str) -> HttpResponse:
        return self._own_wallet_movement(request, pk, Transfer.Kind.WITHDRAWAL)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=HoldCreateSerializer,
        responses={
            201: HoldSerializer,
            **problem_responses(
                {
                    **MONEY_PROBLEMS,
                    404: NOT_FOUND_WALLET,
                    409: MONEY_PROBLEMS[409].replace("original_transfer_id", "original_hold_id"),
                }
            ),
        },
        description=(
            "Reserve money on your wallet: it stays in the balance but leaves `available` until the "
            "hold is captured (POST /holds/{id}/capture), voided (POST /holds/{id}/void) or expires "
            "(`expires_at`; default HOLD_DEFAULT_SECONDS, at most HOLD_MAX_SECONDS)."
        ),
        examples=[
            *request_examples(
                hold={"amount": 1000, "expires_in_seconds": 3600, "reference": "order-1042"},
                default_lifetime={"amount": 1000, "description": "hotel deposit"},
            ),
            *WALLET_ID_EXAMPLE,
        ],
    )
    @action(detail=True, methods=["post"], url_path="holds")
    def holds(self, request: Request, pk: str) -> HttpResponse:
        wallet_id = parse_uuid(pk)
        key = validate_key(request.headers.get("Idempotency-Key"))
        serializer = HoldCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        command = HoldCreate(
            wallet_id=wallet_id,
            amount=data["amount"],
            expires_at=hold_expiry(
                expires_at=data.get("expires_at"),
                expires_in_seconds=data.get("expires_in_seconds"),
                now=timezone.now(),
            ),
            initiated_by_id=request.user.id,
            reference=data.get("reference"),
            description=data["description"],
        )
        return money_response(request, key, command)

    @staticmethod
    def _own_wallet_movement(request: Request, pk: str, kind: Transfer.Kind) -> HttpResponse:
        wallet_id = parse_uuid(pk)
        key = validate_key(request.headers.get("Idempotency-Key"))
        serializer = MovementSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        movement = Movement(
            kind=kind,
            own_wallet_id=wallet_id,
            other_wallet_id=None,
            amount=data["amount"],
            initiated_by_id=request.user.id,
            reference=data.get("reference"),
            description=data["description"],
        )
        return money_response(request, key, movement)


IDEMPOTENCY_KEY_PATH_PARAMETER = OpenApiParameter(
    name="key",
    type={"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN.pattern},
    location=OpenApiParameter.PATH,
    description="The Idempotency-Key you sent, percent-encoded (1-255 printable ASCII characters).",
    examples=[OpenApiExample("A key you sent", value="3f1c9a52-8d4e-4b7a-9a61-2f0c5e7d9b10")],
)


class IdempotencyKeyView(OneRoundTripMixin, generics.GenericAPIView):
    """/idempotency-keys/{key}: what became of your request with this Idempotency-Key."""

    serializer_class = IdempotencyKeySerializer

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY_PATH_PARAMETER],
        responses={
            200: IdempotencyKeySerializer,
            **problem_responses({400: "`idempotency_key_invalid`: not 1-255 printable ASCII characters."}),
        },
        description=(
            "Whether your money request sent with this Idempotency-Key completed (with its stored status "
            "and a link to the transfer or hold), is still in progress, or is unknown. A client whose "
            "connection dropped learns the outcome without sending the request again. A key of another "
            "user's is `unknown`, exactly like a key never used."
        ),
        operation_id="v1_idempotency_keys_retrieve",
    )
    def get(self, request: Request, key: str) -> Response:
        found = reports.idempotency_key_lookup(user_id=request.user.id, key=validate_key(key))
        return Response(idempotency_key_data(found))
