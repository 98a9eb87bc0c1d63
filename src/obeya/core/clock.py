"""Where services get the time from, so tests and the demo can set it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from django.utils import timezone


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return timezone.now()


class ManualClock:
    """A clock that only moves when told to: for tests and for back-dated demo history."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


SYSTEM_CLOCK = SystemClock()
