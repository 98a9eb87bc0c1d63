"""Flow metrics of a busy board: a year of 2,000 stories and 200,000 card moves.

Measures every metric over the year (target: 200 ms or less) the way the API computes it,
from the stored flow tables (``flow_store``); then the same from the whole event log (the
pure replay, and reading the log), and GET /api/services/{slug}/flow over the real API
stack (in-process WSGI), so a miss shows where the time goes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import httpx
from django.conf import settings
from django.utils import timezone

from bench import board_seed
from bench.database import migrated
from bench.timing import summary_ms
from obeya.board import flow, flow_api, flow_queries, flow_store
from obeya.catalog import services as catalog
from obeya.wsgi import application

SLUG, DAYS = board_seed.SLUG, board_seed.DAYS

ROUNDS = 10
REQUESTS = 30


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
    busy = board_seed.seed(now)
    figures: dict[str, object] = {
        "database": vendor,
        "seed_s": busy.seed_s,
        "stored flow built from the log (flow_store.rebuild, as the migration does)_s": (
            busy.backfill_s
        ),
        # Other work on the machine slows the wall clock; CPU time shows the cost itself.
        "load_average_1m_before": round(os.getloadavg()[0], 1),
    }
    service = catalog.get_service(SLUG)
    records = flow_store.story_events(SLUG, until=now)
    columns = flow_queries.board_columns(SLUG)
    window = flow.Window(DAYS, now, timezone.get_default_timezone())
    stored = flow_store.stored_replay(service, columns, window)
    if stored is None:
        raise RuntimeError("the stored flow cannot answer for the benchmark's window")
    metrics = flow.metrics_of(stored, columns, window)
    if metrics != flow.flow_metrics(records, columns, window):
        raise RuntimeError("the stored flow and a replay of the log disagree")
    figures |= {
        "stories": board_seed.STORIES,
        "story_events": len(records),
        "window_days": DAYS,
        "done_in_window": len(metrics.lead_time.items),
        "target_compute_ms": 200,
        "read + compute from the stored flow (flow_queries.service_flow)": _timed(
            ROUNDS, lambda: flow_queries.service_flow(SLUG, days=DAYS, now=now)
        ),
        "  of which: read the stored flow (flow_store.stored_replay)": _timed(
            ROUNDS, lambda: flow_store.stored_replay(service, columns, window)
        ),
        "  of which: every metric from it (flow.metrics_of)": _timed(
            ROUNDS, lambda: flow.metrics_of(stored, columns, window)
        ),
        "without the stored flow: compute from the events in memory (flow.flow_metrics)": (
            _timed(ROUNDS, lambda: flow.flow_metrics(records, columns, window))
        ),
        "without the stored flow: read the events from the log (flow_store.story_events)": (
            _timed(ROUNDS, lambda: flow_store.story_events(SLUG, until=now))
        ),
        "JSON body (flow_api.flow_json)": _timed(ROUNDS, lambda: flow_api.flow_json(metrics)),
    }
    host = settings.ALLOWED_HOSTS[0]
    path = f"/api/services/{SLUG}/flow?days={DAYS}"
    with httpx.Client(
        transport=httpx.WSGITransport(app=application),
        base_url=f"http://{host}",
        headers={"Authorization": f"Bearer {busy.token}"},
    ) as client:
        figures["response_kb"] = round(len(client.get(path).raise_for_status().content) / 1024, 1)
        figures[f"GET /api/services/{{slug}}/flow?days={DAYS} (in-process, one client)"] = _timed(
            REQUESTS, lambda: client.get(path).raise_for_status()
        )
    figures["load_average_1m_after"] = round(os.getloadavg()[0], 1)
    return figures
