"""GET /api/v1/events: the caller's events, the polling alternative to webhooks and the way
to catch up after an outage; GET /api/v1/events/{id}: one of them."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from events import selectors
from events.serializers import EventFilterSerializer, EventSerializer, event_data
from foundation.openapi import PAGE_EXAMPLES, parameter_examples, problem_responses
from foundation.pagination import KeysetPagination
from foundation.routing import UUID_PATTERN, parse_uuid
from foundation.views import OneRoundTripMixin


class NewestFirst(KeysetPagination):
    ordering = "-sequence"


class OldestFirst(KeysetPagination):
    """Forward from `after`: a client catching up reads in the order events happened."""

    ordering = "sequence"


def _unwired(*, wallet_id: UUID, owner_id: int) -> None:
    raise ImproperlyConfigured("EventViewSet.wallet_check is not wired (see events/urls.py)")


class EventViewSet(OneRoundTripMixin, viewsets.GenericViewSet):
    """The caller's events. Wallets are a layer above this app, so the check that a `wallet`
    filter names a wallet of the caller's (else 404, as every wallet filter of the API
    answers) is handed in where the routes are built: events.urls.event_routes."""

    wallet_check: Callable[..., None] = staticmethod(_unwired)
    serializer_class = EventSerializer
    lookup_value_regex = UUID_PATTERN
    pagination_class = NewestFirst

    @extend_schema(
        parameters=[EventFilterSerializer],
        responses={
            200: EventSerializer(many=True),
            **problem_responses({404: "`not_found`: `wallet` is no wallet of yours."}),
        },
        examples=parameter_examples(
            OpenApiParameter.QUERY,
            {
                "wallet": "0b7e5b8e-3c0f-4d43-9a3e-1f6c2d8a7b91",
                "type": "deposit.created",
                "after": 1041,
                **PAGE_EXAMPLES,
            },
        ),
    )
    def list(self, request: Request) -> Response:
        filters = EventFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        wallet_id = filters.validated_data.get("wallet")
        after = filters.validated_data.get("after")
        if wallet_id is not None:
            self.wallet_check(wallet_id=wallet_id, owner_id=request.user.id)
        events = selectors.event_list(
            user_id=request.user.id, wallet_id=wallet_id, type=filters.validated_data.get("type"), after=after
        )
        if after is not None:
            self._paginator = OldestFirst()
        page = self.paginate_queryset(events)
        return self.get_paginated_response([event_data(event) for event in page])

    @extend_schema(
        responses={200: EventSerializer, **problem_responses({404: "`not_found`: no such event of yours."})},
        examples=parameter_examples(OpenApiParameter.PATH, {"id": "9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b"}),
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(event_data(selectors.event_get(event_id=parse_uuid(pk), user_id=request.user.id)))
