"""A busy board for the board benchmarks: a year of 2,000 stories and 200,000 card moves.

Written straight into the tables (as a year of real moves would have left them): the
stories, each card in the column its last move took it to, and every ``story.created`` and
``story.moved`` event in time order. The stored flow tables are then built from that log
the way the migration backfills an existing install (``flow_store.rebuild``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from obeya.backlog.models import Story
from obeya.board import flow, flow_store
from obeya.board import services as board
from obeya.board.models import Card
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.core.models import Event, User

SLUG = "busy"
STORIES = 2_000
MOVES = 200_000
DAYS = 365
USERNAME = "bench"
PASSWORD = "a long enough bench password"  # noqa: S105 (a throwaway user in a temp dir)


@dataclass(frozen=True)
class BusyBoard:
    slug: str
    username: str
    password: str
    token: str  # a read token of the owner
    seed_s: float  # stories, cards and events written
    backfill_s: float  # the stored flow tables built from the log


def _walk(rng: random.Random, column: int, last: int) -> int:
    """The next column of a card: forward twice as often as back, never standing still."""
    step = rng.choice((1, 1, -1))
    target = column + step
    return target if 0 <= target <= last else column - step


def seed(now: datetime) -> BusyBoard:
    """The busy board in the configured database, written now unless an earlier benchmark
    of the same run did (then seed_s and backfill_s are 0)."""
    system = Actor(user=None, channel="system")
    if Service.objects.filter(slug=SLUG).exists():
        owner = User.objects.get(username=USERNAME)
        _, token = core.create_token(system, owner, name="bench", scope="read", days=1)
        return BusyBoard(SLUG, USERNAME, PASSWORD, token, 0.0, 0.0)
    began = time.perf_counter()
    owner = core.create_user(system, USERNAME, PASSWORD, check_password_strength=False)
    me = Actor(user=owner, channel="system")
    service = catalog.create_service(me, SLUG, "Busy board")
    columns = board.ensure_columns(service)
    rng = random.Random(20260301)  # noqa: S311 - a fixed seed: the same board on every run
    start = now - timedelta(days=DAYS)
    rows: list[tuple[datetime, str, str, dict[str, Any]]] = []
    stories: list[Story] = []
    places: list[tuple[int, datetime]] = []  # each story's last column and when it entered
    for number in range(1, STORIES + 1):
        key = f"S-{number}"
        created = start + timedelta(seconds=rng.uniform(0, 0.8 * DAYS * 86400))
        stories.append(
            Story(
                service=service,
                number=number,
                kind="user",
                title=f"story {number}",
                rank=number * 1024,
                created_at=created,
                updated_at=created,
            )
        )
        rows.append((created, flow.CREATED, key, {"key": key, "kind": "user"}))
        span = (now - created).total_seconds()
        column, entered_at = 0, created
        for moment in sorted(rng.uniform(0, span) for _ in range(MOVES // STORIES)):
            target = _walk(rng, column, len(columns) - 1)
            entered = columns[target]
            entered_at = created + timedelta(seconds=moment)
            rows.append(
                (
                    entered_at,
                    flow.MOVED,
                    key,
                    {
                        "key": key,
                        "kind": "user",
                        "title": f"story {number}",
                        "from": columns[column].name,
                        "to": entered.name,
                        "wip": "1",
                        "override_reason": "",
                        "starts_work": entered.starts_work,
                        "done": entered.is_done,
                    },
                )
            )
            column = target
        places.append((column, entered_at))
    for story, (column, entered_at) in zip(stories, places, strict=True):
        if columns[column].is_done:
            story.done_at = entered_at
    Story.objects.bulk_create(stories, batch_size=1000)
    Card.objects.bulk_create(
        (
            Card(story=story, column=columns[column], position=story.number, entered_at=entered_at)
            for story, (column, entered_at) in zip(stories, places, strict=True)
        ),
        batch_size=1000,
    )
    rows.sort(key=lambda row: row[0])  # ids follow time, as they do when recorded live
    Event.objects.bulk_create(
        (
            Event(
                at=at,
                actor_name=USERNAME,
                channel="system",
                kind=kind,
                subject=f"story:{SLUG}/{key}",
                service=SLUG,
                data=data,
            )
            for at, kind, key, data in rows
        ),
        batch_size=5000,
    )
    _, token = core.create_token(system, owner, name="bench", scope="read", days=1)
    seeded = time.perf_counter()
    flow_store.rebuild(service)
    return BusyBoard(
        SLUG,
        USERNAME,
        PASSWORD,
        token,
        round(seeded - began, 1),
        round(time.perf_counter() - seeded, 1),
    )
