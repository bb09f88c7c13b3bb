"""The service's calendar: days are UTC days (daily limits, statements)."""

from __future__ import annotations

from datetime import UTC, date, datetime


def utc_today() -> date:
    return datetime.now(UTC).date()


def utc_day(moment: datetime) -> date:
    """The UTC date of an aware datetime."""
    return moment.astimezone(UTC).date()
