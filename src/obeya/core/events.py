"""``record`` is the one way into the event log; it must run inside the change's transaction."""

from __future__ import annotations

import json
import re
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet

from obeya.core import chain, rows
from obeya.core.actors import Actor
from obeya.core.models import Event

_KIND = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
# The PostgreSQL advisory lock that serializes appends to the chain ("obeyalog" as a number).
CHAIN_LOCK = int.from_bytes(b"obeyalog", "big")
_IP = Event._meta.get_field("ip")


def _head() -> str:
    """The hash of the newest event, read so that no other transaction can append after it
    until this one ends: on PostgreSQL by taking ``CHAIN_LOCK`` first (each statement then
    sees what committed before it); on SQLite every write transaction already holds the
    database's one write lock from its start (Obeya opens them IMMEDIATE)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])
        cursor.execute("SELECT hash FROM core_event ORDER BY id DESC LIMIT 1")
        found = cursor.fetchone()
    return str(found[0]) if found else chain.GENESIS


def content_of(event: Event) -> dict[str, Any]:
    """What the chain hashes of ``event``, as the database will give it back."""
    return {
        "at": event.at,
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "channel": event.channel,
        "ip": _IP.get_prep_value(event.ip) or None,
        "kind": event.kind,
        "subject": event.subject,
        "service": event.service,
        # Through JSON and back, as the column stores it: keys become strings, tuples lists.
        "data": json.loads(json.dumps(event.data)),
    }


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
    (or the change without its event). The event is chained to the newest one before it
    (``obeya.core.chain``); on PostgreSQL, other transactions' events wait for this one
    to end, so two never chain to the same predecessor.
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
    event.prev_hash = _head()
    event.hash = chain.digest(content_of(event), event.prev_hash)
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
