"""What the API answered before each kill, and the checks of what it answers after.

Whatever the API answered was committed, so it must still hold after a kill. Reads of one
answer that take more than one query (a run, then its jobs; a job, then its attempts) can
straddle a change the runners make meanwhile: a mismatch between them is read again before
it counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from obeya.pipelines import logic

SLUG = "chaos"
LEASE_S = 4  # OBEYA_LEASE_SECONDS: short, so that jobs lost in a kill come back soon
REAP_S = 5.0  # obeya.pipelines.background.REAP_INTERVAL_S (importing it needs Django)
SLACK_S = 10.0  # how late a busy machine may be, on top of what the server promises
RUN_FINAL = frozenset({"succeeded", "failed", "canceled"})
Problems = list[tuple[str, str]]  # (key, sentence): a key is reported once


def _reachable() -> dict[str, frozenset[str]]:
    """For each job state, the states that legal moves lead to (itself included)."""
    reach = {}
    for start in logic.JOB_TRANSITIONS:
        seen, todo = {start}, [start]
        while todo:
            for following in logic.JOB_TRANSITIONS[todo.pop()] - seen:
                seen.add(following)
                todo.append(following)
        reach[start] = frozenset(seen)
    return reach


REACHABLE = _reachable()  # its keys are the legal job states ("lost" is an attempt's outcome)


@dataclass
class Book:
    """What the API answered, the violations found, and the tallies."""

    runs: dict[int, str] = field(default_factory=dict)  # number -> status
    jobs: dict[int, str] = field(default_factory=dict)  # id -> status
    names: dict[int, str] = field(default_factory=dict)  # id -> "run #n job x"
    outcomes: dict[tuple[int, int], str] = field(default_factory=dict)  # finished attempts
    logs: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (job, attempt) -> read
    unchecked: set[tuple[int, int]] = field(default_factory=set)  # read since the last check
    violations: dict[str, str] = field(default_factory=dict)  # key -> sentence
    kills: int = 0
    mid_job: int = 0  # kills while a job held a live lease
    live: bool = False  # in the latest whole look, a job held a live lease
    seeing_live: bool = False  # in the look under way

    def violate(self, problems: Problems) -> None:
        for key, sentence in problems:
            self.violations.setdefault(key, sentence)


def get(api: httpx.Client, path: str, **params: Any) -> httpx.Response:
    return api.get(path, params=params).raise_for_status()


def look(api: httpx.Client, book: Book, up_since: datetime | None, *, every_run: bool) -> list[Any]:
    """Read the runs (all, or the recent and the unfinished) and check them against the
    book, then write them in it; read the new bytes of running jobs' logs. Returns the runs
    read in full. ``up_since``: when the server started (None: just now)."""
    if every_run:
        listed: list[Any] = []
        while page := get(api, f"/services/{SLUG}/runs", limit=100, offset=len(listed)).json():
            listed += page["items"]
            if len(listed) >= page["count"] or not page["items"]:
                break
        there = {run["number"] for run in listed}
        book.violate(
            [(f"gone {n}", f"run #{n} ({s} before) is gone") for n, s in book.runs.items()
             if n not in there]
        )  # fmt: skip
    else:
        listed = get(api, f"/services/{SLUG}/runs", limit=20).json()["items"]
    numbers = {run["number"] for run in listed if every_run or run["status"] not in RUN_FINAL}
    numbers |= {n for n, status in book.runs.items() if status not in RUN_FINAL}
    details = [get(api, f"/services/{SLUG}/runs/{n}").json() for n in sorted(numbers)]
    book.seeing_live = False
    for run in details:
        see_run(api, book, run, up_since or datetime.now(UTC))
    book.live = book.seeing_live
    return details


def see_run(api: httpx.Client, book: Book, run: dict[str, Any], up_since: datetime) -> None:
    number, status = run["number"], run["status"]
    before = book.runs.get(number)
    if before in RUN_FINAL and status != before:
        book.violate([(f"run {number} {status}", f"run #{number} was {before}, now {status}")])
    if _run_problems(run):  # read again: the run and its jobs are two reads
        book.violate(_run_problems(get(api, f"/services/{SLUG}/runs/{number}").json()))
    book.runs[number] = status
    now = datetime.now(UTC)
    for job in run["jobs"]:
        name = book.names.setdefault(job["id"], f"run #{number} job {job['name']}")
        before, state = book.jobs.get(job["id"]), job["status"]
        if state not in REACHABLE:
            book.violate([(f"{job['id']} {state}", f"{name} is in no legal state: {state!r}")])
        elif before is not None and (
            state not in REACHABLE[before] or (before in logic.FINAL and state != before)
        ):  # nobody retries a job by hand here: a final one stays as it was
            book.violate([(f"{job['id']} {before}>{state}", f"{name} went {before} -> {state}")])
        book.jobs[job["id"]] = state
        book.violate(lease_problems(book, name, job, now, up_since))
        if state == "running" or before == "running":
            read_log(api, book, job["id"], job["attempt"])


def _run_problems(run: dict[str, Any]) -> Problems:
    derived = logic.run_status(job["status"] for job in run["jobs"])
    if run["status"] == derived:
        return []
    states = ", ".join(f"{job['name']} {job['status']}" for job in run["jobs"])
    sentence = f"run #{run['number']} is {run['status']}, its jobs ({states}) make it {derived}"
    return [(f"run {run['number']} {run['status']}", sentence)]


def lease_problems(
    book: Book, name: str, job: dict[str, Any], now: datetime, up_since: datetime
) -> Problems:
    """A running job holds a lease that runs out, and is reaped once it has (when the
    server has been up long enough for its reaper to tick); no other job holds one."""
    stamp, state, attempt = job["lease_expires_at"], job["status"], job["attempt"]
    expires = datetime.fromisoformat(stamp) if stamp else None
    key = f"{job['id']}/{attempt} lease"
    if state != "running":
        held = expires is not None
        return [(key, f"{name} is {state} but holds a lease until {expires:%T}")] if held else []
    if expires is None or job["runner"] is None or attempt < 1:
        return [(key, f"{name} is running (attempt {attempt}) with no lease or runner")]
    if expires > now + timedelta(seconds=LEASE_S + SLACK_S):
        return [(key, f"{name} is running on a lease that ends only at {expires:%T}")]
    late = timedelta(seconds=REAP_S + SLACK_S)
    if up_since < now - late and expires < now - late:
        return [(key, f"{name} is still running (attempt {attempt}); its lease ended {expires:%T}")]
    # Live: leased (or renewed) by this server, not by the one killed before it.
    book.seeing_live |= expires > now and expires - timedelta(seconds=LEASE_S) > up_since
    return []


def read_log(api: httpx.Client, book: Book, job_id: int, attempt: int) -> None:
    """Add the bytes of the attempt's log that were not read yet."""
    if attempt < 1:
        return
    known = book.logs.get((job_id, attempt), b"")
    more = get(api, f"/jobs/{job_id}/log", attempt=attempt, offset=len(known)).content
    if more:
        book.logs[(job_id, attempt)] = known + more
        book.unchecked.add((job_id, attempt))


def check_attempts(api: httpx.Client, book: Book, job_id: int) -> None:
    """Attempts numbered 1..n, only a running job's last one open, outcomes kept."""
    job = get(api, f"/jobs/{job_id}").json()
    if _attempt_problems(book, job):  # read again: the job and its attempts are two reads
        job = get(api, f"/jobs/{job_id}").json()
        book.violate(_attempt_problems(book, job))
    for attempt in job["attempts"]:
        if attempt["finished_at"] is not None:
            book.outcomes[(job_id, attempt["number"])] = attempt["outcome"]


def _attempt_problems(book: Book, job: dict[str, Any]) -> Problems:
    name, attempts, found = book.names[job["id"]], job["attempts"], []
    numbers = [attempt["number"] for attempt in attempts]
    if numbers != list(range(1, job["attempt"] + 1)):
        found.append((f"{job['id']} numbers", f"{name} is at {job['attempt']}, has {numbers}"))
    if len(attempts) > 1 + max(job["retry_max"], logic.INFRASTRUCTURE_RETRIES):
        found.append((f"{job['id']} retries", f"{name} ran {len(attempts)} times"))
    for attempt in attempts:
        number, outcome = attempt["number"], attempt["outcome"]
        key, said = (job["id"], number), f"{name} attempt {number}"
        current = number == job["attempt"] and job["status"] == "running"
        if attempt["finished_at"] is None and not current:
            found.append((f"{key} open", f"{said} never finished; the job is {job['status']}"))
        if key in book.outcomes and outcome != book.outcomes[key]:
            found.append((f"{key} outcome", f"{said} ended {book.outcomes[key]}, now {outcome}"))
        if attempt["log_size"] < len(read := book.logs.get(key, b"")):
            found.append(
                (f"{key} size", f"{said}: {len(read)} bytes read, {attempt['log_size']} now")
            )
    return found


def check_logs(api: httpx.Client, book: Book, keys: set[tuple[int, int]]) -> int:
    """Every byte read of these attempts' logs is still there. Returns the bytes compared."""
    for job_id, number in sorted(keys):
        read = book.logs[(job_id, number)]
        stored = get(api, f"/jobs/{job_id}/log", attempt=number).content
        if not stored.startswith(read):
            same = next(
                (i for i, (a, b) in enumerate(zip(read, stored, strict=False)) if a != b),
                len(stored),
            )
            sentence = (
                f"{book.names[job_id]} attempt {number}: {len(read)} log bytes read before a "
                f"kill, {len(stored)} stored after it, the same up to byte {same}"
            )
            book.violate([(f"{job_id}/{number} log", sentence)])
    return sum(len(book.logs[key]) for key in keys)


def check_after_restart(api: httpx.Client, book: Book, *, every_run: bool) -> int:
    """The checks after a restart (or, ``every_run``, at the end). Returns the log bytes
    compared."""
    unfinished = {job for job, state in book.jobs.items() if state not in logic.FINAL}
    for run in look(api, book, None, every_run=every_run):
        for job in run["jobs"]:
            if every_run or job["id"] in unfinished or job["status"] not in logic.FINAL:
                check_attempts(api, book, job["id"])
    compared = check_logs(api, book, set(book.logs) if every_run else book.unchecked)
    book.unchecked.clear()
    return compared
