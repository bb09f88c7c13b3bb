"""A clock for tests of the ledger over time: the money path stamps what it writes with
timezone.now(), and these tests decide what that reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> datetime:
        """Set the clock `seconds` after START and return that instant."""
        self.now = START + timedelta(seconds=seconds)
        return self.now


@pytest.fixture(name="clock")
def clock_fixture(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(timezone, "now", fake)
    return fake


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
