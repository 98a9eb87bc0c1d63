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
  longer on the board (renamed or removed) counts in no column until it moves again.

Days and weeks are calendar days in the window's time zone. Events are ordered by time,
then by ``seq`` (the event id), so the input order never matters.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

CREATED = "story.created"
MOVED = "story.moved"
_NEVER = datetime.max.replace(tzinfo=UTC)


class StoryEvent(NamedTuple):
    """A ``story.created`` or ``story.moved`` event, reduced to what flow needs.

    A tuple, so that sorting a list of them orders by time then ``seq`` with no key function.
    """

    at: datetime
    seq: int  # the event id: orders events that share a timestamp
    kind: str  # CREATED or MOVED
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
        return datetime.combine(day, time(), tzinfo=self.tz)

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


def replay(events: Iterable[StoryEvent], columns: Sequence[BoardColumn], window: Window) -> Replay:
    """Play the events up to ``window.now`` in order, snapshotting the columns each midnight."""
    if not columns:
        raise ValueError("a board needs at least one column to replay its flow")
    first = columns[0].name
    names = [column.name for column in columns]
    # In UTC, like the events: datetimes that share their tzinfo compare fastest.
    ends = [window.midnight(day + timedelta(days=1)).astimezone(UTC) for day in window.day_list()]
    ordered = sorted(events)
    seen = ordered[: bisect_right(ordered, window.now, key=_time_of)]
    result = Replay()
    stories = result.stories
    counts: defaultdict[str, int] = defaultdict(int, dict.fromkeys(names, 0))
    next_end, end = 0, ends[0]
    # The hot loop of a busy board (200,000 moves): tuples unpacked, no attribute lookups.
    for at, _, kind, key, to, starts_work, done in seen:
        while at >= end:
            result.daily.append({name: counts[name] for name in names})
            next_end += 1
            end = ends[next_end] if next_end < len(ends) else _NEVER
        story = stories.get(key)
        if kind == CREATED:
            if story is None:
                stories[key] = StoryFlow(key, at, first)
                counts[first] += 1
            continue
        if story is None:  # its creation is missing: it appears where it moved to
            story = stories[key] = StoryFlow(key, at, to)
        else:
            counts[story.column] -= 1
        story.column = to
        counts[to] += 1
        if starts_work and story.started_at is None:
            story.started_at = at
        if done and not story.done:
            story.done_at = at
        story.done = done
    while len(result.daily) < len(ends):
        result.daily.append({name: counts[name] for name in names})
    for story in stories.values():
        if not story.done:
            story.done_at = None
    return result


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
    replayed = replay(events, columns, window)
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
