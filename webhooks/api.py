"""/api/v1/webhook-endpoints: where your events are posted (docs/webhooks.md)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from foundation.openapi import PAGE_EXAMPLES, parameter_examples, problem_responses, request_examples
from foundation.pagination import KeysetPagination
from foundation.routing import UUID_PATTERN, parse_uuid
from foundation.views import OneRoundTripMixin
from webhooks import selectors, services
from webhooks.serializers import (
    DeliveryFilterSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
    WebhookEndpointWithSecretSerializer,
    delivery_data,
    endpoint_data,
)

URL_PROBLEMS = {
    422: "`webhook_url_forbidden`: the host resolves to a private, loopback, link-local or otherwise "
    "non-public address; `webhook_url_unresolvable`; `webhook_url_invalid`: a port out of range or a "
    "host that is no valid name.",
}
NOT_FOUND = {404: "`not_found`: no such endpoint of yours."}
ENDPOINT_ID_EXAMPLE = parameter_examples(
    OpenApiParameter.PATH, {"id": "d6f1e3b2-4c5a-4e8f-9b7d-2a1c3e5f7b90"}
)


class EndpointPagination(KeysetPagination):
    ordering = ("-created_at", "-id")


class DeliveryPagination(KeysetPagination):
    ordering = "-id"


class WebhookEndpointViewSet(OneRoundTripMixin, viewsets.GenericViewSet):
    serializer_class = WebhookEndpointSerializer
    pagination_class = EndpointPagination
    lookup_value_regex = UUID_PATTERN

    @extend_schema(
        responses={200: WebhookEndpointSerializer(many=True)},
        examples=parameter_examples(OpenApiParameter.QUERY, PAGE_EXAMPLES),
    )
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.endpoint_list(owner_id=request.user.id))
        return self.get_paginated_response([endpoint_data(endpoint) for endpoint in page])

    @extend_schema(
        request=WebhookEndpointCreateSerializer,
        responses={
            201: WebhookEndpointWithSecretSerializer,
            **problem_responses({**URL_PROBLEMS, 409: "`webhook_endpoint_limit`: delete an endpoint first."}),
        },
        examples=request_examples(
            endpoint={
                "url": "https://shop.example/hooks/wallet",
                "event_types": ["transfer.created", "deposit.created"],
                "description": "shop",
            }
        ),
    )
    def create(self, request: Request) -> Response:
        """A new endpoint. The answer holds its signing secret: the only time it is shown."""
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint, secret = services.endpoint_create(owner_id=request.user.id, **serializer.validated_data)
        return Response(endpoint_data(endpoint, secret), status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={200: WebhookEndpointSerializer, **problem_responses(NOT_FOUND)},
        examples=ENDPOINT_ID_EXAMPLE,
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        endpoint = selectors.endpoint_get(endpoint_id=parse_uuid(pk), owner_id=request.user.id)
        return Response(endpoint_data(endpoint))

    @extend_schema(
        request=WebhookEndpointUpdateSerializer,
        responses={200: WebhookEndpointSerializer, **problem_responses({**URL_PROBLEMS, **NOT_FOUND})},
        examples=[*request_examples(enable={"enabled": True}), *ENDPOINT_ID_EXAMPLE],
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change url, event_types, description or enabled."""
        serializer = WebhookEndpointUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(
            endpoint_id=parse_uuid(pk), owner_id=request.user.id, **serializer.validated_data
        )
        return Response(endpoint_data(endpoint))

    @extend_schema(
        request=None, responses={204: None, **problem_responses(NOT_FOUND)}, examples=ENDPOINT_ID_EXAMPLE
    )
    def destroy(self, request: Request, pk: str) -> Response:
        """Delete the endpoint: nothing more is sent to it; pending deliveries are cancelled."""
        services.endpoint_delete(endpoint_id=parse_uuid(pk), owner_id=request.user.id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={200: WebhookEndpointWithSecretSerializer, **problem_responses(NOT_FOUND)},
        examples=ENDPOINT_ID_EXAMPLE,
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        """A new signing secret, shown only now. For WEBHOOK_SECRET_ROTATION_GRACE_SECONDS
        (a day) deliveries carry signatures by both the new and the old secret."""
        endpoint, secret = services.endpoint_rotate_secret(
            endpoint_id=parse_uuid(pk), owner_id=request.user.id
        )
        return Response(endpoint_data(endpoint, secret))

    @extend_schema(
        parameters=[DeliveryFilterSerializer],
        responses={200: WebhookDeliverySerializer(many=True), **problem_responses(NOT_FOUND)},
        examples=[
            *ENDPOINT_ID_EXAMPLE,
            *parameter_examples(OpenApiParameter.QUERY, {"status": "failed", **PAGE_EXAMPLES}),
        ],
    )
    @action(detail=True, methods=["get"], url_path="deliveries", pagination_class=DeliveryPagination)
    def deliveries(self, request: Request, pk: str) -> Response:
        """The endpoint's deliveries, newest first, cursor-paginated; `status` narrows them
        (failed: what was given up; pending: what is being retried)."""
        filters = DeliveryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        deliveries = selectors.delivery_list(
            endpoint_id=parse_uuid(pk), owner_id=request.user.id, status=filters.validated_data.get("status")
        )
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response([delivery_data(delivery) for delivery in page])
