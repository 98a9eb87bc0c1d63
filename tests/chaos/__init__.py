"""Restart chaos (RELIABILITY A1-A3): `kill -9` of `obeya serve` mid-pipeline, again and again.

A real `obeya serve` (embedded SQLite in a data dir of its own, two embedded runners, jobs
in the sandbox, web workers) runs the pipeline of a real git repository: three stages of
jobs that print numbered lines for a second or so. Runs keep being started through the API,
and at random moments the server's whole process group gets SIGKILL; then it is started
again on the same data dir. All the while, what the API answered is written down (the
server had committed it): the states of runs, jobs and attempts, and each attempt's log as
far as it was read (`tests.chaos.book`).

After each restart, once /api/health answers, the API must show:
- every run and job in a legal state, reached from the one seen before by legal moves
  (`obeya.pipelines.logic`; nobody retries by hand here, so a final job stays as it was),
  and each run's status what its jobs make it;
- a running job holding a lease that runs out (at most a lease ahead), any other job none;
  attempts numbered 1..n, none open but a running job's last, an ended one keeping its
  outcome;
- every log byte read before the kill, still there byte for byte;
- and, while the server was down: no job's process left behind, the SQLite file sound.
A running job whose lease ran out must be reaped within a reaper's tick. At the end no run
is started any more: every run and job must reach a final state within a deadline, and all
of the above is checked once more over everything.

`python -m tests.chaos --kills 200 [--seed N]` (`make chaos`) prints a summary and exits 1
naming each violation; tests/e2e/test_chaos.py runs a short one.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from obeya.pipelines import logic
from tests.chaos.book import RUN_FINAL, SLUG, Book, check_after_restart, look
from tests.chaos.server import Server

OPEN_RUNS = 4  # a run is started while fewer are unfinished and under two jobs are at work
POLL_S = 0.1


@dataclass(frozen=True)
class Plan:
    kills: int
    seed: int
    max_delay_s: float = 8.0  # each kill comes 0.2 s to this long after /api/health answers
    settle_s: float = 180.0  # at the end, for every run to finish


@dataclass
class Report:
    book: Book
    seconds: float
    restarts_s: float  # from each kill to the checks after it, in all
    compared_bytes: int

    @property
    def violations(self) -> list[str]:
        return list(self.book.violations.values())

    def summary(self) -> str:
        book = self.book
        runs = Counter(book.runs.values())
        attempts = Counter(book.outcomes.values())
        return "\n".join(
            [
                f"{book.kills} kills, {book.mid_job} of them while a job held a live lease; "
                f"{self.seconds:.0f} s in all, {self.restarts_s:.0f} s of it restarting",
                f"runs: {len(book.runs)} ({_tally(runs)}); jobs: {len(book.jobs)}; "
                f"attempts: {_tally(attempts)}",
                f"log bytes read before a kill and found again after it: {self.compared_bytes}",
                f"violations: {len(self.violations)}",
                *(f"  VIOLATION: {sentence}" for sentence in self.violations),
            ]
        )


def _tally(counts: Counter[str]) -> str:
    return ", ".join(f"{count} {what}" for what, count in sorted(counts.items())) or "none"


def keep_busy(api: httpx.Client, details: list[Any]) -> None:
    """Start a run when few are unfinished and fewer than two jobs are queued or running."""
    unfinished = [run for run in details if run["status"] not in RUN_FINAL]
    at_work = sum(job["status"] in {"queued", "running"} for r in unfinished for job in r["jobs"])
    if len(unfinished) < OPEN_RUNS and at_work < 2:
        api.post(f"/services/{SLUG}/runs", json={}).raise_for_status()


def while_up(server: Server, api: httpx.Client, book: Book, *, busy: bool) -> None:
    """Look, and keep runs coming (``busy``), until the server is killed; or look once."""
    while not server.killed.is_set():
        try:
            details = look(api, book, server.started, every_run=False)
            if busy:
                keep_busy(api, details)
        except httpx.HTTPError as error:
            if not server.killed.is_set():
                exited = server.process.poll() if server.process else None
                why = f"obeya serve exited ({exited})" if exited is not None else repr(error)
                book.violate([(f"http {why}", f"the API failed while up: {why}")])
        if not busy:
            return
        server.killed.wait(POLL_S)


def checked(api: httpx.Client, book: Book, *, every_run: bool) -> int:
    """`check_after_restart`, an API that fails it being one more violation."""
    try:
        return check_after_restart(api, book, every_run=every_run)
    except httpx.HTTPError as error:
        book.violate([(f"check {error!r}", f"the API failed the checks: {error!r}")])
        return 0


def chaos(plan: Plan, root: Path, say: Callable[[str], None] = print) -> Report:
    """Carry out ``plan`` in the empty folder ``root`` (repository, data dir, server log)."""
    begun, rng, book = time.monotonic(), random.Random(plan.seed), Book()
    server = Server(root)
    api = server.start()
    compared, restarts_s = 0, 0.0
    try:
        service = {"slug": SLUG, "name": "Chaos", "repository_url": str(root / "repo")}
        api.post("/services", json=service).raise_for_status()
        for kill in range(1, plan.kills + 1):
            delay = rng.uniform(0.2, plan.max_delay_s)

            def strike() -> None:
                book.mid_job += book.live
                server.kill()

            timer = threading.Timer(delay, strike)
            timer.start()
            while_up(server, api, book, busy=True)
            timer.join()
            killed, book.kills = time.monotonic(), kill
            api.close()
            server.check_while_down(book)
            starting = time.monotonic()
            api = server.start()
            started = time.monotonic()
            compared += checked(api, book, every_run=False)
            restarts_s += time.monotonic() - killed
            say(
                f"kill {kill}/{plan.kills} {delay:.1f} s after a start; down "
                f"{starting - killed:.1f} s, starting {started - starting:.1f} s, checks "
                f"{time.monotonic() - started:.1f} s; violations: {len(book.violations)}"
            )
        say(f"settling: no new runs; {plan.settle_s:.0f} s at most for every run to finish")
        deadline = time.monotonic() + plan.settle_s
        while time.monotonic() < deadline and set(book.runs.values()) - RUN_FINAL:
            while_up(server, api, book, busy=False)
            time.sleep(POLL_S)
        say(f"settled in {time.monotonic() - deadline + plan.settle_s:.1f} s")
        compared += checked(api, book, every_run=True)
        # Every run and job final: after the calm, the ones that are not never will be.
        stuck = [(f"run #{n}", s) for n, s in book.runs.items() if s not in RUN_FINAL]
        stuck += [(book.names[j], s) for j, s in book.jobs.items() if s not in logic.FINAL]
        book.violate(
            [(f"{what} stuck", f"{what} is still {state} at the end") for what, state in stuck]
        )
    finally:
        api.close()
        server.stop()
    server.check_while_down(book)
    return Report(book, time.monotonic() - begun, restarts_s, compared)
