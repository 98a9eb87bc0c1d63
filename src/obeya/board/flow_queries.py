"""Reads a board's flow from the event log and its columns, for the pure ``board.flow``."""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import CharField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from obeya.board import flow
from obeya.board import services as board
from obeya.core import events


def story_events(slug: str, *, until: datetime | None = None) -> list[flow.StoryEvent]:
    """The ``story.created`` and ``story.moved`` events of one service, oldest first.

    Reading is most of the cost of a busy board's flow (bench/board_flow.py), so the
    database hands over only the three JSON keys flow needs, and every value as text:
    Django's datetime converters alone cost several times flow's arithmetic, while the
    text of a time parses in C.
    """
    found = events.timeline(service=slug, kind_prefix="story.").filter(
        kind__in=(flow.CREATED, flow.MOVED)
    )
    if until is not None:
        found = found.filter(at__lte=until)
    at_text: Cast | Concat = Cast("at", CharField())  # PostgreSQL: 2026-03-01 09:00:00.1+00
    if connection.vendor == "sqlite":  # which keeps naive UTC text: 2026-03-01 09:00:00.1
        at_text = Concat(at_text, Value("+00:00"))
    rows = found.annotate(
        at_text=at_text,
        to=KT("data__to"),
        starts_work=KT("data__starts_work"),
        done=KT("data__done"),
    ).values_list("at_text", "id", "kind", "subject", "to", "starts_work", "done")
    parse = datetime.fromisoformat
    return [
        flow.StoryEvent(
            parse(at),
            seq,
            kind,
            subject.rpartition("/")[2],  # story:<slug>/<key>
            to or "",
            starts_work == "true",
            done == "true",
        )
        for at, seq, kind, subject, to, starts_work, done in rows
    ]


def board_columns(slug: str) -> list[flow.BoardColumn]:
    """The columns of the service's board in order, with their flags (NotFound if no such)."""
    return [
        flow.BoardColumn(column.name, column.starts_work, column.is_done)
        for column in board.columns_of(slug)
    ]


def service_flow(slug: str, *, days: int, now: datetime | None = None) -> flow.FlowMetrics:
    """Every flow metric of a service's board over the last ``days`` days, in local days."""
    columns = board_columns(slug)
    window = flow.Window(days, now or timezone.now(), timezone.get_default_timezone())
    return flow.flow_metrics(story_events(slug, until=window.now), columns, window)
