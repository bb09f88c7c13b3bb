"""The OpenAPI document, made to describe the server exactly.

drf-spectacular derives most of the schema from the views and serializers. This
module adds what it cannot see:

- the problem+json error responses (`Problem`), declared per operation with
  `problem_responses()` for business errors, and by `postprocess_schema` for the
  errors every operation of a given shape answers (401 with a token required,
  400/413/415 with a body, 404 with a path id, 406, 429 and 503 everywhere);
- strict request bodies (`additionalProperties: false` for `StrictSerializer`),
  amount bounds from settings, and what every text field refuses (NUL; whitespace
  alone where a blank is refused);
- OpenAPI links from the operations that create a resource to those that read or
  use it, for clients and for stateful testing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from foundation.errors import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "An RFC 9457 problem. `code` is stable and machine-readable (see the README's "
        "Errors table); extra members depend on the code."
    ),
    "properties": {
        "type": {"type": "string", "format": "uri", "example": PROBLEM_TYPE_BASE + "insufficient_funds"},
        "title": {"type": "string", "example": "Insufficient funds"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "example": 422},
        "detail": {"type": "string", "example": "The source balance does not cover the amount."},
        "code": {"type": "string", "example": "insufficient_funds"},
        "instance": {"type": "string"},
        "errors": {
            "type": "object",
            "description": "`validation_error` only: the messages for each field.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "original_transfer_id": {
            "type": "string",
            "format": "uuid",
            "description": "`duplicate_reference` only: the transfer that holds the reference.",
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
}

RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
WWW_AUTHENTICATE_HEADER = {
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with.",
        "required": True,
        "schema": {"type": "string", "example": 'Bearer realm="api"'},
    }
}
IDEMPOTENT_REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "Present on a repeat of a finished request: this is the stored response.",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    }
}
HEADERS_BY_STATUS = {"401": WWW_AUTHENTICATE_HEADER, "429": RETRY_AFTER_HEADER, "503": RETRY_AFTER_HEADER}

# What every operation of a given shape may answer, whatever it does.
AUTHENTICATION = "`not_authenticated`: no bearer token, or a malformed, expired or blacklisted one."
BAD_INPUT = "`validation_error` (a field is missing, malformed or not allowed) or `malformed_request`."
NOT_FOUND = "`not_found`: no such resource, or not yours."
TOO_LARGE = "`payload_too_large`: the body is over API_MAX_BODY_BYTES."
UNSUPPORTED_MEDIA_TYPE = "`unsupported_media_type`: the body is not `application/json`."
NOT_ACCEPTABLE = "`not_acceptable`: the Accept header rules out JSON."
RATE_LIMITED = "`rate_limited`: over a quota; retry after Retry-After seconds."
UNAVAILABLE = (
    "`database_unavailable` or `rate_limit_unavailable` (where limits fail closed): retry after Retry-After."
)


def problem_responses(descriptions: Mapping[int, str]) -> dict[tuple[int, str], OpenApiResponse]:
    """`extend_schema(responses=...)` entries: {status: its codes and when} -> problem+json responses."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(response=PROBLEM_REF, description=description)
        for status, description in descriptions.items()
    }


def request_examples(**examples: dict[str, Any]) -> list[OpenApiExample]:
    """Named request-body examples for Swagger UI (and the example phase of contract tests)."""
    return [
        OpenApiExample(name.replace("_", " ").capitalize(), value=value, request_only=True)
        for name, value in examples.items()
    ]


def parameter_examples(location: str, values: Mapping[str, Any]) -> list[OpenApiExample]:
    """`extend_schema(examples=...)` entries for parameters drf-spectacular finds itself (a path's
    id, a filter serializer's fields, pagination): one example each, their schema left as found.

    `location` is OpenApiParameter.PATH or .QUERY; `values` maps each parameter's name to a value
    its schema accepts (wallet_project/tests/test_openapi.py checks every one).
    """
    return [
        OpenApiExample(name.replace("_", " ").capitalize(), value=value, parameter_only=(name, location))
        for name, value in values.items()
    ]


# The cursor of a first page (DRF's "o=0", base64): the one cursor valid for every list before
# the server has minted any. A cursor's real source is a page's `next` or `previous` link.
FIRST_PAGE_CURSOR = "bz0w"
PAGE_EXAMPLES = {"cursor": FIRST_PAGE_CURSOR, "limit": 20}


# --- extensions: what drf-spectacular cannot infer from a field or serializer ----------------


class StrictSerializerExtension(OpenApiSerializerExtension):
    """A StrictSerializer refuses undeclared fields with 400: say so with additionalProperties."""

    target_class = "foundation.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        # bypass_extensions: map the serializer as drf-spectacular would, then tighten it
        # (the pattern drf-spectacular's own contrib extensions use).
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


class AmountFieldExtension(OpenApiSerializerFieldExtension):
    """AmountField accepts JSON integers from 1 to settings.MAX_MOVEMENT_AMOUNT."""

    target_class = "foundation.serializers.AmountField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer", "format": "int64", "example": 2500}
        if direction == "request":
            schema.update(minimum=1, maximum=settings.MAX_MOVEMENT_AMOUNT)
        return schema


# DRF's CharField refuses NUL (ProhibitNullCharactersValidator; PostgreSQL could not
# store it anyway) and, where it trims and allows no blank, a value that is whitespace
# alone. That whitespace is str.strip()'s, spelled out so that every regex dialect
# (ECMA, Python, Rust) reads the same set. Patterns are ECMA-262, as OpenAPI's are.
WHITESPACE = "\\t-\\r\\u001c- \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
NO_NUL_PATTERN = "^[^\\u0000]*$"
NOT_BLANK_PATTERN = f"^[^\\u0000]*[^\\u0000{WHITESPACE}][^\\u0000]*$"


class CharFieldExtension(OpenApiSerializerFieldExtension):
    """What a CharField refuses beyond its lengths: NUL, and whitespace alone where blank is refused."""

    target_class = "rest_framework.fields.CharField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        has_own_rule = {"format", "enum", "pattern"} & set(schema) or any(
            isinstance(validator, RegexValidator) for validator in field.validators
        )
        if direction == "request" and not has_own_rule:
            blank_refused = field.trim_whitespace and not field.allow_blank
            schema["pattern"] = NOT_BLANK_PATTERN if blank_refused else NO_NUL_PATTERN
        return schema


# --- the postprocessing hook -------------------------------------------------------------------

HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")


def _link(operation_id: str, **expressions: str) -> dict[str, Any]:
    """A link to `operation_id`: parameters (or `requestBody` fields) from runtime expressions."""
    body = expressions.pop("body", None)
    link: dict[str, Any] = {"operationId": operation_id}
    if expressions:
        link["parameters"] = expressions
    if body is not None:
        link["requestBody"] = body
    return link


CREATED_ID = "$response.body#/id"  # the id of what the response is (a wallet, transfer, hold, endpoint)
MOVED_WALLET_ID = "$response.body#/wallet/id"
MOVEMENT_ID = "$response.body#/transfer/id"
REFRESH_TOKEN = {"refresh": "$response.body#/refresh"}
SENT_KEY = "$request.header.Idempotency-Key"  # what became of the request: GET /idempotency-keys/{key}


def _wallet_links(wallet_id: str) -> dict[str, dict[str, Any]]:
    """From a wallet to everything done on it or read about it."""
    return {
        "GetWallet": _link("v1_wallets_retrieve", id=wallet_id),
        "RenameWallet": _link("v1_wallets_partial_update", id=wallet_id),
        "DepositIntoWallet": _link("v1_wallets_deposits_create", id=wallet_id),
        "WithdrawFromWallet": _link("v1_wallets_withdrawals_create", id=wallet_id),
        "HoldOnWallet": _link("v1_wallets_holds_create", id=wallet_id),
        "WalletHistory": _link("v1_wallets_transactions_list", id=wallet_id),
        "WalletBalance": _link("v1_wallets_balance_retrieve", id=wallet_id),
        "WalletStatement": _link("v1_wallets_statement_retrieve", id=wallet_id),
        "WalletTransfers": _link("v1_transfers_list", wallet=wallet_id),
        "WalletHolds": _link("v1_holds_list", wallet=wallet_id),
        "WalletEvents": _link("v1_events_list", wallet=wallet_id),
    }


def _transfer_links(transfer_id: str) -> dict[str, dict[str, Any]]:
    """From a transfer (or refund) to reading it and to its refunds."""
    return {
        "GetTransfer": _link("v1_transfers_retrieve", id=transfer_id),
        "RefundTransfer": _link("v1_transfers_refunds_create", id=transfer_id),
        "TransferRefunds": _link("v1_transfers_refunds_retrieve", id=transfer_id),
    }


def _hold_links(hold_id: str) -> dict[str, dict[str, Any]]:
    return {
        "GetHold": _link("v1_holds_retrieve", id=hold_id),
        "CaptureHold": _link("v1_holds_capture_create", id=hold_id),
        "VoidHold": _link("v1_holds_void_create", id=hold_id),
    }


def _endpoint_links(endpoint_id: str) -> dict[str, dict[str, Any]]:
    return {
        "GetWebhookEndpoint": _link("v1_webhook_endpoints_retrieve", id=endpoint_id),
        "ChangeWebhookEndpoint": _link("v1_webhook_endpoints_partial_update", id=endpoint_id),
        "RotateWebhookSecret": _link("v1_webhook_endpoints_rotate_secret_create", id=endpoint_id),
        "WebhookDeliveries": _link("v1_webhook_endpoints_deliveries_retrieve", id=endpoint_id),
        "DeleteWebhookEndpoint": _link("v1_webhook_endpoints_destroy", id=endpoint_id),
    }


OUTCOME = {"RequestOutcome": _link("v1_idempotency_keys_retrieve", key=SENT_KEY)}

# (operationId, status) -> links from that response to the operations that use what it made
# (wallet_project/tests/test_openapi.py: every operation with a path parameter is the target of
# one). An event's id is in no response but a page of events: schemathesis infers that link
# itself (`results/*/id`), where a link to a page's first item fails on every empty page.
LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("v1_wallets_create", "201"): _wallet_links(CREATED_ID),
    ("v1_wallets_deposits_create", "201"): {
        "GetTransfer": _link("v1_transfers_retrieve", id=MOVEMENT_ID),
        **_wallet_links(MOVED_WALLET_ID),
        # A wallet with money in it: the source of a transfer (and so of a refund).
        "TransferFromWallet": _link("v1_transfers_create", body={"source_wallet_id": MOVED_WALLET_ID}),
        **OUTCOME,
    },
    ("v1_wallets_withdrawals_create", "201"): {
        "GetTransfer": _link("v1_transfers_retrieve", id=MOVEMENT_ID),
        "GetWallet": _link("v1_wallets_retrieve", id=MOVED_WALLET_ID),
        **OUTCOME,
    },
    ("v1_wallets_holds_create", "201"): {
        **_hold_links(CREATED_ID),
        "GetWallet": _link("v1_wallets_retrieve", id="$response.body#/wallet_id"),
        **OUTCOME,
    },
    ("v1_holds_capture_create", "200"): {
        "GetHold": _link("v1_holds_retrieve", id=CREATED_ID),
        # The transfer or withdrawal the capture made (a hold captured once has one).
        "GetCaptureTransfer": _link("v1_transfers_retrieve", id="$response.body#/capture_transfer_id"),
        **OUTCOME,
    },
    ("v1_holds_void_create", "200"): {"GetHold": _link("v1_holds_retrieve", id=CREATED_ID), **OUTCOME},
    ("v1_transfers_create", "201"): {
        **_transfer_links(CREATED_ID),
        "GetSourceWallet": _link("v1_wallets_retrieve", id="$response.body#/source_wallet_id"),
        **OUTCOME,
    },
    ("v1_transfers_refunds_create", "201"): {
        "GetRefund": _link("v1_transfers_retrieve", id=CREATED_ID),
        "OriginalRefunds": _link("v1_transfers_refunds_retrieve", id="$response.body#/refund_of"),
        **OUTCOME,
    },
    # Register, log in with what was registered, refresh (each refresh token works once), log out.
    ("v1_auth_register_create", "201"): {
        "LogIn": _link(
            "v1_auth_token_create",
            body={field: f"$request.body#/{field}" for field in ("username", "password")},
        )
    },
    ("v1_auth_token_create", "200"): {
        "RefreshTokens": _link("v1_auth_token_refresh_create", body=REFRESH_TOKEN),
        "LogOut": _link("v1_auth_logout_create", body=REFRESH_TOKEN),
    },
    ("v1_auth_token_refresh_create", "200"): {
        "RefreshTokens": _link("v1_auth_token_refresh_create", body=REFRESH_TOKEN),
        "LogOut": _link("v1_auth_logout_create", body=REFRESH_TOKEN),
    },
    ("v1_webhook_endpoints_create", "201"): _endpoint_links(CREATED_ID),
    ("v1_webhook_endpoints_partial_update", "200"): _endpoint_links(CREATED_ID),
    ("v1_webhook_endpoints_rotate_secret_create", "200"): _endpoint_links(CREATED_ID),
}


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for item in schema.get("paths", {}).values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def _shared_problems(operation: dict[str, Any]) -> dict[str, str]:
    """The problems an operation answers because of its shape, not its business rules."""
    parameters = operation.get("parameters", [])
    locations = {parameter["in"] for parameter in parameters}
    secured = any("jwtAuth" in requirement for requirement in operation.get("security", []))
    has_body = "requestBody" in operation
    shared = {}
    if has_body or "query" in locations:
        shared["400"] = BAD_INPUT
    if secured:
        shared["401"] = AUTHENTICATION
    if "path" in locations:
        shared["404"] = NOT_FOUND
    shared["406"] = NOT_ACCEPTABLE
    if has_body:
        shared["413"] = TOO_LARGE
        shared["415"] = UNSUPPORTED_MEDIA_TYPE
    shared["429"] = RATE_LIMITED
    shared["503"] = UNAVAILABLE
    return shared


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": dict(PROBLEM_REF)}}}


def postprocess_schema(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry: problems, their response headers, and links."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    by_id = {}
    for operation in _operations(result):
        by_id[operation["operationId"]] = operation
        responses = operation["responses"]
        for status, description in _shared_problems(operation).items():
            responses.setdefault(status, _problem(description))
        for status, response in responses.items():
            if status in HEADERS_BY_STATUS:
                response.setdefault("headers", {}).update(HEADERS_BY_STATUS[status])
        idempotent = any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
        if idempotent and "201" in responses:
            responses["201"].setdefault("headers", {}).update(IDEMPOTENT_REPLAYED_HEADER)
        operation["responses"] = dict(sorted(responses.items()))
    for (operation_id, status), links in LINKS.items():
        missing = ({operation_id} | {link["operationId"] for link in links.values()}) - set(by_id)
        if missing:  # an operationId changed: fail loudly rather than publish dead links
            raise ValueError(f"OpenAPI links name unknown operations: {sorted(missing)}")
        by_id[operation_id]["responses"][status]["links"] = links
    return result
