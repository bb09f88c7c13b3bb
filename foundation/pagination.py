"""Keyset (cursor) pagination: constant cost from the first page to the last."""

from __future__ import annotations

import base64
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


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
