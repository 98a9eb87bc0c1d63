"""Sign-in throttling: a few wrong passwords per account, and a few more per address.

Within `WINDOW`, an account may fail `ACCOUNT_LIMIT` times and a client address
`ADDRESS_LIMIT` times; past either, sign-in is refused, right password or not, until the
oldest counted failure is older than the window. Refused attempts are not counted, so
waiting always ends it.

Each attempt is written before its password is checked and counts only those written
before it, so a burst of parallel guesses gets no more checks than one after another.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet

from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.clock import SYSTEM_CLOCK, Clock
from obeya.core.errors import Throttled
from obeya.core.models import SignInAttempt

WINDOW = timedelta(minutes=15)
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20


def begin(username: str, ip: str | None, *, clock: Clock = SYSTEM_CLOCK) -> SignInAttempt:
    """Count a sign-in attempt, or refuse it with `Throttled` saying how long to wait."""
    now = clock.now()
    attempt = SignInAttempt.objects.create(username=_account(username), ip=_address(ip), at=now)
    earlier = SignInAttempt.objects.filter(pk__lt=attempt.pk, at__gt=now - WINDOW)
    wait = _wait(earlier.filter(username=attempt.username), ACCOUNT_LIMIT, now)
    what = "this account"
    if wait is None and attempt.ip is not None:
        wait = _wait(earlier.filter(ip=attempt.ip), ADDRESS_LIMIT, now)
        what = "this address"
    if wait is None:
        return attempt
    attempt.delete()
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    raise Throttled(
        f"Too many failed sign-ins for {what}: try again in {minutes} "
        f"minute{'s' if minutes != 1 else ''}.",
        retry_after=max(1, math.ceil(wait.total_seconds())),
        field="username",
    )


def failed(attempt: SignInAttempt, *, clock: Clock = SYSTEM_CLOCK) -> None:
    """Keep a failed attempt; the one that reaches a limit is recorded as an event."""
    now = clock.now()
    SignInAttempt.objects.filter(at__lte=now - WINDOW).delete()
    recent = SignInAttempt.objects.filter(at__gt=now - WINDOW, pk__lte=attempt.pk)
    by_account = recent.filter(username=attempt.username).count()
    by_address = recent.filter(ip=attempt.ip).count() if attempt.ip else 0
    if by_account == ACCOUNT_LIMIT or by_address == ADDRESS_LIMIT:
        actor = Actor(user=None, ip=attempt.ip, channel="web", clock=clock)
        limit = "account" if by_account == ACCOUNT_LIMIT else "address"
        with transaction.atomic():
            events.record(
                actor,
                "user.login_throttled",
                f"user:{attempt.username[:100]}",
                {"username": attempt.username, "limit": limit, "minutes": _minutes(WINDOW)},
            )


def succeeded(attempt: SignInAttempt) -> None:
    """A right password: the account's failures no longer count (its address's still do)."""
    SignInAttempt.objects.filter(username=attempt.username).delete()


def _wait(failures: QuerySet[SignInAttempt], limit: int, now: datetime) -> timedelta | None:
    """How long until fewer than ``limit`` of ``failures`` fall within the window."""
    times = list(failures.order_by("-at").values_list("at", flat=True)[:limit])
    if len(times) < limit:
        return None
    return times[-1] + WINDOW - now


def _account(username: str) -> str:
    return username.strip().lower()[:150]


def _address(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(ip or ""))
    except ValueError:  # no address (a test client, a Unix socket): throttle by account
        return None


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
