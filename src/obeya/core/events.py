"""``record`` is the one way into the event log; it must run inside the change's transaction."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from obeya.core import rows
from obeya.core.actors import Actor
from obeya.core.models import Event

_KIND = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")


def record(
    actor: Actor,
    kind: str,
    subject: str,
    data: dict[str, Any] | None = None,
    *,
    service: str = "",
) -> Event:
    """Append one event: ``kind`` is a dotted noun (``service.stage_changed``).

    Refuses to run outside a transaction, so an event can never exist without its change
    (or the change without its event).
    """
    if not _KIND.match(kind):
        raise ValueError(f"event kind {kind!r} must be dotted lower-case nouns, e.g. story.moved")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            f"event {kind} recorded outside a transaction: wrap the change in transaction.atomic"
        )
    event = Event(
        at=actor.now(),
        actor=actor.user,
        actor_name=actor.name,
        channel=actor.channel,
        ip=actor.ip,
        kind=kind,
        subject=subject,
        service=service,
        data=data or {},
    )
    rows.insert(event)  # every job records two events: the ORM's insert costs more
    return event


def timeline(
    *,
    service: str | None = None,
    kind_prefix: str | None = None,
    subject: str | None = None,
) -> QuerySet[Event]:
    """Events filtered by service slug, kind prefix (``service.``) and subject, oldest first."""
    events = Event.objects.select_related("actor").order_by("id")
    if service is not None:
        events = events.filter(service=service)
    if kind_prefix:
        events = events.filter(kind__startswith=kind_prefix)
    if subject:
        events = events.filter(subject=subject)
    return events
