"""The HTTP side of the runner protocol, under /api/runner/. Runners authenticate with
their own token (``Authorization: Bearer obeyar_…``) and name their lease in
``X-Obeya-Lease`` on every call about a job they hold."""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime
from typing import IO, Any, cast

from django.http import FileResponse, HttpRequest
from ninja import Header, Router, Schema, Status
from ninja.security import HttpBearer

from obeya.core import hangup
from obeya.core.errors import InvalidInput
from obeya.pipelines import artifacts, leases, reports, runners, wakeup
from obeya.pipelines.models import Runner

router = Router(tags=["runner protocol"])
MAX_WAIT_S = 30.0
# A job queued by this process wakes its waiting runners at once; a job queued by another
# server process is seen within one poll.
POLL_INTERVAL_S = 0.5


_last_reap = 0.0


def _reap_now_and_then() -> None:
    """Reap expired leases at most once a second from claims (the reaper thread of
    `obeya serve` also does it; this covers servers started without one)."""
    global _last_reap
    if time.monotonic() - _last_reap >= 1.0:
        _last_reap = time.monotonic()
        leases.reap()


class RunnerAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Runner:
        runner = runners.authenticate_runner(token)
        request.runner = runner  # type: ignore[attr-defined]
        return runner


def _runner(request: HttpRequest) -> Runner:
    return request.runner  # type: ignore[attr-defined]


class ClaimIn(Schema):
    wait: float = 0
    labels: list[str] | None = None
    sandbox: str | None = None  # what the runner's jobs run in: bwrap, off, unavailable


class HeartbeatOut(Schema):
    lease_expires_at: datetime
    cancel_requested: bool


class LogOut(Schema):
    next_offset: int


class LogTail(Schema):
    offset: int
    data: str  # base64


class CompleteIn(Schema):
    outcome: str
    exit_code: int | None = None
    reason: str = ""
    log: LogTail | None = None  # the log's last bytes, appended before the result
    next: bool = False  # hand back the next job for this runner, if one is waiting


class CompleteOut(Schema):
    status: str
    next: dict[str, Any] | None = None


@router.post(
    "/runner/jobs/claim",
    auth=RunnerAuth(),
    response={200: dict[str, Any], 204: None},
    summary="Claim the next job (long-poll up to `wait` seconds)",
)
def claim(request: HttpRequest, payload: ClaimIn) -> Any:
    runner = _runner(request)
    if payload.labels is not None:
        runner = runners.declare_labels(runner, payload.labels)
    if payload.sandbox is not None:
        runner = runners.declare_sandbox(runner, payload.sandbox)
    deadline = time.monotonic() + max(0.0, min(payload.wait, MAX_WAIT_S))
    # Set by the ASGI handler when the runner hangs up (it stopped while waiting): a job
    # claimed for it now would only wait out its acknowledgement window.
    gone = hangup.client_gone(request)
    while not wakeup.closing.is_set() and not gone.is_set():  # a server shutting down
        _reap_now_and_then()  # hands out no work
        claimed = leases.claim(runner)
        if claimed is not None:
            return Status(200, claimed.payload)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        wakeup.wait(min(POLL_INTERVAL_S, remaining))
        runner.refresh_from_db(fields=["paused", "labels"])  # paused while we waited?
    return Status(204, None)


@router.post(
    "/runner/jobs/{job_id}/heartbeat",
    auth=RunnerAuth(),
    response=HeartbeatOut,
    summary="Extend the lease; learn whether the job was canceled",
)
def heartbeat(
    request: HttpRequest, job_id: int, x_obeya_lease: str = Header(...)
) -> dict[str, Any]:
    expires, cancel = leases.heartbeat(_runner(request), job_id, x_obeya_lease)
    return {"lease_expires_at": expires, "cancel_requested": cancel}


@router.post(
    "/runner/jobs/{job_id}/log",
    auth=RunnerAuth(),
    response=LogOut,
    summary="Append raw log bytes at `offset` (idempotent)",
)
def append_log(
    request: HttpRequest, job_id: int, offset: int, x_obeya_lease: str = Header(...)
) -> dict[str, int]:
    size = leases.append_log(_runner(request), job_id, x_obeya_lease, offset, request.body)
    return {"next_offset": size}


@router.get(
    "/runner/jobs/{job_id}/source",
    auth=RunnerAuth(),
    summary="A git bundle holding the job's commit",
)
def source(request: HttpRequest, job_id: int, x_obeya_lease: str = Header(...)) -> FileResponse:
    path = leases.source_bundle(_runner(request), job_id, x_obeya_lease)
    try:
        handle = path.open("rb")
    except FileNotFoundError:  # the sweep removed it just now: make it again
        handle = leases.source_bundle(_runner(request), job_id, x_obeya_lease).open("rb")
    return FileResponse(handle, content_type="application/octet-stream")


@router.post(
    "/runner/jobs/{job_id}/complete",
    auth=RunnerAuth(),
    response=CompleteOut,
    summary="Report the job's result (with the log's last bytes); maybe get the next job",
)
def complete(
    request: HttpRequest, job_id: int, payload: CompleteIn, x_obeya_lease: str = Header(...)
) -> dict[str, Any]:
    runner = _runner(request)
    tail = b""
    if payload.log is not None:
        try:
            tail = base64.b64decode(payload.log.data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("log.data must be base64", field="log") from None
    args = (runner, job_id, x_obeya_lease, payload.outcome, payload.exit_code, payload.reason)
    offset = payload.log.offset if payload.log is not None else 0
    if not payload.next or wakeup.closing.is_set():
        job = leases.complete(*args, log_offset=offset, log=tail)
        return {"status": job.status, "next": None}
    job, following = leases.complete_then_claim(*args, log_offset=offset, log=tail)
    return {"status": job.status, "next": following.payload if following is not None else None}


class ReleaseOut(Schema):
    status: str


@router.post(
    "/runner/jobs/{job_id}/release",
    auth=RunnerAuth(),
    response=ReleaseOut,
    summary="Give back a job not yet acknowledged (the runner is stopping): queued again",
)
def release(request: HttpRequest, job_id: int, x_obeya_lease: str = Header(...)) -> dict[str, str]:
    job = leases.release(_runner(request), job_id, x_obeya_lease)
    return {"status": job.status}


class ArtifactOut(Schema):
    name: str
    sha256: str
    size: int
    paths: list[str]


class ReportOut(Schema):
    cases: int


@router.post(
    "/runner/jobs/{job_id}/artifacts/{name}",
    auth=RunnerAuth(),
    response=ArtifactOut,
    summary="Upload the job's artifact: a tar.gz as the raw body",
)
def upload_artifact(
    request: HttpRequest, job_id: int, name: str, x_obeya_lease: str = Header(...)
) -> dict[str, Any]:
    body = cast(IO[bytes], request)  # HttpRequest reads like a file: stream, don't buffer
    stored = artifacts.upload(_runner(request), job_id, x_obeya_lease, name, body)
    return {
        "name": stored.name,
        "sha256": stored.sha256,
        "size": stored.size,
        "paths": stored.paths,
    }


@router.post(
    "/runner/jobs/{job_id}/reports",
    auth=RunnerAuth(),
    response=ReportOut,
    summary="Upload one JUnit XML report file as the raw body",
)
def upload_report(
    request: HttpRequest, job_id: int, file: str, x_obeya_lease: str = Header(...)
) -> dict[str, int]:
    count = reports.upload(
        _runner(request), job_id, x_obeya_lease, file, request.read(reports.MAX_REPORT_BYTES + 1)
    )
    return {"cases": count}
