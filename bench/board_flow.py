"""Flow metrics of a busy board: a year of 2,000 stories and 200,000 card moves.

Measures the pure computation of every metric over the year (target: 200 ms or less),
reading the events from the log, the two together, and GET /api/services/{slug}/flow over
the real API stack (in-process WSGI), so a miss shows where the time goes.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from bench.database import migrated
from bench.timing import summary_ms
from obeya.backlog.models import Story
from obeya.board import flow, flow_api, flow_queries
from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.core.models import Event
from obeya.wsgi import application

SLUG = "busy"
STORIES = 2_000
MOVES = 200_000
DAYS = 365
ROUNDS = 10
REQUESTS = 30


def _walk(rng: random.Random, column: int, last: int) -> int:
    """The next column of a card: forward twice as often as back, never standing still."""
    step = rng.choice((1, 1, -1))
    target = column + step
    return target if 0 <= target <= last else column - step


def _seed(now: datetime) -> str:
    system = Actor(user=None, channel="system")
    owner = core.create_user(system, "bench", "bench password 123", check_password_strength=False)
    me = Actor(user=owner, channel="system")
    service = catalog.create_service(me, SLUG, "Busy board")
    columns = board.ensure_columns(service)
    rng = random.Random(20260301)  # noqa: S311 - a fixed seed: the same board on every run
    start = now - timedelta(days=DAYS)
    rows: list[tuple[datetime, str, str, dict[str, Any]]] = []
    stories = []
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
        column = 0
        for moment in sorted(rng.uniform(0, span) for _ in range(MOVES // STORIES)):
            target = _walk(rng, column, len(columns) - 1)
            entered = columns[target]
            rows.append(
                (
                    created + timedelta(seconds=moment),
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
    Story.objects.bulk_create(stories, batch_size=1000)
    rows.sort(key=lambda row: row[0])  # ids follow time, as they do when recorded live
    Event.objects.bulk_create(
        (
            Event(
                at=at,
                actor_name="bench",
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
    return token


def _timed(rounds: int, work: Callable[[], object]) -> dict[str, float]:
    """Wall-clock percentiles, and the median CPU time: on a busy machine the two differ."""
    durations, cpu = [], []
    for _ in range(rounds):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        work()
        durations.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
    return {**summary_ms(durations), "cpu_p50_ms": round(sorted(cpu)[len(cpu) // 2] * 1000, 3)}


def run() -> dict[str, object]:
    vendor = migrated()
    now = timezone.now()
    seeding = time.perf_counter()
    token = _seed(now)
    figures: dict[str, object] = {
        "database": vendor,
        "seed_s": round(time.perf_counter() - seeding, 1),
        # Other work on the machine slows the wall clock; CPU time shows the cost itself.
        "load_average_1m_before": round(os.getloadavg()[0], 1),
    }
    records = flow_queries.story_events(SLUG, until=now)
    columns = flow_queries.board_columns(SLUG)
    window = flow.Window(DAYS, now, timezone.get_default_timezone())
    metrics = flow.flow_metrics(records, columns, window)
    replayed = flow.replay(records, columns, window)
    figures |= {
        "stories": STORIES,
        "story_events": len(records),
        "window_days": DAYS,
        "done_in_window": len(metrics.lead_time.items),
        "target_compute_ms": 200,
        "compute all metrics (pure, events in memory)": _timed(
            ROUNDS, lambda: flow.flow_metrics(records, columns, window)
        ),
        "  of which: sort + replay": _timed(ROUNDS, lambda: flow.replay(records, columns, window)),
        "  of which: lead/cycle/throughput/aging/cfd from the replay": _timed(
            ROUNDS,
            lambda: (
                flow.lead_time(replayed, window),
                flow.cycle_time(replayed, window),
                flow.throughput(replayed, window),
                flow.aging(replayed, window),
                flow.cumulative_flow(replayed.daily, columns),
            ),
        ),
        "read events from the log (flow_queries.story_events)": _timed(
            ROUNDS, lambda: flow_queries.story_events(SLUG, until=now)
        ),
        "read + compute (flow_queries.service_flow)": _timed(
            ROUNDS, lambda: flow_queries.service_flow(SLUG, days=DAYS, now=now)
        ),
        "JSON body as dicts (flow_api.flow_body)": _timed(
            ROUNDS, lambda: flow_api.flow_body(metrics)
        ),
    }
    host = settings.ALLOWED_HOSTS[0]
    path = f"/api/services/{SLUG}/flow?days={DAYS}"
    with httpx.Client(
        transport=httpx.WSGITransport(app=application),
        base_url=f"http://{host}",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        figures["response_kb"] = round(len(client.get(path).raise_for_status().content) / 1024, 1)
        figures[f"GET /api/services/{{slug}}/flow?days={DAYS}"] = _timed(
            REQUESTS, lambda: client.get(path).raise_for_status()
        )
    figures["load_average_1m_after"] = round(os.getloadavg()[0], 1)
    return figures
