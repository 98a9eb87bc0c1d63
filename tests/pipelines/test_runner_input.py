"""The runner protocol refuses what no database holds with 413 or 422 and the standard
error body, never a 500, and the job it names is left as it was. Artifacts, which are
streamed, still take bodies past the 2.5 MB that JSON bodies may have."""

from __future__ import annotations

import base64
import io
import os
import tarfile
from typing import Any

import pytest
from django.test import Client

from obeya.pipelines import leases, runners, runs
from obeya.pipelines.models import Job, Runner
from tests.conftest import SYSTEM, actor

BIG = 2**63


class Claimed:
    """A runner's HTTP client and the job it holds."""

    def __init__(self, client: Client, job: dict[str, Any]) -> None:
        self.client = client
        self.id = job["id"]
        self.lease = job["lease_token"]

    def post(self, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        response = self.client.post(
            f"/api/runner/jobs/{path}",
            body if body is not None else {},
            content_type=content_type,
            headers={"X-Obeya-Lease": self.lease},
        )
        response.body = response.json()
        return response


@pytest.fixture
def claimed(alice: Any, service: Any) -> Claimed:
    runners.register_runner(SYSTEM, "other", [])  # so this runner's id is not 1
    _, token = runners.register_runner(SYSTEM, "r1", ["linux"])
    runs.create_run(actor(alice), "svc")
    client = Client(headers={"Authorization": f"Bearer {token}"})
    job = client.post("/api/runner/jobs/claim", {"wait": 0}, content_type="application/json")
    assert job.status_code == 200, job.content
    return Claimed(client, job.json())


def _refused(response: Any, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.body
    assert set(response.body["error"]) == {"code", "message", "field"}
    if field is not None:
        assert response.body["error"]["field"] == field


def _untouched(claimed: Claimed) -> None:
    job = Job.objects.get(pk=claimed.id)
    assert job.status == "running"
    assert leases.log_bytes(job) == b""


def test_numbers_past_64_bits_are_refused(claimed: Claimed) -> None:
    _refused(claimed.post(f"{claimed.id}/log?offset={BIG}", b"x", "text/plain"), 422, "offset")
    _refused(claimed.post(f"{BIG}/heartbeat"), 422, "job_id")
    tail = {"offset": BIG, "data": base64.b64encode(b"done\n").decode()}
    _refused(claimed.post(f"{claimed.id}/complete", {"outcome": "succeeded", "log": tail}), 422)
    _untouched(claimed)


@pytest.mark.parametrize("text", ["\ud800", "fell\x00over"])
def test_text_no_database_holds_is_refused(claimed: Claimed, text: str) -> None:
    result = {"outcome": "failed", "exit_code": 1, "reason": text}
    _refused(claimed.post(f"{claimed.id}/complete", result), 422, "reason")
    _refused(claimed.post("claim", {"wait": 0, "labels": ["linux", text]}), 422, "1")
    # Query strings carry no surrogates (they are bytes); a NUL they can carry.
    _refused(claimed.post(f"{claimed.id}/reports?file=junit%00.xml", b"<x/>", "text/xml"), 422)
    _untouched(claimed)
    assert Runner.objects.get(name="r1").labels == ["linux"]


def test_a_result_over_the_limit_is_refused_but_a_large_artifact_is_taken(
    claimed: Claimed, settings: Any
) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    tail = {"offset": 0, "data": base64.b64encode(b"x" * limit).decode()}
    _refused(claimed.post(f"{claimed.id}/complete", {"outcome": "succeeded", "log": tail}), 413)
    _untouched(claimed)

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        noise = os.urandom(limit + 1024 * 1024)  # random: gzip cannot shrink it under the limit
        info = tarfile.TarInfo("dist/app.bin")
        info.size = len(noise)
        tar.addfile(info, io.BytesIO(noise))
    assert archive.tell() > limit
    stored = claimed.post(f"{claimed.id}/artifacts/dist", archive.getvalue(), "application/gzip")
    assert stored.status_code == 200, stored.body
    assert stored.body["size"] == archive.tell()
