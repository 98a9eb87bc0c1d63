"""A hand-made history of the service "shop", recorded as the services record it: through
``core.events.record`` inside a transaction, back-dated with a manual clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.clock import SYSTEM_CLOCK, ManualClock

LEAD = timedelta(hours=2)  # every commit is two hours old when it reaches production
INCIDENT_RESTORED_AFTER = timedelta(minutes=30)


def deploy(number: int, ended: datetime, *, outcome: str = "succeeded") -> None:
    """A production deployment of shop that reached users: started 5 min before it ended;
    a rolled-back one failed a minute before its rollback ended."""
    clock = ManualClock(ended - timedelta(minutes=5))
    system = Actor(user=None, channel="cli", clock=clock)
    data = {
        "deployment": number,
        "environment": "production",
        "tier": "production",
        "kind": "deploy",
        "release": f"r{number}",
        "previous_release": f"r{number - 1}" if number > 1 else "",
        "sha": f"{number:040x}",
    }
    subject = f"deployment:{number}"
    with transaction.atomic():
        events.record(system, "deployment.started", subject, data, service="shop")
        clock.advance(timedelta(minutes=4))
        if outcome == "rolled_back":
            failed = {**data, "rolled_back": True}
            events.record(system, "deployment.failed", subject, failed, service="shop")
        clock.advance(timedelta(minutes=1))
        commit = {"sha": f"{number:040x}", "committed_at": (ended - LEAD).isoformat()}
        commits = [commit] if outcome == "succeeded" else []
        events.record(
            system, f"deployment.{outcome}", subject, {**data, "commits": commits}, service="shop"
        )


def incident(number: int, opened: datetime, caused_by: int) -> None:
    """An incident caused by a production deployment, mitigated 30 min later, resolved at
    the hour."""
    clock = ManualClock(opened)
    system = Actor(user=None, channel="cli", clock=clock)
    subject = f"incident:{number}"
    with transaction.atomic():
        events.record(system, "incident.opened", subject, {"number": number}, service="shop")
        link = {"number": number, "deployment": caused_by, "tier": "production"}
        events.record(system, "incident.caused_by", subject, link, service="shop")
        clock.advance(INCIDENT_RESTORED_AFTER)
        events.record(system, "incident.mitigated", subject, {"number": number}, service="shop")
        clock.advance(timedelta(minutes=30))
        events.record(system, "incident.resolved", subject, {"number": number}, service="shop")


def history(now: datetime | None = None) -> None:
    """Four production deployments in the last 30 days: the third rolled back by itself,
    the fourth caused an incident restored after 30 minutes."""
    now = now or SYSTEM_CLOCK.now()
    deploy(1, now - timedelta(days=20))
    deploy(2, now - timedelta(days=12))
    deploy(3, now - timedelta(days=5), outcome="rolled_back")
    deploy(4, now - timedelta(days=4))
    incident(1, now - timedelta(days=4) + timedelta(hours=1), caused_by=4)
