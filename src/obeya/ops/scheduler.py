"""The monitor scheduler inside `obeya serve`: claims due checks, runs them in a pool.

Each due monitor is claimed with a conditional update of its row (due, not claimed or
claim expired), so with several server processes each check runs once per tick. Checks
run in a thread pool and each is cut at its own timeout, so a hanging one never delays
the others.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.db import close_old_connections, transaction
from django.db.models import Q

from obeya.core import outbound
from obeya.core.actors import Actor, system_actor
from obeya.ops import checks, logic, services
from obeya.ops.models import Monitor

log = logging.getLogger("obeya.ops")
TICK_S = 0.1  # small batches: a tick's checks compete less with the web for the GIL
BATCH = 200
CLAIM_SLACK_S = 5.0
POOL_SIZE = 32
ROLLUP_TICKS = int(600 / TICK_S)


def next_due(monitor_id: int, interval_s: int, now: datetime) -> datetime:
    """The next time on the monitor's own rhythm after ``now``, skipping missed ticks.

    Each monitor keeps its own phase in its interval (from its id, like Prometheus spreads
    scrapes), so monitors made together are not all due at the same instant, tick after
    tick: the checks spread over the interval by themselves.
    """
    phase = logic.phase(monitor_id, interval_s)
    stamp = now.timestamp()
    ticks = math.floor((stamp - phase) / interval_s) + 1
    return datetime.fromtimestamp(phase + ticks * interval_s, tz=now.tzinfo)


def claim_due(actor: Actor) -> list[tuple[Monitor, datetime]]:
    """Claim the monitors that are due now; each with the time it was due.

    A tick's claims are one transaction and its monitors are read in one query: with
    hundreds of monitors, a commit per claim kept SQLite's one writer from the checks.
    """
    now = actor.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = list(
        Monitor.objects.filter(enabled=True, next_due_at__lte=now)
        .filter(free)
        .order_by("next_due_at")
        .values_list("pk", "next_due_at", "interval_s", "timeout_s")[:BATCH]
    )
    if not due:
        return []
    taken: dict[int, datetime] = {}
    with transaction.atomic():
        for pk, due_at, interval_s, timeout_s in due:
            if (
                Monitor.objects.filter(pk=pk, next_due_at=due_at)
                .filter(free)
                .update(
                    claim_token=secrets.token_hex(8),
                    claimed_until=now + timedelta(seconds=timeout_s + CLAIM_SLACK_S),
                    next_due_at=next_due(pk, interval_s, now),
                )
            ):
                taken[pk] = due_at
    monitors = Monitor.objects.select_related("service").in_bulk(list(taken))
    return [(monitors[pk], due_at) for pk, due_at in taken.items() if pk in monitors]


def allow_lists(claimed: list[tuple[Monitor, datetime]]) -> dict[int, outbound.Policy]:
    """The allow-list of each service with a claimed HTTP monitor, by service id: read once
    a tick, not once a check (it takes queries of the service and its environments)."""
    found: dict[int, outbound.Policy] = {}
    for monitor, _ in claimed:
        if monitor.kind == "http" and monitor.service_id not in found:
            try:
                found[monitor.service_id] = services.outbound_policy(monitor.service)
            except Exception:  # noqa: S112 - each check reads it again and records why not
                continue
    return found


def run_check(
    monitor: Monitor,
    due_at: datetime,
    clock: Actor | None = None,
    policy: outbound.Policy | None = None,
) -> None:
    """Run one claimed check, keep its result and end the claim; ``policy``: the service's
    allow-list when the caller has it already."""
    actor = clock or system_actor()
    try:
        lateness = max((actor.now() - due_at).total_seconds() * 1000, 0.0)
        if monitor.kind == "http":
            outcome = checks.http_check(
                monitor.url,
                policy or services.outbound_policy(monitor.service),
                monitor.timeout_s,
                monitor.expect_status,
                monitor.contains,
            )
        else:
            env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
            env.update(OBEYA_SERVICE=monitor.service.slug, OBEYA_ENVIRONMENT=monitor.environment)
            outcome = checks.command_check(monitor.command, monitor.timeout_s, env)
        with transaction.atomic():  # the result and the end of the claim: one commit
            services.record_result(
                actor, monitor.pk, outcome.ok, outcome.latency_ms, outcome.detail, lateness
            )
            Monitor.objects.filter(pk=monitor.pk).update(claimed_until=None, claim_token="")
    except Exception:  # one broken check must not stop the others
        log.exception("monitor %s: check failed to run", monitor.pk)


def _pooled(monitor: Monitor, due_at: datetime, policy: outbound.Policy | None = None) -> None:
    try:
        run_check(monitor, due_at, policy=policy)
    finally:
        close_old_connections()  # this pool thread's connection, not the caller's


def _loop(stop: threading.Event) -> None:
    ticks = 0
    with ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="monitor") as pool:
        while not stop.wait(TICK_S):
            ticks += 1
            try:
                close_old_connections()
                claimed = claim_due(system_actor())
                policies = allow_lists(claimed)
                for monitor, due_at in claimed:
                    pool.submit(_pooled, monitor, due_at, policies.get(monitor.service_id))
                if ticks % ROLLUP_TICKS == 1:  # at start, then every 10 minutes
                    rolled = services.cleanup_results(system_actor())
                    if rolled:
                        log.info("monitors: %s raw result(s) rolled up per hour", rolled)
            except Exception:
                log.exception("monitor scheduler tick failed")
            finally:
                close_old_connections()


def start() -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(stop,), name="monitors", daemon=True)
    thread.start()
    return stop, thread
