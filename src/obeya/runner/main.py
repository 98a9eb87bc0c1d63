"""The runner loop: claim a job, check out its commit, run its script, ship the log live,
heartbeat the lease, report the result. Used by `obeya runner` and by the embedded runners
inside `obeya serve`; it speaks to the server only over HTTP.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from obeya.runner.client import LeaseLost, OffsetMismatch, ProtocolError, ServerClient
from obeya.runner.executor import run_script
from obeya.runner.masking import Masker
from obeya.runner.workspace import (
    WorkspaceError,
    cleanup_workspace,
    pack_paths,
    prepare_workspace,
)

log = logging.getLogger("obeya.runner")

CLAIM_WAIT_S = 20.0
SHIP_INTERVAL_S = 0.25
MAX_CHUNK = 512 * 1024
MAX_BUFFER = 8 * 1024 * 1024


class LogShipper:
    """Masks output and sends it to the server at least every 250 ms, by byte offset.

    The buffer is bounded: when the server is slower than the job's output, the job's
    writes wait, which slows the job rather than filling the runner's memory.
    """

    def __init__(
        self,
        client: ServerClient,
        job_id: int,
        lease: str,
        masker: Masker,
        on_lost: threading.Event,
    ) -> None:
        self._client, self._job_id, self._lease = client, job_id, lease
        self._masker, self._lost = masker, on_lost
        self._buffer = bytearray()
        self._sent = 0
        self._at_line_start = True
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=f"log-{job_id}", daemon=True)
        self._thread.start()

    def write(self, chunk: bytes) -> None:
        if chunk:
            self._at_line_start = chunk.endswith(b"\n")
        masked = self._masker.feed(chunk)
        with self._cond:
            while len(self._buffer) > MAX_BUFFER and not self._lost.is_set():
                self._cond.wait(0.5)
            self._buffer += masked
            if len(self._buffer) >= MAX_CHUNK:
                self._cond.notify_all()  # a full chunk is waiting: ship it now

    def note(self, text: str) -> None:
        """A line from the runner itself (not the job), in the same log."""
        start = "" if self._at_line_start else "\n"
        self.write(f"{start}[obeya-runner] {text}\n".encode())

    def _send_some(self) -> bool:
        with self._cond:
            data = bytes(self._buffer[:MAX_CHUNK])
        if not data:
            return False
        try:
            acknowledged = self._client.append_log(self._job_id, self._lease, self._sent, data)
        except OffsetMismatch as mismatch:
            acknowledged = mismatch.expected if mismatch.expected is not None else self._sent
        except LeaseLost:
            self._lost.set()
            return False
        except (ProtocolError, httpx.HTTPError) as error:
            log.warning("job %s: log upload failed, will retry: %s", self._job_id, error)
            return False
        with self._cond:
            del self._buffer[: max(0, acknowledged - self._sent)]
            self._sent = max(self._sent, acknowledged)
            self._cond.notify_all()
        return True

    def _loop(self) -> None:
        while not self._lost.is_set():
            with self._cond:
                if self._closing and not self._buffer:
                    return
                if not self._closing and len(self._buffer) < MAX_CHUNK:
                    self._cond.wait(SHIP_INTERVAL_S)
            # Send back to back while full chunks wait (fast output), otherwise once per
            # interval (at least every 250 ms while the job runs).
            while self._send_some():
                with self._cond:
                    if not self._closing and len(self._buffer) < MAX_CHUNK:
                        break

    def close(self, timeout_s: float = 60.0) -> None:
        tail = self._masker.flush()
        with self._cond:
            self._buffer += tail
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)


MAX_REPORT_FILES = 50
MAX_REPORT_BYTES = 10 * 1024 * 1024


def report_files(workspace: Path, patterns: list[str]) -> list[Path]:
    """Files matching the JUnit globs, inside the workspace only, symlinks skipped."""
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
    scratch: Path,
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
    try:
        packed = pack_paths(workspace, paths, scratch / "artifacts.tar.gz")
    except WorkspaceError as error:
        shipper.note(f"artifacts: {error}")
        return "failed", f"artifacts: {error}"
    if not packed:
        shipper.note(f"artifacts: nothing matched {', '.join(paths)}")
        return "failed", f"artifacts: nothing matched {', '.join(paths)}"
    try:
        sha256 = client.upload_artifact(job_id, lease, "artifacts", scratch / "artifacts.tar.gz")
    except (ProtocolError, httpx.HTTPError) as error:
        shipper.note(f"artifact upload failed: {error}")
        return "error", f"artifact upload: {error}"
    shipper.note(f"artifact stored: {len(packed)} file(s), sha256 {sha256}")
    return outcome, ""


class Heartbeat:
    """Keeps the lease alive; sets ``cancel`` when the server asks, ``lost`` if it is gone."""

    def __init__(
        self,
        client: ServerClient,
        job_id: int,
        lease: str,
        lease_seconds: float,
        cancel: threading.Event,
        lost: threading.Event,
    ) -> None:
        self._args = (client, job_id, lease)
        self._interval = max(1.0, min(10.0, lease_seconds / 3))
        self._cancel, self._lost = cancel, lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"beat-{job_id}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        client, job_id, lease = self._args
        while not self._stop.wait(self._interval):
            try:
                if client.heartbeat(job_id, lease):
                    self._cancel.set()
            except LeaseLost:
                self._lost.set()
                self._cancel.set()
                return
            except (ProtocolError, httpx.HTTPError) as error:
                log.warning("job %s: heartbeat failed: %s", job_id, error)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def execute(
    client: ServerClient,
    job: dict[str, Any],
    work_dir: Path,
    cancel: threading.Event | None = None,
) -> str | None:
    """Run one claimed job to its end; returns the status the server recorded (or None).

    Setting ``cancel`` stops the job's processes (a server cancel sets it too)."""
    job_id, lease = int(job["id"]), str(job["lease_token"])
    cancel = cancel or threading.Event()
    lost = threading.Event()
    masker = Masker(job.get("secrets", {}).values())
    shipper = LogShipper(client, job_id, lease, masker, lost)
    beat = Heartbeat(client, job_id, lease, float(job.get("lease_seconds", 30)), cancel, lost)
    workspace: Path | None = None
    scratch = Path(tempfile.mkdtemp(prefix=f"obeya-src-{job_id}-"))
    try:
        shipper.note(
            f"job {job['name']} attempt {job['attempt']} of run #{job['run']} "
            f"on {job['sha'][:12]} ({job.get('branch') or 'detached'})"
        )
        try:
            bundle = client.download_source(job_id, lease, scratch / "source.bundle")
            workspace = prepare_workspace(
                work_dir, job_id, int(job["attempt"]), bundle, str(job["sha"])
            )
        except LeaseLost:
            return None
        except Exception as error:  # any checkout failure is the machine's, not the script's
            shipper.note(f"could not prepare the workspace: {error}")
            shipper.close()
            return (
                None
                if lost.is_set()
                else client.complete(job_id, lease, "error", None, f"workspace: {error}")
            )
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
            shipper.close()
            if lost.is_set():
                return None
            return client.complete(job_id, lease, "error", None, f"start: {error}")
        outcome: str = result.outcome
        reason = ""
        if outcome == "canceled" and lost.is_set():
            shipper.close(5)
            return None
        if outcome in {"succeeded", "failed", "timed_out"}:
            outcome, reason = upload_results(client, job, workspace, scratch, shipper, outcome)
        shipper.note(
            f"finished: {outcome} (exit code {result.exit_code}) in {result.duration_s:.1f} s"
        )
        shipper.close()
        if lost.is_set():
            return None
        return client.complete(job_id, lease, outcome, result.exit_code, reason)
    except LeaseLost:
        return None
    finally:
        beat.stop()
        if workspace is not None:
            cleanup_workspace(workspace)
        shutil.rmtree(scratch, ignore_errors=True)


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

    def _worker(self, index: int) -> None:
        delay = 0.5
        while not self.stop.is_set():
            try:
                job = self.client.claim(CLAIM_WAIT_S, self.labels)
                delay = 0.5
            except (ProtocolError, httpx.HTTPError) as error:
                log.warning("runner worker %s: cannot claim: %s", index, error)
                self.stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            if job is None:
                continue
            log.info("runner worker %s: job %s (%s)", index, job["id"], job["name"])
            self.busy.add(index)
            self.active[index] = threading.Event()
            try:
                execute(self.client, job, self.work_dir, self.active[index])
            except (ProtocolError, httpx.HTTPError) as error:
                log.warning("runner worker %s: job %s: %s", index, job["id"], error)
            finally:
                self.busy.discard(index)
                self.active.pop(index, None)

    def start(self) -> list[threading.Thread]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        threads = [
            threading.Thread(target=self._worker, args=(i,), name=f"runner-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        return threads

    def drain(self, threads: list[threading.Thread], timeout_s: float | None = None) -> None:
        """Stop claiming; let running jobs finish (RELIABILITY A7).

        A worker idle in a claim long-poll is not waited for: it holds no job, and its
        thread ends with the process.
        """
        self.stop.set()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.busy and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)

    def abort(self, timeout_s: float = 8.0) -> None:
        """Stop claiming and kill running jobs (their server is going away: the jobs will
        be reaped as lost and retried when it is back)."""
        self.stop.set()
        for cancel in list(self.active.values()):
            cancel.set()
        deadline = time.monotonic() + timeout_s
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.1)
