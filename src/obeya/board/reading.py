"""Reading a busy board: its cards as plain values for the JSON API, the page's columns
with only their first cards, and the version that caches of both are keyed on.

A board of 2,000 cards read as model objects took ~300 ms a request (bench/board_load.py);
as plain values in three queries it takes a fraction of that, and a cache keyed on the
board's version serves it again until the board changes.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.core.cache import cache
from django.db.models import Count, Prefetch

from obeya.backlog.models import Story
from obeya.board import flow_store, logic
from obeya.board import services as board
from obeya.board.models import Card, Column
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import rows
from obeya.core.models import User

# The page shows this many cards of a column (of a done column: the most recently
# finished); "show all" lists every card. A column this long is far past any WIP limit.
CARDS_SHOWN = 50


def board_version(slug: str) -> int:
    """The board's version (NotFound for an unknown service): see flow_store.board_version.
    0 (no change recorded yet) is never cached: such a board is built each time."""
    version = flow_store.version_of(slug)
    if version is None:
        catalog.get_service(slug)  # NotFound for no such service
    return version or 0


def service_and_version(slug: str) -> tuple[Service, int]:
    """The service (NotFound for an unknown one) and its board's version, in one query
    for a board that has changed: the board page needs both on every request."""
    found = flow_store.service_and_version(slug)
    if found is None:
        return catalog.get_service(slug), 0
    return found


T = TypeVar("T")
_building: dict[str, threading.Lock] = {}
_building_guard = threading.Lock()


def kept_for_version(key: str, version: int, build: Callable[[], T]) -> T:
    """What ``build`` makes of a board at ``version`` (read before building), kept in the
    cache under ``key`` until the board changes; version 0 is built every time.

    One request of a process builds it, and the others that ask meanwhile wait for that
    one rather than each building it too: 20 readers of a 2,000-card board otherwise all
    rebuilt it (~30 ms each) after every change. The wait is only for the same version.
    """
    if not version:
        return build()
    cached = cache.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    with _building_guard:
        lock = _building.setdefault(key, threading.Lock())
    with lock:
        cached = cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        built = build()
        cache.set(key, (version, built))
        return built


def _place_new_stories(service: Service) -> None:
    for story in Story.objects.filter(service=service, card__isnull=True):
        board.card_of(story)


@dataclass(frozen=True)
class CardRow:
    """A card with its story's fields, read as plain values."""

    key: str
    title: str
    kind: str
    estimate: int | None
    labels: list[str]
    assignees: list[str]
    column_id: int
    position: int
    entered_at: datetime
    checked: list[str]
    override_reason: str
    override_by: str


def board_rows(slug: str) -> tuple[Service, list[tuple[Column, list[CardRow]]]]:
    """Every column in order with every card in order, in three queries."""
    service = catalog.get_service(slug)
    columns = board.ensure_columns(service)
    _place_new_stories(service)
    people: defaultdict[int, list[str]] = defaultdict(list)
    assigned = Story.assignees.through.objects.filter(story__service=service).order_by("id")
    for story_id, username in assigned.values_list("story_id", "user__username"):
        people[story_id].append(username)
    cards = (
        Card.objects.filter(column__service=service)
        .order_by("column__position", "position", "story__rank")
        .values_list(
            "story_id",
            "story__number",
            "story__title",
            "story__kind",
            "story__estimate",
            "story__labels",
            "column_id",
            "position",
            "entered_at",
            "checked",
            "override_reason",
            "override_by",
        )
    )
    by_column: dict[int, list[CardRow]] = {column.pk: [] for column in columns}
    # The statement's raw values, converted here rather than field by field by the ORM
    # (2,000 cards: that conversion was most of the time): the JSON lists repeat (most
    # are "[]"), so each distinct one is parsed once.
    sql, params = cards.query.sql_with_params()
    parsed: dict[str, list[str]] = {}

    def listed(value: Any) -> list[str]:
        if not isinstance(value, str):
            return list(value or [])
        if value not in parsed:
            parsed[value] = json.loads(value)
        return list(parsed[value])

    for row in rows.fetch(sql, params):
        story_id, number, title, kind, estimate, labels, column_id, position, entered = row[:9]
        checked, override_reason, override_by = row[9:]
        card = CardRow(
            f"S-{number}",
            title,
            kind,
            estimate,
            listed(labels),
            people[story_id],
            column_id,
            position,
            _moment(entered),
            listed(checked),
            override_reason,
            override_by,
        )
        by_column[column_id].append(card)
    return service, [(column, by_column[column.pk]) for column in columns]


def _moment(value: datetime | str) -> datetime:
    """A stored time as the ORM reads it: aware, in UTC (SQLite holds it as naive text)."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


# What the board page shows of a card and its story (board/_card.html, and the stories'
# acceptance): the rest of a story (its description, its times) is not read.
_CARD_FIELDS = (
    "story",
    "column",
    "position",
    "entered_at",
    "checked",
    "override_reason",
    "override_by",
)
_STORY_FIELDS = ("service", "number", "kind", "title", "rank", "details")


def board_page(slug: str, *, shown: int | None = CARDS_SHOWN) -> dict[str, Any]:
    """Like ``services.board``, with at most ``shown`` cards a column (None: all): the
    first ones of a column, the most recently entered of a done column (in board order).
    Each column also says how many cards it holds (``count``) and how many are not shown."""
    service = catalog.get_service(slug)
    columns = board.ensure_columns(service)
    _place_new_stories(service)
    counts = dict(
        Card.objects.filter(column__service=service)
        .values_list("column_id")
        .annotate(n=Count("id"))
        .values_list("column_id", "n")
    )
    entries = []
    for column in columns:
        count = counts.get(column.pk, 0)
        cards = Card.objects.filter(column=column).order_by("position", "story__rank")
        if shown is not None and count > shown:
            if column.is_done:
                latest = Card.objects.filter(column=column).order_by("-entered_at", "-id")
                cards = cards.filter(pk__in=list(latest.values_list("pk", flat=True)[:shown]))
            else:
                cards = cards[:shown]
        listed = list(
            cards.select_related("story")
            .only(*_CARD_FIELDS, *(f"story__{name}" for name in _STORY_FIELDS))
            .prefetch_related(Prefetch("story__assignees", User.objects.only("username")))
        )
        for card in listed:
            card.column = column  # read once above, not again for every card
        entries.append(
            {
                "column": column,
                "cards": listed,
                "count": count,
                "hidden": count - len(listed),
                "wip": logic.wip_text(count, column.wip_limit),
                "full": column.wip_limit is not None and count >= column.wip_limit,
            }
        )
    return {"service": service, "columns": entries}
