"""Shared API plumbing: strict serializers, money fields, pagination, id lookups."""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.http import Http404
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# \Z, not $: Python's $ also matches before a final newline. drf-spectacular turns this
# validator into the schema's `pattern` (with the ECMA anchor $).
PRINTABLE = RegexValidator(r"^[\x20-\x7e]+\Z", "Reference must be printable ASCII characters.")


def parse_uuid(value: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise Http404 from None


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not declare (no silent mass assignment)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise ValidationError({name: ["This field is not allowed."] for name in unknown})
        return super().to_internal_value(data)


class AmountField(serializers.Field):
    """A positive whole number of minor units.

    Only JSON integers are accepted: no strings, floats (even 10.0), booleans or
    null, and nothing above settings.MAX_MOVEMENT_AMOUNT. Its schema comes from
    wallet_project.openapi.AmountFieldExtension.
    """

    default_error_messages = {
        "invalid": "Amount must be a JSON integer number of minor units.",
        "min_value": "Amount must be greater than zero.",
        "max_value": "Amount must not exceed {max_value}.",
    }

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        if data <= 0:
            self.fail("min_value")
        if data > settings.MAX_MOVEMENT_AMOUNT:
            self.fail("max_value", max_value=settings.MAX_MOVEMENT_AMOUNT)
        return data

    def to_representation(self, value: int) -> int:
        return value


class ReferenceField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("max_length", 128)
        kwargs.setdefault("min_length", 1)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault(
            "help_text", "Your own reference, unique forever within the wallet (1-128 printable characters)."
        )
        super().__init__(**kwargs)
        self.validators.append(PRINTABLE)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryFilterSerializer(serializers.Serializer):
    """Query parameters: one given with an empty value is refused, not read as absent.

    DRF reads an empty value of an optional field in a query string as "not given";
    `?wallet=` is no filter a client could mean, and the schema says what each value is.
    """

    def to_internal_value(self, data: Any) -> Any:
        blank = [name for name in self.fields if name in data and data[name] == ""]
        if blank:
            raise ValidationError({name: ["This field may not be blank."] for name in blank})
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of stringifying them."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    """A ChoiceField that refuses numbers and booleans instead of matching their str()."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    def to_internal_value(self, data: Any) -> UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


def _invert(field: str) -> str:
    return field[1:] if field.startswith("-") else f"-{field}"


class _PrefixedOrdering:
    """Stands in for a queryset until DRF orders it: puts `prefix` in front of that ordering.

    The prefix follows DRF's direction: as declared for forward pages, inverted for
    `previous` pages (which DRF orders by the inverted ordering).
    """

    def __init__(self, queryset: Any, prefix: tuple[str, ...], forward_first: str) -> None:
        self._queryset = queryset
        self._prefix = prefix
        self._forward_first = forward_first

    def order_by(self, *fields: str) -> Any:
        prefix = self._prefix if fields[0] == self._forward_first else tuple(map(_invert, self._prefix))
        return self._queryset.order_by(*prefix, *fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queryset, name)


class KeysetPagination(CursorPagination):
    """Opaque-cursor keyset pagination: constant cost from the first page to the last."""

    page_size = 50
    max_page_size = 100
    page_size_query_param = "limit"
    cursor_query_param = "cursor"
    invalid_cursor_message = "Invalid cursor."
    # Columns the queryset pins to one value, put in front of ORDER BY (before `ordering`,
    # in the directions of the index that serves the pages). The cursor still holds the
    # first `ordering` field alone. For a queryset filtered on `wallet_id` with an index on
    # (wallet_id, id DESC): ordering "-id", ordering_prefix ("wallet_id",). This only helps
    # if the filter pinning them is not folded into a constant by PostgreSQL, which would
    # drop them from the ORDER BY again (see transfers.selectors.PinnedExact).
    ordering_prefix: tuple[str, ...] = ()

    def get_page_size(self, request: Any) -> int:
        """`limit`: ASCII digits, at least 1; above max_page_size it is served as max_page_size."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        invalid = ValidationError({"limit": [f"Must be an integer between 1 and {self.max_page_size}."]})
        # isdigit() alone lets through other scripts' digits and superscripts, and int()
        # accepts signs, spaces and underscores: none of them is a JSON Schema integer.
        if not (raw.isascii() and raw.isdigit()):
            raise invalid
        try:
            size = int(raw)
        except ValueError:  # more digits than int() converts
            raise invalid from None
        if size < 1:
            raise invalid
        return min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "in": "query",
                "required": False,
                "description": "Opaque: from a page's `next` or `previous` link. Any other value is a 400.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "in": "query",
                "required": False,
                "description": (
                    f"Page size, 1-{self.max_page_size} (default {self.page_size}); "
                    f"larger values are served as {self.max_page_size}."
                ),
                "schema": {"type": "integer", "minimum": 1, "default": self.page_size},
            },
        ]

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        self._model = queryset.model
        if self.ordering_prefix:
            forward_first = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
            queryset = _PrefixedOrdering(queryset, tuple(self.ordering_prefix), forward_first)
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Any) -> Any:
        """DRF's decoding, made strict: a cursor the client forged or mangled is a 400, never a 500."""
        invalid = ValidationError({"cursor": [self.invalid_cursor_message]})
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        try:
            base64.b64decode(raw.encode("ascii"), validate=True)
            cursor = super().decode_cursor(request)
        except Exception:  # DRF raises NotFound for undecodable cursors
            raise invalid from None
        if cursor is None:
            raise invalid
        if cursor.position is not None:
            field = self._model._meta.get_field(self._ordering_field())
            try:
                field.to_python(cursor.position)
            except (DjangoValidationError, ValueError, TypeError):
                raise invalid from None
        return cursor

    def _ordering_field(self) -> str:
        ordering = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
        return ordering.lstrip("-")
