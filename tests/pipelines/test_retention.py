"""The periodic sweep: old bundles, pins and expired artifacts go; what work needs stays."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.pipelines import artifacts, background, git, leases, retention, runs
from obeya.pipelines.models import Job, Run
from tests.conftest import actor
from tests.pipelines.conftest import Repo
from tests.pipelines.test_artifacts import tar_gz


def later(**delta: float) -> Actor:
    return Actor(user=None, clock=ManualClock(timezone.now() + timedelta(**delta)))


def bundle_of(runner, claim) -> Path:
    return leases.source_bundle(runner, claim.job.pk, claim.lease_token)


def finish_run(runner, run: Run) -> None:
    """Run every job of ``run`` to success, as ``runner``; bundles made on the way."""
    while (claim := leases.claim(runner)) is not None:
        assert claim.job.run_id == run.pk
        bundle_of(runner, claim)
        leases.complete(runner, claim.job.pk, claim.lease_token, "succeeded", 0)
    run.refresh_from_db()
    assert run.status == "succeeded"


def pins(service) -> set[int]:
    return set(git.pinned_runs(runs.mirror_of(service)))


def test_bundles_of_finished_runs_go_after_an_hour_and_busy_ones_stay(alice, service, runner):
    done = runs.create_run(actor(alice), "svc")
    finish_run(runner, done)
    busy = runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    busy_bundle = bundle_of(runner, claim)
    done_bundle = leases.bundle_path(done.pk)
    assert done_bundle.exists() and busy_bundle.exists()

    assert retention.sweep_bundles(timezone.now()) == 0  # finished less than an hour ago
    assert retention.sweep_bundles(timezone.now() + timedelta(hours=2)) == 1
    assert not done_bundle.exists()
    assert busy_bundle.exists()
    assert Job.objects.filter(run=busy, status="running").exists()


def test_pins_of_runs_finished_long_ago_go_unless_a_job_may_still_run(
    alice, service, repo: Repo, runner
):
    old = runs.create_run(actor(alice), "svc")
    finish_run(runner, old)
    repo.commit(
        {
            "obeya.yml": (
                "stages: [build, deploy]\njobs:\n"
                "  build:\n    stage: build\n    script: [echo b]\n"
                "  ship:\n    stage: deploy\n    script: [echo s]\n    when: manual\n"
            )
        }
    )
    waiting = runs.create_run(actor(alice), "svc")
    finish_run(runner, waiting)  # the manual job waits for a person
    running = runs.create_run(actor(alice), "svc")
    leases.claim(runner)
    assert pins(service) == {old.pk, waiting.pk, running.pk}

    assert retention.sweep_pins(timezone.now()) == 0
    assert retention.sweep_pins(timezone.now() + timedelta(days=31)) == 1
    assert pins(service) == {waiting.pk, running.pk}


def test_a_pin_without_a_run_row_is_left_alone(alice, service, runner):
    run = runs.create_run(actor(alice), "svc")
    finish_run(runner, run)
    mirror = runs.mirror_of(service)
    git.pin(mirror, 987654, run.sha)  # as create_run does before its row is committed
    retention.sweep_pins(timezone.now() + timedelta(days=31))
    assert pins(service) == {987654}


def test_a_retried_job_of_a_swept_run_gets_its_source_back(alice, service, runner):
    run = runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    bundle_of(runner, claim)
    leases.complete(runner, claim.job.pk, claim.lease_token, "failed", 1)
    run.refresh_from_db()
    assert run.status == "failed"
    swept = retention.sweep(clock=later(days=31))
    assert swept["bundles"] == 1 and swept["pins"] == 1
    assert pins(service) == set()

    runs.retry_job(actor(alice), claim.job.pk)
    again = leases.claim(runner)
    assert again is not None and again.job.pk == claim.job.pk
    bundle = bundle_of(runner, again)
    heads = subprocess.run(
        ["git", "bundle", "list-heads", str(bundle)], capture_output=True, text=True, check=True
    )
    assert heads.stdout.split() == [run.sha, f"refs/obeya/runs/{run.pk}"]
    assert pins(service) == {run.pk}


def test_the_source_of_a_commit_the_mirror_lost_is_a_clear_error(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    Run.objects.filter(pk=claim.job.run_id).update(sha="1" * 40)  # pruned, say
    git.unpin(runs.mirror_of(service), [claim.job.run_id])
    with pytest.raises(git.GitError, match="no longer in the repository mirror"):
        bundle_of(runner, claim)


def test_an_expired_artifact_sharing_its_blob_with_a_kept_one_leaves_the_blob(
    alice, service, runner
):
    body = tar_gz({"same.txt": b"same content"})
    first = runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    stored = artifacts.upload(
        runner, claim.job.pk, claim.lease_token, "artifacts", io.BytesIO(body)
    )
    leases.complete(runner, claim.job.pk, claim.lease_token, "succeeded", 0)
    finish_run(runner, first)
    runs.create_run(actor(alice), "svc")
    second = leases.claim(runner)
    artifacts.upload(
        runner, second.job.pk, second.lease_token, "artifacts", io.BytesIO(body)
    )  # the second run still runs, so its artifact is kept even when expired
    assert artifacts.expire(clock=later(days=31)) == 1
    assert artifacts.blob_path(stored.sha256).exists()


def test_orphan_blobs_and_abandoned_uploads_go_after_a_day(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    kept = artifacts.upload(
        runner, claim.job.pk, claim.lease_token, "artifacts", io.BytesIO(tar_gz({"a": b"1"}))
    )
    orphan = artifacts.blob_path("ab" * 32)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"no row points here")
    partial = artifacts.store_root() / ".upload-crashed"
    partial.write_bytes(b"half")
    fresh = artifacts.blob_path("cd" * 32)
    fresh.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_bytes(b"an upload whose row is being written")
    day_ago = time.time() - 2 * 86400
    for path in (orphan, partial, artifacts.blob_path(kept.sha256)):
        os.utime(path, (day_ago, day_ago))

    assert artifacts.remove_orphans() == 2
    assert not orphan.exists() and not partial.exists()
    assert fresh.exists()
    assert artifacts.blob_path(kept.sha256).exists()


def test_the_background_sweep_runs_all_of_it(alice, service, runner, caplog):
    caplog.set_level(logging.INFO, logger="obeya.pipelines")
    run = runs.create_run(actor(alice), "svc")
    finish_run(runner, run)
    os.utime(leases.bundle_path(run.pk), (0, 0))
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=40))
    background._sweep()
    assert not leases.bundle_path(run.pk).exists()
    assert pins(service) == set()
    assert "sweep: 1 bundles, 1 pins" in caplog.text
