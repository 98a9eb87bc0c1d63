"""The runner's side of the HTTP protocol (see obeya/pipelines/runner_api.py on the server).

Standard library and httpx only: a runner machine needs no Django and no database access.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from obeya.runner import sandbox

API = "/api/runner"


class ProtocolError(Exception):
    """The server refused a call; the message is the server's own sentence."""


class LeaseLost(ProtocolError):
    """Our lease on the job is gone (expired and reaped, or canceled): stop working on it."""


class OffsetMismatch(ProtocolError):
    def __init__(self, message: str, expected: int | None) -> None:
        super().__init__(message)
        self.expected = expected


def _error(response: httpx.Response) -> ProtocolError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    message = str(error.get("message") or f"HTTP {response.status_code}")
    if error.get("code") == "stale_lease":
        return LeaseLost(message)
    if response.status_code == 409 and error.get("field") == "offset":
        digits = message.rsplit("resend from ", 1)[-1]
        return OffsetMismatch(message, int(digits) if digits.isdigit() else None)
    return ProtocolError(f"{response.status_code}: {message}")


@dataclass(frozen=True)
class Completion:
    """The server's answer to a result: the job's status, and maybe the next job to run."""

    status: str
    next_job: dict[str, Any] | None = None


@dataclass
class ServerClient:
    """Calls to one Obeya server with one runner token; transient failures are retried.

    ``transport`` replaces the network: the embedded runners of `obeya serve` hand their
    requests straight to the server's own request handler (see pipelines.background).
    Sharing the server's interpreter, they also set ``chunk_pause_s``: the log shipper
    pauses that long between back-to-back chunks of a flood of output, so the server's
    own requests get their turn.
    """

    url: str
    token: str
    timeout_s: float = 60.0
    transport: httpx.BaseTransport | None = field(default=None, repr=False)
    chunk_pause_s: float = 0.0

    def __post_init__(self) -> None:
        # Leases the server has answered a call with: each such call acknowledged its job.
        self.heard: set[str] = set()
        self._http = httpx.Client(
            base_url=self.url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.token}", "User-Agent": "obeya-runner"},
            timeout=httpx.Timeout(self.timeout_s, connect=10.0),
            transport=self.transport,
        )

    def close(self) -> None:
        self._http.close()

    def _call(
        self, method: str, path: str, *, lease: str | None = None, attempts: int = 5, **kwargs: Any
    ) -> httpx.Response:
        headers = {"X-Obeya-Lease": lease} if lease else {}
        headers.update(kwargs.pop("headers", None) or {})
        delay = 0.2
        for attempt in range(attempts):
            try:
                response = self._http.request(method, API + path, headers=headers, **kwargs)
            except httpx.TransportError:
                if attempt == attempts - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code >= 500 and attempt < attempts - 1:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code >= 400:
                raise _error(response)
            if lease:
                self.heard.add(lease)
            return response
        raise ProtocolError("unreachable")  # the loop always returns or raises

    def claim(self, wait_s: float, labels: list[str] | None = None) -> dict[str, Any] | None:
        body: dict[str, Any] = {"wait": wait_s, "sandbox": sandbox.configured().mode}
        if labels is not None:
            body["labels"] = labels
        response = self._call("POST", "/jobs/claim", json=body, attempts=1, timeout=wait_s + 30)
        if response.status_code == 204:
            return None
        job: dict[str, Any] = response.json()
        return job

    def heartbeat(self, job_id: int, lease: str) -> bool:
        """Extends the lease (the first call also acknowledges the job); True when the job
        was canceled."""
        body = self._call("POST", f"/jobs/{job_id}/heartbeat", lease=lease).json()
        return bool(body["cancel_requested"])

    def release(self, job_id: int, lease: str) -> None:
        """Give back a job we were handed and will not run: it is queued again at once,
        its attempt not spent (only before any other call about it)."""
        self._call("POST", f"/jobs/{job_id}/release", lease=lease, attempts=2)

    def append_log(self, job_id: int, lease: str, offset: int, data: bytes) -> int:
        response = self._call(
            "POST", f"/jobs/{job_id}/log", lease=lease, params={"offset": offset}, content=data
        )
        return int(response.json()["next_offset"])

    def download_source(self, job_id: int, lease: str, dest: Path) -> Path:
        headers = {"X-Obeya-Lease": lease}
        with self._http.stream("GET", f"{API}/jobs/{job_id}/source", headers=headers) as reply:
            if reply.status_code >= 400:
                reply.read()
                raise _error(reply)
            self.heard.add(lease)
            with dest.open("wb") as handle:
                for block in reply.iter_bytes(1 << 16):
                    handle.write(block)
        return dest

    def complete(
        self,
        job_id: int,
        lease: str,
        outcome: str,
        exit_code: int | None,
        reason: str,
        *,
        log_offset: int = 0,
        log: bytes = b"",
        want_next: bool = False,
    ) -> Completion:
        """Report the result, with the log's last bytes (at ``log_offset``); with
        ``want_next`` the server hands back the next job for us, if one is waiting."""
        body: dict[str, Any] = {"outcome": outcome, "exit_code": exit_code, "reason": reason}
        if log:
            body["log"] = {"offset": log_offset, "data": base64.b64encode(log).decode("ascii")}
        if want_next:
            body["next"] = True
        answer = self._call("POST", f"/jobs/{job_id}/complete", lease=lease, json=body).json()
        following = answer.get("next")
        return Completion(str(answer["status"]), following if isinstance(following, dict) else None)

    def upload_artifact(self, job_id: int, lease: str, name: str, archive: Path) -> str:
        """Send a packed artifact; returns its sha256 as the server stored it."""
        with archive.open("rb") as body:
            response = self._call(
                "POST",
                f"/jobs/{job_id}/artifacts/{name}",
                lease=lease,
                content=body,
                attempts=1,
                headers={"Content-Type": "application/gzip"},
            )
        return str(response.json()["sha256"])

    def upload_report(self, job_id: int, lease: str, file: str, data: bytes) -> int:
        response = self._call(
            "POST",
            f"/jobs/{job_id}/reports",
            lease=lease,
            params={"file": file},
            content=data,
            headers={"Content-Type": "application/xml"},
        )
        return int(response.json()["cases"])
