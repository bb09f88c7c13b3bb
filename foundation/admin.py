"""Admin building blocks the apps share: read-only lists, short ids, change values in the audit."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.utils.timezone import localtime


def _plain(value: Any) -> Any:
    """A form value as JSON: model instances by primary key, collections as lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Model):
        return _plain(value.pk)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal, bytes)):
        return str(value)
    if isinstance(value, Iterable):  # many-to-many: a queryset or list of instances
        return sorted((_plain(item) for item in value), key=str)
    return str(value)


def changed_values(form: forms.BaseForm) -> dict[str, dict[str, Any]]:
    """{field: {"old": ..., "new": ...}} for a model form's changed fields; never a password."""
    if not isinstance(form, forms.BaseModelForm):
        return {}  # e.g. the password change form: its fields are no model values
    return {
        name: {"old": _plain(form.initial.get(name)), "new": _plain(form.cleaned_data.get(name))}
        for name in form.changed_data
        if "password" not in name
    }


class ChangeValuesMixin:
    """Admin changes name each changed field's old and new value, not only the field.

    Django's change message says "Changed Status."; this adds the values to it as
    `{"changed": {"fields": [...], "values": {"status": {"old": ..., "new": ...}}}}`.
    LogEntry keeps it (Django reads only the keys it knows) and the audit trail copies
    it (audit.signals). The site mixes this into every ModelAdmin it registers.
    """

    def construct_change_message(self, request, form, formsets, add=False):
        message = super().construct_change_message(request, form, formsets, add)
        values = {} if add else changed_values(form)
        for part in message:
            if values and "changed" in part and "name" not in part["changed"]:  # the object, not an inline
                part["changed"]["values"] = values
        return message


def short_id(value: object) -> str:
    """The first 8 characters of an id: enough to tell a list's rows apart; the row's page has it whole."""
    return str(value)[:8] if value is not None else "-"


def short_time(value: datetime.datetime | None, *, seconds: bool = True) -> str:
    """A time in a list, as text in the current time zone ("-" for none). Text, not a
    datetime: Django never wraps a datetime cell, and its long form widens the list."""
    if value is None:
        return "-"
    return localtime(value).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only records (ledger, audit): operators look, they never add, change or delete."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
