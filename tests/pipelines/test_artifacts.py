"""Artifacts: content-addressed, checked before they are kept, downloadable, expiring."""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import timedelta

import pytest
from django.utils import timezone

from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.errors import InvalidInput
from obeya.pipelines import artifacts, leases, runs
from obeya.pipelines.models import Artifact
from tests.conftest import actor


def tar_gz(members: dict[str, bytes], *, evil: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if evil:
            info = tarfile.TarInfo(evil)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return buffer.getvalue()


@pytest.fixture
def claimed(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    return leases.claim(runner)


def test_an_artifact_is_stored_once_by_content_and_downloaded_intact(
    alice, runner, claimed, api_for
):
    body = tar_gz({"dist/app.txt": b"hello", "dist/VERSION": b"1.0\n"})
    stored = artifacts.upload(
        runner, claimed.job.pk, claimed.lease_token, "artifacts", io.BytesIO(body)
    )
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    assert stored.size == len(body) and stored.paths == ["dist/app.txt", "dist/VERSION"]
    assert artifacts.blob_path(stored.sha256).read_bytes() == body
    api = api_for(alice)
    listed = api.get(f"/jobs/{claimed.job.pk}/artifacts").body
    assert listed[0]["sha256"] == stored.sha256
    download = api.client.get(
        f"/api/jobs/{claimed.job.pk}/artifacts/artifacts", HTTP_AUTHORIZATION=f"Bearer {api.token}"
    )
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == body
    assert download["X-Obeya-Sha256"] == stored.sha256


@pytest.mark.parametrize("evil", ["../escape.txt", "/etc/owned", "a/../../b"])
def test_unsafe_archives_are_refused_and_nothing_is_kept(runner, claimed, evil):
    body = tar_gz({"ok.txt": b"fine"}, evil=evil)
    with pytest.raises(InvalidInput, match="artifact refused"):
        artifacts.upload(runner, claimed.job.pk, claimed.lease_token, "artifacts", io.BytesIO(body))
    assert not Artifact.objects.exists()
    assert not any(p.is_file() for p in artifacts.store_root().rglob("*"))


def test_not_a_tar_and_bad_names_are_refused(runner, claimed):
    with pytest.raises(InvalidInput, match="not a readable tar"):
        artifacts.upload(
            runner, claimed.job.pk, claimed.lease_token, "artifacts", io.BytesIO(b"plain text")
        )
    with pytest.raises(InvalidInput, match="artifact name"):
        artifacts.upload(runner, claimed.job.pk, claimed.lease_token, "../x", io.BytesIO(b""))


def test_a_stale_lease_cannot_upload(runner, claimed):
    with pytest.raises(leases.StaleLease):
        artifacts.upload(
            runner, claimed.job.pk, "forged", "artifacts", io.BytesIO(tar_gz({"a": b"b"}))
        )


def test_traversal_in_the_download_url_is_a_404(alice, claimed, api_for):
    api = api_for(alice)
    for path in (
        f"/jobs/{claimed.job.pk}/artifacts/..%2F..%2Fetc%2Fpasswd",
        f"/jobs/{claimed.job.pk}/artifacts/../../../etc/passwd",
        f"/jobs/{claimed.job.pk}/artifacts/missing",
        "/jobs/999/artifacts/x",
    ):
        response = api.client.get(f"/api{path}", HTTP_AUTHORIZATION=f"Bearer {api.token}")
        assert response.status_code == 404, path


def test_expired_artifacts_and_their_blobs_go_once_their_run_is_over(runner, claimed, finish):
    stored = artifacts.upload(
        runner, claimed.job.pk, claimed.lease_token, "artifacts", io.BytesIO(tar_gz({"a": b"b"}))
    )
    future = Actor(user=None, clock=ManualClock(timezone.now() + timedelta(days=31)))
    assert artifacts.expire(clock=future) == 0  # its run still has jobs to run
    assert artifacts.blob_path(stored.sha256).exists()

    leases.complete(runner, claimed.job.pk, claimed.lease_token, "succeeded", 0)
    finish()
    finish()
    assert artifacts.expire(clock=future) == 1
    assert not artifacts.blob_path(stored.sha256).exists()
