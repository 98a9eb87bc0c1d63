"""500 HTTP monitors every 10 s on one `obeya serve`: do the checks run on time, and does
the web stay responsive meanwhile? (#6 Operations, Performance.)

A tiny HTTP target (the standard library's ThreadingHTTPServer, in its own process)
answers GET /health on loopback. 500 monitors of it, interval 10 s, are written disabled
into the benchmark's database through the ops services; a real `obeya serve` (no runners,
no deployers, embedded SQLite) is started on that database; then the monitors are enabled
with their first due times in one of two layouts, one after the other on the same server:

- spread: due times evenly spread over the interval (monitors made at different times, as
  they are in use: 50 checks a second, 20 ms apart), the layout the target is judged on;
- all at once: every monitor due at the same instant, each round (a burst of 500).

For 6 rounds (60 s) GET /api/health is sampled 10 times a second (and for 20 s before,
with every monitor disabled, to compare: the machine is shared). Then, from the
CheckResult rows of those rounds: lateness (how long after its due time each check
started), how long after its due time its result was written, checks per monitor (6 each
when none was skipped), failures. The monitors are left disabled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from bench.board_load import cpu_s
from bench.database import migrated
from bench.serving import child_env, free_port, probing, serve, stop
from bench.timing import summary_ms
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core.actors import system_actor
from obeya.ops import services as ops
from obeya.ops.models import CheckResult, Monitor

MONITORS = 500
INTERVAL_S = 10
ROUNDS = 6
TIMEOUT_S = 5.0
HEALTH_EVERY_S = 0.1
IDLE_S = 20.0  # /api/health sampled with every monitor disabled, to compare
LEAD_S = 1.0  # from enabling the monitors to the first due time
GRACE_S = 5.0  # after the last round's due times, for its checks to run and be recorded
SLUG = "monitored"
LATENESS_TARGET_P99_MS = 1000
HEALTH_TARGET_P99_MS = 50

TARGET = """\
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        found = self.path == "/health"
        body = b"ok\\n" if found else b"not found\\n"
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Target(ThreadingHTTPServer):
    request_queue_size = 256  # a burst of checks is not refused at the listen backlog


Target(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


@contextmanager
def health_target() -> Iterator[str]:
    """The tiny HTTP target in its own process; yields its /health URL once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", TARGET, str(port)], stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/health"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the HTTP target did not answer in 10 s") from None
            time.sleep(0.05)
        yield url
    finally:
        stop(process)


def _monitors(url: str) -> list[int]:
    """MONITORS disabled HTTP monitors of ``url`` on a fresh service; their ids."""
    actor = system_actor()
    Service.objects.filter(slug=SLUG).delete()  # an earlier run's, in the same database
    catalog.create_service(actor, SLUG, "Monitored")
    return [
        ops.create_monitor(
            actor,
            SLUG,
            f"health-{number:03d}",
            kind="http",
            url=url,
            interval_s=INTERVAL_S,
            timeout_s=TIMEOUT_S,
            enabled=False,
        ).pk
        for number in range(MONITORS)
    ]


def _enable(ids: list[int], spread: bool) -> dict[int, datetime]:
    """Enable the monitors, first due LEAD_S from now (spread or not); their first due times."""
    start = timezone.now() + timedelta(seconds=LEAD_S)
    step = timedelta(seconds=INTERVAL_S / len(ids)) if spread else timedelta(0)
    first = {pk: start + index * step for index, pk in enumerate(ids)}
    with transaction.atomic():
        for pk, due in first.items():
            Monitor.objects.filter(pk=pk).update(
                enabled=True, next_due_at=due, claimed_until=None, claim_token=""
            )
    connections.close_all()
    return first


def _disable(ids: list[int]) -> None:
    """Disable the monitors, then wait (up to 30 s) for the checks already claimed."""
    Monitor.objects.filter(pk__in=ids).update(enabled=False)
    deadline = time.monotonic() + 30
    while Monitor.objects.filter(pk__in=ids, claimed_until__isnull=False).exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    connections.close_all()


@dataclass
class Rounds:
    """The checks recorded for rounds 0 to ROUNDS-1 of each monitor."""

    lateness_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    recorded_s: list[float] = field(default_factory=list)  # from due to result written
    per_monitor: Counter[int] = field(default_factory=Counter)
    failures: int = 0

    def figures(self) -> dict[str, object]:
        counts = Counter(self.per_monitor.values())
        return {
            "checks_expected": MONITORS * ROUNDS,
            "checks_recorded": len(self.lateness_s),
            "checks_failed": self.failures,
            "monitors_by_checks_recorded": {str(n): counts[n] for n in sorted(counts)},
            "lateness": {**summary_ms(self.lateness_s), "max_ms": _max_ms(self.lateness_s)},
            "check_latency": {**summary_ms(self.latency_s), "max_ms": _max_ms(self.latency_s)},
            "due_to_result_written": {
                **summary_ms(self.recorded_s),
                "max_ms": _max_ms(self.recorded_s),
            },
        }


def _max_ms(durations_s: list[float]) -> float:
    return round(max(durations_s) * 1000, 3)


def _p99_ms(durations_s: list[float]) -> float:
    return summary_ms(durations_s)["p99_ms"] if durations_s else float("inf")


def _rounds(first: dict[int, datetime]) -> Rounds:
    """The checks of each monitor due in its rounds 0 to ROUNDS-1 (after ``first``)."""
    rounds = Rounds(per_monitor=Counter(dict.fromkeys(first, 0)))
    rows = CheckResult.objects.filter(
        monitor_id__in=list(first), at__gte=min(first.values())
    ).values_list("monitor_id", "at", "lateness_ms", "latency_ms", "ok")
    for monitor_id, at, lateness_ms, latency_ms, ok in rows:
        # `at` is when the result was recorded: its due time + lateness + the check's own
        # time and the wait to write it, which is less than an interval
        started = at - timedelta(milliseconds=lateness_ms)
        due_round = (started - first[monitor_id]).total_seconds() // INTERVAL_S
        if 0 <= due_round < ROUNDS:
            due = first[monitor_id] + timedelta(seconds=due_round * INTERVAL_S)
            rounds.per_monitor[monitor_id] += 1
            rounds.lateness_s.append(lateness_ms / 1000)
            rounds.latency_s.append(latency_ms / 1000)
            rounds.recorded_s.append((at - due).total_seconds())
            rounds.failures += not ok
    connections.close_all()
    return rounds


def _layout(url: str, server_pid: int, ids: list[int], spread: bool) -> dict[str, object]:
    """Enable the monitors in one layout for ROUNDS rounds, probing /api/health meanwhile."""
    load_before = round(os.getloadavg()[0], 1)
    cpu_before = cpu_s(server_pid)
    first = _enable(ids, spread)
    end = max(first.values()) + timedelta(seconds=(ROUNDS - 1) * INTERVAL_S + GRACE_S)
    with probing(url, HEALTH_EVERY_S) as probe:
        time.sleep(max(0.0, (end - timezone.now()).total_seconds()))
    _disable(ids)
    cpu_ms = (cpu_s(server_pid) - cpu_before) * 1000
    wall_s = (timezone.now() - min(first.values())).total_seconds()
    rounds = _rounds(first)
    checked = len(rounds.lateness_s)
    return {
        **rounds.figures(),
        "health": probe.figures(),
        "server_cpu_busy_share": round(cpu_ms / 1000 / wall_s, 2),
        "server_cpu_ms_per_check (health requests included)": round(cpu_ms / max(1, checked), 2),
        "load_average_1m_before": load_before,
        "load_average_1m_after": round(os.getloadavg()[0], 1),
        "target_met": {
            "lateness_p99": _p99_ms(rounds.lateness_s) <= LATENESS_TARGET_P99_MS,
            "health_p99": not probe.failures and _p99_ms(probe.latencies) <= HEALTH_TARGET_P99_MS,
            # each monitor keeps its own phase after its first check, so a window of
            # ROUNDS intervals holds ROUNDS or ROUNDS + 1 checks of it
            "every_check_ran": len(rounds.per_monitor) == MONITORS
            and min(rounds.per_monitor.values()) >= ROUNDS
            and not rounds.failures,
        },
    }


def run() -> dict[str, object]:
    vendor = migrated()
    passed = {
        name: os.environ[name]
        for name in ("OBEYA_DATABASE_URL", "OBEYA_TIME_ZONE", "OBEYA_SECRET_KEY")
        if os.environ.get(name)
    }
    env = child_env(Path(settings.DATA_DIR), OBEYA_RUNNERS="0", OBEYA_DEPLOYERS="0", **passed)
    figures: dict[str, object] = {
        "database": vendor,
        "server": "obeya serve, OBEYA_RUNNERS=0 OBEYA_DEPLOYERS=0 (one uvicorn process)",
        "monitors": MONITORS,
        "kind": "http GET of a ThreadingHTTPServer /health on loopback (200)",
        "interval_s": INTERVAL_S,
        "timeout_s": TIMEOUT_S,
        "rounds": ROUNDS,
        "health_sampled_every_s": HEALTH_EVERY_S,
        "targets": {
            "lateness_p99_ms": LATENESS_TARGET_P99_MS,
            "health_p99_ms": HEALTH_TARGET_P99_MS,
            "judged_on": "spread (issue #6 does not say; all at once is the worst case)",
        },
        "load_average_1m_before": round(os.getloadavg()[0], 1),
    }
    with health_target() as target:
        ids = _monitors(target)
        connections.close_all()
        log = Path(settings.DATA_DIR) / "serve-ops-monitors.log"
        with serve(env, log) as (url, process):
            with probing(url, HEALTH_EVERY_S) as idle:
                time.sleep(IDLE_S)
            figures["health with no monitor enabled (for comparison)"] = idle.figures()
            for name, spread in (("spread", True), ("all at once", False)):
                figures[name] = _layout(url, process.pid, ids, spread)
    figures["load_average_1m_after"] = round(os.getloadavg()[0], 1)
    return figures
