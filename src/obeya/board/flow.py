"""Flow metrics of a board, replayed from its story events. Pure: records in, numbers out.

Definitions (pinned down by tests/board/test_flow.py):

- A story is *created* at its ``story.created`` event and sits in the board's first column.
- It *starts* at its first move into a column flagged ``starts_work`` (the flag as it was
  when the move happened). A story that never entered such a column has no cycle time.
- It is *done* while its card is in a column flagged ``is_done``; its done time is the LAST
  time it became done (entered a done column from a column that is not), so a reopened
  story counts when it is finished again, not before.
- Lead time: created → done. Cycle time: started → done. Both in hours, for stories whose
  done time falls in the window; median and p90 (nearest rank: 90% took at most this).
- Throughput: stories done per ISO week of the window (weeks with none included).
- WIP: cards in each column at the end of each day of the window.
- Aging WIP: cards not done at ``now``, aged since their start, or creation if not started.
- Cumulative flow: per day, the cards in each column or any column after it. Bands are
  taken from where the cards are at the end of the day, so the gap between two bands is
  that column's WIP and a card moved back leaves the later bands. A card in a column no
  longer on the board (removed) counts in no column until it moves again.
- A renamed column stays the same column: from the rename on, its cards (and its history
  of every earlier day) count under its new name. A name freed by a rename may later be
  given to another column; events name columns as they were called at the time.

Days and weeks are calendar days in the window's time zone. Events are ordered by time,
then by ``seq`` (the event id), so the input order never matters.

Every metric reads one ``Ledger``: the events folded in order by ``step``, one at a time.
The board keeps the same fold in its stored flow tables as each event is recorded
(``board.flow_store``), so a busy board's metrics need no replay of its whole history.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

CREATED = "story.created"
MOVED = "story.moved"
RENAMED = "column.renamed"  # read from a board.column_configured event that renamed one


class StoryEvent(NamedTuple):
    """A ``story.created`` or ``story.moved`` event, or a column rename, as flow needs it.

    A tuple, so that sorting a list of them orders by time then ``seq`` with no key function.
    For a rename (``RENAMED``), ``key`` is the column's old name and ``to`` its new one.
    """

    at: datetime
    seq: int  # the event id: orders events that share a timestamp
    kind: str  # CREATED, MOVED or RENAMED
    key: str  # the story key, S-12
    to: str = ""  # the column entered (moves only)
    starts_work: bool = False  # that column started work when the card entered it
    done: bool = False  # that column was a done column when the card entered it


@dataclass(frozen=True)
class BoardColumn:
    """A board column, in board order."""

    name: str
    starts_work: bool = False
    is_done: bool = False


@dataclass(frozen=True)
class Window:
    """The last ``days`` calendar days up to ``now`` (today included), in ``tz``."""

    days: int
    now: datetime
    tz: tzinfo = UTC

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"a flow window is at least one day, not {self.days}")
        if self.now.tzinfo is None:
            raise ValueError("the window's now must be an aware datetime")

    @property
    def last_day(self) -> date:
        return self.now.astimezone(self.tz).date()

    @property
    def first_day(self) -> date:
        return self.last_day - timedelta(days=self.days - 1)

    @property
    def start(self) -> datetime:
        """Midnight at the beginning of the first day."""
        return self.midnight(self.first_day)

    def midnight(self, day: date) -> datetime:
        return midnight(day, self.tz)

    def day_list(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.days)]

    def week_list(self) -> list[str]:
        """ISO weeks (2026-W05) that hold a day of the window, in order."""
        monday = self.first_day - timedelta(days=self.first_day.weekday())
        weeks = []
        while monday <= self.last_day:
            weeks.append(iso_week(monday))
            monday += timedelta(days=7)
        return weeks


@dataclass(slots=True)
class StoryFlow:
    """What the replay learnt about one story, as of the window's ``now``."""

    key: str
    created_at: datetime
    column: str
    started_at: datetime | None = None
    done_at: datetime | None = None  # the last time it became done, while it stays done
    done: bool = False


class StoryHours(NamedTuple):
    key: str
    hours: float
    done_at: datetime


class Aging(NamedTuple):
    key: str
    column: str
    age_h: float
    started: bool


@dataclass(frozen=True)
class Times:
    """Lead or cycle times of the stories done in the window, in order of completion."""

    items: list[StoryHours]
    median_h: float | None
    p90_h: float | None


@dataclass(frozen=True)
class FlowMetrics:
    """Every flow metric of one board over one window."""

    window: Window
    columns: tuple[BoardColumn, ...]
    lead_time: Times
    cycle_time: Times
    throughput: list[tuple[str, int]]  # (ISO week, stories done)
    wip: list[tuple[date, dict[str, int]]]  # end-of-day cards per column
    aging: list[Aging]
    cfd: list[tuple[date, dict[str, int]]]  # end-of-day cards in the column or later


@dataclass
class Replay:
    """The stories as of ``now`` and the cards per column at the end of each window day."""

    stories: dict[str, StoryFlow] = field(default_factory=dict)
    daily: list[dict[str, int]] = field(default_factory=list)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def hours(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 3600, 2)


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def p90(values: Sequence[float]) -> float | None:
    """Nearest rank: the smallest value that 90% of the values do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _time_of(event: StoryEvent) -> datetime:
    return event.at


def midnight(day: date, tz: tzinfo) -> datetime:
    """The start of ``day`` in ``tz``: where the window's days begin and end."""
    return datetime.combine(day, time(), tzinfo=tz)


def day_of(at: datetime, tz: tzinfo) -> date:
    """The day of ``tz`` that holds ``at``, bounded by ``midnight`` as the window's days are
    (they differ from the wall-clock date only where a clock change crosses midnight)."""
    day = at.astimezone(tz).date()
    if at >= midnight(day + timedelta(days=1), tz):
        return day + timedelta(days=1)
    if at < midnight(day, tz):
        return day - timedelta(days=1)
    return day


def step(
    story: StoryFlow | None, event: StoryEvent, first: str
) -> tuple[StoryFlow, str | None, str | None]:
    """Fold one story event into its story: the story after it, the column its card left
    and the column it entered (None for none).

    ``story`` (None: not seen yet) changes in place. ``first`` is the board's first column,
    where the card of a new story starts.
    """
    at, _, kind, key, to, starts_work, done = event
    if kind == CREATED:
        if story is not None:
            return story, None, None  # created twice: the first creation counts
        return StoryFlow(key, at, first), None, first
    left = None
    if story is None:  # its creation is missing: it appears where it moved to
        story = StoryFlow(key, at, to)
    else:
        left = story.column
    story.column = to
    if starts_work and story.started_at is None:
        story.started_at = at
    if done and not story.done:
        story.done_at = at
    story.done = done
    return story, left, to


@dataclass
class Ledger:
    """A board's flow folded from its events: each story, the cards per column now, and
    at the end of each day that saw an event (days in order). ``first``: the name of the
    board's first column as of the last event."""

    first: str
    stories: dict[str, StoryFlow] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    days: dict[date, dict[str, int]] = field(default_factory=dict)

    def rename(self, old: str, new: str) -> None:
        """A column renamed: its cards, and its count on every day so far, follow the name."""
        if old == new:
            return
        for counts in (self.counts, *self.days.values()):
            if old in counts:
                counts[new] = counts.get(new, 0) + counts.pop(old)
        for story in self.stories.values():
            if story.column == old:
                story.column = new
        if self.first == old:
            self.first = new


def first_name_at_start(events: Sequence[StoryEvent], first: str) -> str:
    """The name the first column (called ``first`` after ``events``) had before them."""
    for event in reversed(events):
        if event.kind == RENAMED and event.to == first:
            first = event.key
    return first


def ledger(
    events: Iterable[StoryEvent], first: str, tz: tzinfo, *, until: datetime | None = None
) -> Ledger:
    """Fold the events up to ``until`` (all by default) in order; ``first`` is the name of the
    board's first column after them, days are calendar days in ``tz``."""
    ordered = sorted(events)
    if until is not None:
        ordered = ordered[: bisect_right(ordered, until, key=_time_of)]
    result = Ledger(first_name_at_start(ordered, first))
    stories, counts, days = result.stories, result.counts, result.days
    day: date | None = None
    end = datetime.min.replace(tzinfo=UTC)  # when the day being folded ends, in UTC
    # The hot loop of a busy board (200,000 moves): tuples unpacked, no attribute lookups.
    for event in ordered:
        at, _, kind, key, to, _, _ = event
        if at >= end:
            if day is not None:
                days[day] = dict(counts)
            day = day_of(at, tz)
            end = midnight(day + timedelta(days=1), tz).astimezone(UTC)
        if kind == RENAMED:
            result.rename(key, to)
            continue
        story, left, entered = step(stories.get(key), event, result.first)
        stories[key] = story
        if left is not None:
            counts[left] -= 1
        if entered is not None:
            counts[entered] = counts.get(entered, 0) + 1
    if day is not None:
        days[day] = dict(counts)
    return result


def end_of_days(
    days: Iterable[tuple[date, Mapping[str, int]]], names: Sequence[str], window: Window
) -> list[dict[str, int]]:
    """Cards per column (of ``names``) at the end of each window day, from the counts at the
    end of each day that saw an event, in order: a day without one keeps the day before's."""
    pending = iter(days)
    upcoming = next(pending, None)
    current: Mapping[str, int] = {}
    daily = []
    for day in window.day_list():
        while upcoming is not None and upcoming[0] <= day:
            current = upcoming[1]
            upcoming = next(pending, None)
        daily.append({name: current.get(name, 0) for name in names})
    return daily


def replay_of(folded: Ledger, columns: Sequence[BoardColumn], window: Window) -> Replay:
    """The window's view of a ledger folded up to ``window.now``."""
    stories = folded.stories
    for story in stories.values():
        if not story.done:
            story.done_at = None
    names = [column.name for column in columns]
    return Replay(stories, end_of_days(folded.days.items(), names, window))


def replay(events: Iterable[StoryEvent], columns: Sequence[BoardColumn], window: Window) -> Replay:
    """Fold the events up to ``window.now`` in order, with the columns at each midnight."""
    if not columns:
        raise ValueError("a board needs at least one column to replay its flow")
    return replay_of(ledger(events, columns[0].name, window.tz, until=window.now), columns, window)


def _done_in_window(replayed: Replay, window: Window) -> list[StoryFlow]:
    start = window.start
    done = [s for s in replayed.stories.values() if s.done_at is not None and s.done_at >= start]
    return sorted(done, key=lambda s: (s.done_at, s.key))


def _times(items: list[StoryHours]) -> Times:
    values = [item.hours for item in items]
    return Times(items, median(values), p90(values))


def lead_time(replayed: Replay, window: Window) -> Times:
    return _times(
        [
            StoryHours(s.key, hours(s.created_at, s.done_at), s.done_at)
            for s in _done_in_window(replayed, window)
            if s.done_at is not None
        ]
    )


def cycle_time(replayed: Replay, window: Window) -> Times:
    return _times(
        [
            StoryHours(s.key, hours(s.started_at, s.done_at), s.done_at)
            for s in _done_in_window(replayed, window)
            if s.done_at is not None and s.started_at is not None and s.started_at <= s.done_at
        ]
    )


def throughput(replayed: Replay, window: Window) -> list[tuple[str, int]]:
    per_week = dict.fromkeys(window.week_list(), 0)
    for story in _done_in_window(replayed, window):
        if story.done_at is not None:
            per_week[iso_week(story.done_at.astimezone(window.tz).date())] += 1
    return list(per_week.items())


def aging(replayed: Replay, window: Window) -> list[Aging]:
    """Cards not done, oldest first."""
    cards = [
        Aging(
            s.key,
            s.column,
            hours(s.started_at or s.created_at, window.now),
            s.started_at is not None,
        )
        for s in replayed.stories.values()
        if not s.done
    ]
    return sorted(cards, key=lambda card: (-card.age_h, card.key))


def cumulative_flow(
    daily: list[dict[str, int]], columns: Sequence[BoardColumn]
) -> list[dict[str, int]]:
    """Each day's cards per column → cards in that column or a later one."""
    bands = []
    for counts in daily:
        running = 0
        day: dict[str, int] = {}
        for column in reversed(columns):
            running += counts[column.name]
            day[column.name] = running
        bands.append({column.name: day[column.name] for column in columns})
    return bands


def flow_metrics(
    events: Iterable[StoryEvent], columns: Sequence[BoardColumn], window: Window
) -> FlowMetrics:
    """Every metric from one replay of the events."""
    return metrics_of(replay(events, columns, window), columns, window)


def metrics_of(replayed: Replay, columns: Sequence[BoardColumn], window: Window) -> FlowMetrics:
    """Every metric of a replay (from the events, or from the stored flow tables)."""
    days = window.day_list()
    return FlowMetrics(
        window=window,
        columns=tuple(columns),
        lead_time=lead_time(replayed, window),
        cycle_time=cycle_time(replayed, window),
        throughput=throughput(replayed, window),
        wip=list(zip(days, replayed.daily, strict=True)),
        aging=aging(replayed, window),
        cfd=list(zip(days, cumulative_flow(replayed.daily, columns), strict=True)),
    )
