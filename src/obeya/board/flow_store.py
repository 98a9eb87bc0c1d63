"""The stored flow of each board: its story events folded in as they are recorded.

``flow.ledger`` folds a board's whole event log, and on a busy board (200,000 moves)
reading that log alone takes a second. So every ``story.created``, ``story.moved`` and
column rename is also folded, by the same ``flow.step``, into three tables in the
transaction that records it: ``FlowStory`` (each story now), ``FlowDay`` (cards per
column at the end of each day that saw an event) and ``BoardState`` (the time zone of those
days and the latest event folded in, with a version of the board that caches of the
board page and JSON are keyed on). Flow metrics then read a few thousand rows.

The tables are a copy of what the log says, never a second truth: ``rebuild`` refolds
them from the log. The migration does that for an existing install, and a fold does it by
itself when a story's event is older than one of its events already folded, or when the
time zone changed. One ``BoardState`` row lock per service serialises the folds and the versions.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import CharField, Model, Q, QuerySet, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from obeya.backlog.models import Story
from obeya.board import flow, logic
from obeya.board.models import BoardState, Column, FlowDay, FlowStory
from obeya.catalog.models import Service
from obeya.core import events, rows
from obeya.core.models import Event

CONFIGURED = "board.column_configured"


# ---- reading the log -----------------------------------------------------------------------


def _at_text() -> Cast | Concat:
    """A time as text, which parses in C (Django's datetime converters cost far more)."""
    at_text: Cast | Concat = Cast("at", CharField())  # PostgreSQL: 2026-03-01 09:00:00.1+00
    if connection.vendor == "sqlite":  # which keeps naive UTC text: 2026-03-01 09:00:00.1
        at_text = Concat(at_text, Value("+00:00"))
    return at_text


def story_events(
    slug: str, *, until: datetime | None = None, log: QuerySet[Any] | None = None
) -> list[flow.StoryEvent]:
    """The ``story.created`` and ``story.moved`` events of one service, oldest first, and
    its column renames. ``log``: the events to read (a migration passes its own model's).

    Reading is most of the cost of a busy board's flow (bench/board_flow.py), so the
    database hands over only the JSON keys flow needs, and every value as text.
    """
    found = log if log is not None else events.timeline(service=slug)
    found = found.filter(service=slug)
    rows = (
        found.filter(kind__in=(flow.CREATED, flow.MOVED))
        .annotate(
            at_text=_at_text(),
            to=KT("data__to"),
            starts_work=KT("data__starts_work"),
            done=KT("data__done"),
        )
        .values_list("at_text", "id", "kind", "subject", "to", "starts_work", "done")
    )
    parse = datetime.fromisoformat
    records = [
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
    # Renames recorded before the old name was (2026-11) cannot be followed: no old name.
    renames = (
        found.filter(Q(kind=CONFIGURED) & Q(data__has_key="renamed_from"))
        .annotate(at_text=_at_text(), old=KT("data__renamed_from"), new=KT("data__rename"))
        .values_list("at_text", "id", "old", "new")
    )
    records += [
        flow.StoryEvent(parse(at), seq, flow.RENAMED, old, new) for at, seq, old, new in renames
    ]
    records = _renames_in_recorded_order(records)
    if until is not None:
        records = [record for record in records if record.at <= until]
    return records


def _renames_in_recorded_order(records: list[flow.StoryEvent]) -> list[flow.StoryEvent]:
    """Each rename at the latest time of the events recorded before it, if that is later.

    A rename changes the names every later event uses, so renames must fold in the order
    they were made. Times alone can disagree (a clock set back, two servers' clocks
    apart): a rename stamped before an event recorded ahead of it would fold first, and
    the board's first column would end up under a name it no longer has. Story events
    keep their own times.
    """
    renames = sorted((record for record in records if record.kind == flow.RENAMED), key=_seq_of)
    if not renames:
        return records
    others = sorted((record for record in records if record.kind != flow.RENAMED), key=_seq_of)
    adjusted: list[flow.StoryEvent] = []
    latest: datetime | None = None
    position = 0
    for rename in renames:  # the latest time recorded before each rename, in one pass
        while position < len(others) and others[position].seq < rename.seq:
            at = others[position].at
            latest = at if latest is None or at > latest else latest
            position += 1
        if latest is not None and rename.at < latest:
            rename = rename._replace(at=latest)
        latest = rename.at if latest is None or rename.at > latest else latest
        adjusted.append(rename)
    return others + adjusted


def _seq_of(record: flow.StoryEvent) -> int:
    return record.seq


# ---- folding as events are recorded ----------------------------------------------------------


@dataclass(frozen=True)
class Tables:
    """The models to write: the app's, or a migration's historical ones."""

    board: type[Model]
    story: type[Model]
    day: type[Model]


TABLES = Tables(BoardState, FlowStory, FlowDay)


def _time_zone() -> tzinfo:
    return timezone.get_default_timezone()


def first_column(service_id: int, column: type[Model] = Column) -> str:
    """The name of the board's first column: where a new story's card starts."""
    first = column.objects.filter(service_id=service_id).order_by("position").first()  # type: ignore[attr-defined]
    # A board nobody has opened has no columns yet: the defaults will be made on first use.
    return str(first.name) if first is not None else logic.DEFAULT_COLUMNS[0][0]


def _locked(service: Service) -> tuple[BoardState, bool]:
    """The service's BoardState row, locked, with a new version for the change being
    recorded; and whether its stored flow must be refolded (a new row, or a new time zone)."""
    state, created = BoardState.objects.select_for_update().get_or_create(
        service=service, defaults={"time_zone": str(_time_zone())}
    )
    state.version = new_version()
    state.save(update_fields=["version"])
    return state, created or state.time_zone != str(_time_zone())


def new_version() -> int:
    # Random rather than counted: a version never comes back, even in a database restored
    # from a backup (or rolled back by a test) while a cache still holds what it built.
    return secrets.randbits(62) + 1


def board_version(service: Service) -> int:
    """A number that changes with every change to the service's board (its stories, cards
    and columns), and only then: what was built from the board at one version still holds.
    0 for a board with no change recorded yet."""
    return version_of(service.slug) or 0


def version_of(slug: str) -> int | None:
    """``board_version`` in one query, by slug; None when nothing was recorded for it."""
    version = BoardState.objects.filter(service__slug=slug).values_list("version", flat=True)
    return version.first()


@cache
def _service_and_version_sql() -> str:
    state, quote = BoardState._meta, rows.quote
    return (
        f"SELECT {rows.columns(Service, 's')}, b.{quote(state.get_field('version').column)}"  # noqa: S608 (names from the models)
        f" FROM {quote(state.db_table)} b JOIN {quote(Service._meta.db_table)} s"
        f" ON b.{quote(state.get_field('service').column)} = s.{quote('id')}"
        f" WHERE s.{quote('slug')} = %s"
    )


def service_and_version(slug: str) -> tuple[Service, int] | None:
    """The service ``slug`` and its board's version, in one query; None as ``version_of``.

    The board page asks for both on every request: through the ORM, building the query
    (and the service read apart) cost ~0.6 ms of CPU, running it a few µs. Plain SQL with
    the models' own conversions (obeya.core.rows).
    """
    found = rows.fetch(_service_and_version_sql(), [slug])
    if not found:
        return None
    *service, version = found[0]
    return rows.build(Service, service), int(version)


def fold_story_event(story: Story, event: Event) -> None:
    """Count a just-recorded story event as a change of the board, and fold it into the
    stored flow when it is a ``story.created`` or ``story.moved``.

    A story listener of the backlog: it runs in the transaction that records the event.
    """
    service = story.service
    state, stale = _locked(service)
    if event.kind not in (flow.CREATED, flow.MOVED) and not stale:
        return
    data = event.data
    record = flow.StoryEvent(
        event.at,
        event.pk,
        event.kind,
        story.key,
        str(data.get("to") or ""),
        bool(data.get("starts_work")),
        bool(data.get("done")),
    )
    row = FlowStory.objects.filter(service=service, key=story.key).first()
    if stale or (row is not None and (record.at, record.seq) < (row.last_at, row.last_seq)):
        rebuild(service)  # out of order for this story (a clock set back): refold it all
        return
    before = _story_of(row) if row is not None else None
    after, left, entered = flow.step(before, record, first_column(service.pk))
    fields = {
        "created_at": after.created_at,
        "column": after.column,
        "started_at": after.started_at,
        "done_at": after.done_at,
        "done": after.done,
        "last_at": record.at,
        "last_seq": record.seq,
    }
    FlowStory.objects.update_or_create(service=service, key=story.key, defaults=fields)
    if left != entered:
        _shift_days(service, flow.day_of(record.at, _time_zone()), left, entered)
    _advance(state, record.at)


def _story_of(row: FlowStory) -> flow.StoryFlow:
    return flow.StoryFlow(
        row.key, row.created_at, row.column, row.started_at, row.done_at, row.done
    )


def _shift_days(service: Service, day: date, left: str | None, entered: str | None) -> None:
    """A card left one column for another on ``day``: so it is at the end of that day and
    of every later day already stored (a later day exists when events came out of order)."""
    rows = list(FlowDay.objects.filter(service=service, day__gte=day).order_by("day"))
    if not rows or rows[0].day != day:
        before = FlowDay.objects.filter(service=service, day__lt=day).order_by("-day").first()
        counts = dict(before.counts) if before is not None else {}
        rows.insert(0, FlowDay(service=service, day=day, counts=counts))
    for row in rows:
        if left is not None:
            row.counts[left] = row.counts.get(left, 0) - 1
        if entered is not None:
            row.counts[entered] = row.counts.get(entered, 0) + 1
        row.save()


def _advance(state: BoardState, at: datetime) -> None:
    if state.latest_at is None or at > state.latest_at:
        state.latest_at = at
        state.save(update_fields=["latest_at"])


def column_configured(service: Service, event: Event, renamed_from: str | None) -> None:
    """Count a column's new settings as a change of the board; on a rename, the column's
    cards and its days in the stored flow follow the new name."""
    state, stale = _locked(service)
    if renamed_from is None and not stale:
        return
    new = str(event.data.get("rename") or "")
    if stale or (state.latest_at is not None and event.at < state.latest_at):
        rebuild(service)
        return
    if renamed_from is None:
        return
    FlowStory.objects.filter(service=service, column=renamed_from).update(column=new)
    days = list(FlowDay.objects.filter(service=service, counts__has_key=renamed_from))
    for row in days:
        row.counts[new] = row.counts.get(new, 0) + row.counts.pop(renamed_from)
    FlowDay.objects.bulk_update(days, ["counts"], batch_size=500)
    _advance(state, event.at)


# ---- refolding from the log --------------------------------------------------------------------


def rebuild(service: Service) -> None:
    """Refold the service's stored flow from its event log, in the caller's transaction."""
    refold(TABLES, service.pk, service.slug, first_column(service.pk), _time_zone())


def refold(
    tables: Tables,
    service_id: int,
    slug: str,
    first: str,
    tz: tzinfo,
    log: QuerySet[Any] | None = None,
) -> None:
    """Replace the stored flow of one service with its log folded anew (``first``: the name
    of its first column now). The migration calls this with its historical models."""
    records = story_events(slug, log=log)
    folded = flow.ledger(records, first, tz)
    latest: dict[str, tuple[datetime, int]] = {}
    for record in records:
        if record.kind != flow.RENAMED:
            latest[record.key] = max(
                latest.get(record.key, (record.at, record.seq)), (record.at, record.seq)
            )
    tables.story.objects.filter(service_id=service_id).delete()  # type: ignore[attr-defined]
    tables.day.objects.filter(service_id=service_id).delete()  # type: ignore[attr-defined]
    tables.story.objects.bulk_create(  # type: ignore[attr-defined]
        (
            tables.story(
                service_id=service_id,
                key=story.key,
                created_at=story.created_at,
                column=story.column,
                started_at=story.started_at,
                done_at=story.done_at,
                done=story.done,
                last_at=latest[story.key][0],
                last_seq=latest[story.key][1],
            )
            for story in folded.stories.values()
        ),
        batch_size=1000,
    )
    tables.day.objects.bulk_create(  # type: ignore[attr-defined]
        (
            tables.day(service_id=service_id, day=day, counts=counts)
            for day, counts in folded.days.items()
        ),
        batch_size=1000,
    )
    tables.board.objects.update_or_create(  # type: ignore[attr-defined]
        service_id=service_id,
        defaults={
            "version": new_version(),
            "time_zone": str(tz),
            "latest_at": max((record.at for record in records), default=None),
        },
    )


# ---- reading the stored flow -------------------------------------------------------------------


def stored_replay(
    service: Service, columns: Sequence[flow.BoardColumn], window: flow.Window
) -> flow.Replay | None:
    """The window's replay read from the stored flow; None when the tables cannot answer
    for this window (days in another time zone, or a ``now`` before the latest event)."""
    state = BoardState.objects.filter(service=service).first()
    if state is None or state.time_zone != str(window.tz):
        return None
    if state.latest_at is not None and state.latest_at > window.now:
        return None
    stories = {
        key: flow.StoryFlow(key, created_at, column, started_at, done_at if done else None, done)
        for key, created_at, column, started_at, done_at, done in FlowStory.objects.filter(
            service=service
        ).values_list("key", "created_at", "column", "started_at", "done_at", "done")
    }
    days = FlowDay.objects.filter(service=service)
    before = days.filter(day__lt=window.first_day).order_by("-day").values_list("day", "counts")
    inside = days.filter(day__gte=window.first_day, day__lte=window.last_day).order_by("day")
    known = [*before[:1], *inside.values_list("day", "counts")]
    names = [column.name for column in columns]
    return flow.Replay(stories, flow.end_of_days(known, names, window))
