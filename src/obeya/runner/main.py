"""The runner loop: claim a job, check out its commit, run its script, ship the log live,
heartbeat the lease, report the result (and take the next job in the same call). Used by
`obeya runner` and by the embedded runners inside `obeya serve`; it speaks to the server
only over HTTP.

Stopping (RELIABILITY A7): the first SIGTERM or SIGINT drains: no new claims; a job the
server hands over anyway (a long-poll that was pending, or the answer to a result) is given
back unstarted; running jobs finish and are reported; then the process exits 0. A second
signal stops hard: running jobs are killed and reported as an infrastructure error, so
they run again elsewhere.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from obeya.runner import threads
from obeya.runner.checkout import Checkouts
from obeya.runner.client import LeaseLost, ProtocolError, ServerClient
from obeya.runner.executor import run_script
from obeya.runner.masking import Masker
from obeya.runner.shipping import SHIP_INTERVAL_S, Heartbeat, LogShipper
from obeya.runner.workspace import WorkspaceError, pack_paths

log = logging.getLogger("obeya.runner")

CLAIM_WAIT_S = 20.0
# A job is acknowledged by the runner's first call about it (the server gives it back to
# the queue if none comes within its acknowledgement window, 5 s). The log shipper's first
# chunk, a quarter second in, is that call for most jobs, and a short job's result for the
# others; this explicit one goes only when neither was answered by then, so it costs no
# round trip on the way of a job.
ACK_AFTER_S = 0.5
MAX_REPORT_FILES = 50
MAX_REPORT_BYTES = 10 * 1024 * 1024


def report_files(workspace: Path, patterns: list[str]) -> list[Path]:
    """Files matching the JUnit globs, inside the workspace only, symlinks skipped."""
    if not patterns:
        return []
    root = workspace.resolve()
    found: set[Path] = set()
    for pattern in patterns:
        for match in root.glob(pattern):
            if match.is_symlink() or not match.is_file():
                continue
            if root not in match.resolve().parents:
                continue
            found.add(match)
    return sorted(found)[:MAX_REPORT_FILES]


def upload_results(
    client: ServerClient,
    job: dict[str, Any],
    workspace: Path,
    shipper: LogShipper,
    outcome: str,
) -> tuple[str, str]:
    """Send test reports (always) and artifacts (after success); may change the outcome."""
    job_id, lease = int(job["id"]), str(job["lease_token"])
    for path in report_files(workspace, list(job.get("reports", {}).get("junit", []))):
        relative = str(path.relative_to(workspace.resolve()))
        if path.stat().st_size > MAX_REPORT_BYTES:
            shipper.note(f"report {relative} is over {MAX_REPORT_BYTES} bytes: not sent")
            continue
        try:
            cases = client.upload_report(job_id, lease, relative, path.read_bytes())
            shipper.note(f"report {relative}: {cases} test case(s)")
        except (ProtocolError, httpx.HTTPError) as error:
            shipper.note(f"report {relative} refused: {error}")
    paths = list(job.get("artifacts", {}).get("paths", []))
    if outcome != "succeeded" or not paths:
        return outcome, ""
    with tempfile.TemporaryDirectory(prefix=f"obeya-artifacts-{job_id}-") as scratch:
        archive = Path(scratch) / "artifacts.tar.gz"
        try:
            packed = pack_paths(workspace, paths, archive)
        except WorkspaceError as error:
            shipper.note(f"artifacts: {error}")
            return "failed", f"artifacts: {error}"
        if not packed:
            shipper.note(f"artifacts: nothing matched {', '.join(paths)}")
            return "failed", f"artifacts: nothing matched {', '.join(paths)}"
        try:
            sha256 = client.upload_artifact(job_id, lease, "artifacts", archive)
        except (ProtocolError, httpx.HTTPError) as error:
            shipper.note(f"artifact upload failed: {error}")
            return "error", f"artifact upload: {error}"
    shipper.note(f"artifact stored: {len(packed)} file(s), sha256 {sha256}")
    return outcome, ""


@dataclass(frozen=True)
class JobEnd:
    """How a job left this runner: the status the server recorded (None when our lease
    was gone), and the next job the server handed us with its answer, if any."""

    status: str | None
    next_job: dict[str, Any] | None = None


def _never() -> bool:
    return False


def execute(
    client: ServerClient,
    job: dict[str, Any],
    checkouts: Checkouts,
    cancel: threading.Event | None = None,
    *,
    stopping: threading.Event | None = None,
    want_next: Callable[[], bool] = _never,
) -> JobEnd:
    """Run one claimed job to its end and report it.

    Setting ``cancel`` stops the job's processes (a cancel from the server sets it too);
    the job is then reported canceled, or, when ``stopping`` is set too (the runner is
    shutting down), as an infrastructure error, so that it runs again elsewhere. While
    ``want_next()`` holds, the report asks the server for the next job.
    """
    job_id, lease = int(job["id"]), str(job["lease_token"])
    cancel = cancel or threading.Event()
    lost = threading.Event()
    masker = Masker(job.get("secrets", {}).values())
    shipper = LogShipper(client, job_id, lease, masker, lost)
    beat = Heartbeat(client, job_id, lease, float(job.get("lease_seconds", 30)), cancel, lost)
    ack = threads.later(
        ACK_AFTER_S,
        lambda: _acknowledge(client, job_id, lease, beat, cancel, lost),
        f"ack-{job_id}",
    )
    workspace: Path | None = None

    def report(outcome: str, exit_code: int | None, reason: str) -> JobEnd:
        offset, tail = shipper.finish()
        if lost.is_set():
            return JobEnd(None)
        done = client.complete(
            job_id,
            lease,
            outcome,
            exit_code,
            reason,
            log_offset=offset,
            log=tail,
            want_next=want_next(),
        )
        return JobEnd(done.status, done.next_job)

    try:
        shipper.note(
            f"job {job['name']} attempt {job['attempt']} of run #{job['run']} "
            f"on {job['sha'][:12]} ({job.get('branch') or 'detached'})"
        )
        try:
            workspace = checkouts.prepare(
                str(job.get("service") or "service"),
                str(job["sha"]),
                lambda dest: client.download_source(job_id, lease, dest),
            )
        except LeaseLost:
            shipper.finish(5)
            return JobEnd(None)
        except Exception as error:  # any checkout failure is the machine's, not the script's
            shipper.note(f"could not prepare the workspace: {error}")
            return report("error", None, f"workspace: {error}")
        env = {
            **{k: str(v) for k, v in job.get("variables", {}).items()},
            **{k: str(v) for k, v in job.get("secrets", {}).items()},
        }
        try:
            result = run_script(
                list(job["script"]),
                cwd=workspace,
                env=env,
                timeout_s=float(job.get("timeout_seconds", 3600)),
                on_output=shipper.write,
                cancel=cancel,
                flush_interval_s=SHIP_INTERVAL_S,
            )
        except (ValueError, OSError) as error:  # e.g. a variable name bash cannot take
            shipper.note(f"could not start the script: {error}")
            return report("error", None, f"start: {error}")
        outcome, reason = str(result.outcome), ""
        if outcome == "canceled" and lost.is_set():
            shipper.finish(5)
            return JobEnd(None)
        shutting_down = stopping is not None and stopping.is_set()
        if outcome == "canceled" and shutting_down and not beat.cancel_requested:
            outcome, reason = "error", "the runner shut down mid-job"  # not a person's cancel
        if outcome in {"succeeded", "failed", "timed_out"}:
            outcome, reason = upload_results(client, job, workspace, shipper, outcome)
        shipper.note(
            f"finished: {outcome} (exit code {result.exit_code}) in {result.duration_s:.1f} s"
        )
        checkouts.release(workspace)  # the tree is put back while the result travels
        workspace = None
        return report(outcome, result.exit_code, reason)
    except LeaseLost:
        return JobEnd(None)
    finally:
        ack.cancel()
        beat.stop()
        client.heard.discard(lease)
        if workspace is not None:
            checkouts.release(workspace)


def _acknowledge(
    client: ServerClient,
    job_id: int,
    lease: str,
    beat: Heartbeat,
    cancel: threading.Event,
    lost: threading.Event,
) -> None:
    """Tell the server we run the job, unless a call about it was answered already."""
    if lease in client.heard or lost.is_set():
        return
    try:
        if client.heartbeat(job_id, lease):
            beat.cancel_requested = True
            cancel.set()
    except LeaseLost:  # too late: the job went back to the queue; stop our copy of it
        lost.set()
        cancel.set()
    except (ProtocolError, httpx.HTTPError) as error:
        log.warning("job %s: acknowledgement failed: %s", job_id, error)


@dataclass
class RunnerLoop:
    """``concurrency`` workers, each claiming and running one job at a time."""

    client: ServerClient
    work_dir: Path
    concurrency: int = 1
    labels: list[str] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    busy: set[int] = field(default_factory=set)
    active: dict[int, threading.Event] = field(default_factory=dict)
    aborting: threading.Event = field(default_factory=threading.Event)
    # Called on each worker thread as it starts and as it ends (the embedded runners
    # keep a database connection per worker thread between their calls).
    on_thread_start: Callable[[], None] | None = None
    on_thread_end: Callable[[], None] | None = None

    def _claim(self, index: int, delay: float) -> tuple[dict[str, Any] | None, float]:
        try:
            return self.client.claim(CLAIM_WAIT_S, self.labels), 0.5
        except (ProtocolError, httpx.HTTPError) as error:
            log.warning("runner worker %s: cannot claim: %s", index, error)
            self.stop.wait(delay)
            return None, min(delay * 2, 30.0)

    def _worker(self, index: int) -> None:
        if self.on_thread_start is not None:
            self.on_thread_start()
        try:
            self._work(index)
        finally:
            if self.on_thread_end is not None:
                self.on_thread_end()

    def _work(self, index: int) -> None:
        try:
            checkouts = Checkouts(self.work_dir)
        except (WorkspaceError, OSError) as error:
            log.error("runner worker %s: no workspace: %s", index, error)
            return
        delay, job = 0.5, None
        while job is not None or not self.stop.is_set():
            if job is None:
                job, delay = self._claim(index, delay)
                if job is None:
                    continue
            current, job = job, None
            self.busy.add(index)
            if self.stop.is_set():
                # Handed over as we stop (a long-poll that was pending, or the answer to
                # our last result): not started, so given back for another runner.
                self._give_back(index, current)
                self.busy.discard(index)
                continue
            log.info("runner worker %s: job %s (%s)", index, current["id"], current["name"])
            cancel = self.active[index] = threading.Event()
            if self.aborting.is_set():
                cancel.set()
            try:
                end = execute(
                    self.client,
                    current,
                    checkouts,
                    cancel,
                    stopping=self.aborting,
                    want_next=lambda: not self.stop.is_set(),
                )
                job = end.next_job  # handed back with the result: no claim round trip
            except (ProtocolError, httpx.HTTPError) as error:
                log.warning("runner worker %s: job %s: %s", index, current["id"], error)
            finally:
                self.active.pop(index, None)
                if job is None:
                    self.busy.discard(index)
        checkouts.close()

    def _give_back(self, index: int, job: dict[str, Any]) -> None:
        try:
            self.client.release(int(job["id"]), str(job["lease_token"]))
            log.info("runner worker %s: stopping, gave job %s back", index, job["id"])
        except (ProtocolError, httpx.HTTPError) as error:
            # Not acknowledged, it goes back by itself within the acknowledgement window.
            log.warning("runner worker %s: could not give job %s back: %s", index, job["id"], error)

    def start(self) -> list[threading.Thread]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        threads = [
            threading.Thread(target=self._worker, args=(i,), name=f"runner-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        return threads

    def drain(self, threads: list[threading.Thread], timeout_s: float | None = None) -> bool:
        """Stop claiming; let running jobs finish and be reported (RELIABILITY A7). Whether
        they all did (within ``timeout_s``).

        A worker idle in a claim long-poll is not waited for: it holds no job, and its
        thread ends with the process (the server sees the runner hang up and hands that
        poll nothing; a job it was handed all the same goes back unacknowledged).
        """
        self.stop.set()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.busy and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
        return not self.busy

    def hard_stop(self) -> None:
        """Stop claiming and kill running jobs now, without waiting: each is reported as an
        infrastructure error (or reaped as lost when the report cannot get through), so it
        runs again, here after a restart or on another runner."""
        self.aborting.set()
        self.stop.set()
        for cancel in list(self.active.values()):
            cancel.set()

    def abort(self, timeout_s: float = 8.0) -> None:
        """`hard_stop`, then wait up to ``timeout_s`` for the killed jobs' reports."""
        self.hard_stop()
        deadline = time.monotonic() + timeout_s
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.1)


def run_until_signalled(loop: RunnerLoop, say: Callable[[str], None]) -> int:
    """Run ``loop`` until SIGTERM or SIGINT, then drain it; the exit code: 0 when every
    running job finished and was reported, 1 when a second signal stopped it hard."""
    signals: list[int] = []

    def on_signal(number: int, _frame: object) -> None:
        signals.append(number)
        if len(signals) == 1:
            loop.stop.set()
        else:
            loop.hard_stop()

    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        workers = loop.start()
        while not loop.stop.wait(1):
            pass
        if loop.busy:
            say("draining: running jobs finish, no new ones start (signal again to stop now)")
        loop.drain(workers)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 1 if loop.aborting.is_set() else 0
