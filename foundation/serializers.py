"""Serializers and fields every API module builds on: strict bodies, money amounts, references."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

# \Z, not $: Python's $ also matches before a final newline. drf-spectacular turns this
# validator into the schema's `pattern` (with the ECMA anchor $).
PRINTABLE = RegexValidator(r"^[\x20-\x7e]+\Z", "Reference must be printable ASCII characters.")


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
    foundation.openapi.AmountFieldExtension.
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


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that takes JSON integers only: no strings, floats or booleans."""

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time given as a string with its offset (Z or +hh:mm): a time
    without one would be read in the server's zone, which the client cannot know."""

    default_error_messages = {"naive": "Give the time with its offset (Z or +hh:mm)."}

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601")
        try:
            parsed = parse_datetime(value.strip()) if value.strip() else None
        except ValueError:  # well formed but no such time (month 13): DRF's parse says "invalid"
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            self.fail("naive")
        return super().to_internal_value(value)
