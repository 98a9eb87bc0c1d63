"""Reading a busy board: its cards as plain values for the JSON API, the page's columns
with only their first cards, and the version that caches of both are keyed on.

A board of 2,000 cards read as model objects took ~300 ms a request (bench/board_load.py);
as plain values in three queries it takes a fraction of that, and a cache keyed on the
board's version serves it again until the board changes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.core.cache import cache
from django.db.models import Count

from obeya.backlog.models import Story
from obeya.board import flow_store, logic
from obeya.board import services as board
from obeya.board.models import Card, Column
from obeya.catalog import services as catalog
from obeya.catalog.models import Service

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
    for story_id, number, title, kind, estimate, labels, *rest in cards:
        row = CardRow(f"S-{number}", title, kind, estimate, labels, people[story_id], *rest)
        by_column[row.column_id].append(row)
    return service, [(column, by_column[column.pk]) for column in columns]


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
        listed = list(cards.select_related("story", "column").prefetch_related("story__assignees"))
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
