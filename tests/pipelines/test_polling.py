"""Polling a real git remote: runs for moved branches, once; claims; failing remotes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core.errors import InvalidInput
from obeya.pipelines import polling, runs
from obeya.pipelines.models import Pipeline, Run
from tests.conftest import actor
from tests.pipelines.conftest import git

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(seconds=60)


@pytest.fixture
def polled(alice, service) -> Pipeline:
    return runs.set_pipeline(actor(alice), "svc", poll_interval_s=60)


def branches() -> list[tuple[str, str]]:
    return list(Run.objects.order_by("id").values_list("branch", "trigger"))


def test_the_first_poll_runs_only_the_default_branch(polled, repo):
    git(repo.path, "branch", "feature")
    assert polling.poll_due(T0) == 1
    assert branches() == [("main", "poll")]
    polled.refresh_from_db()
    assert set(polled.known_heads) == {"main", "feature"}
    assert polled.last_polled_at == T0


def test_the_first_poll_does_not_rerun_a_head_that_already_ran(alice, polled):
    runs.create_run(actor(alice), "svc")
    polling.poll_due(T0)
    assert branches() == [("main", "manual")]


def test_a_new_commit_starts_one_run_and_the_next_tick_none(polled, repo):
    polling.poll_due(T0)
    sha = repo.commit({"x": "1"}, "new work")
    git(repo.path, "branch", "feature")
    assert polling.poll_due(T0 + MINUTE) == 1
    assert branches() == [("main", "poll"), ("feature", "poll"), ("main", "poll")]
    assert Run.objects.filter(branch="main").first().sha == sha  # newest first
    polling.poll_due(T0 + 2 * MINUTE)
    assert len(branches()) == 3


def test_a_pipeline_is_polled_once_per_interval(polled):
    assert polling.poll_due(T0) == 1
    assert polling.poll_due(T0) == 0
    assert polling.poll_due(T0 + MINUTE / 2) == 0
    assert polling.poll_due(T0 + MINUTE) == 1


def test_of_two_processes_only_one_claims_the_poll(polled):
    # Both read the pipeline before either claimed it, as two `obeya serve` replicas would.
    mine, theirs = Pipeline.objects.get(), Pipeline.objects.get()
    assert polling.claim(mine, T0) is True
    assert polling.claim(theirs, T0) is False


def test_polling_off_polls_nothing(alice, polled):
    runs.set_pipeline(actor(alice), "svc", poll_interval_s=0)
    assert polling.poll_due(T0) == 0
    assert Run.objects.count() == 0


def test_a_head_a_webhook_already_ran_is_not_run_again(alice, polled, repo):
    polling.poll_due(T0)
    repo.commit({"y": "1"})
    runs.create_run(actor(alice), "svc", "main", trigger="push")
    polling.poll_due(T0 + MINUTE)
    assert branches() == [("main", "poll"), ("main", "push")]


def test_a_deleted_branch_is_forgotten(polled, repo):
    git(repo.path, "branch", "old")
    polling.poll_due(T0)
    git(repo.path, "branch", "-D", "old")
    polling.poll_due(T0 + MINUTE)
    polled.refresh_from_db()
    assert set(polled.known_heads) == {"main"}


def test_an_unreachable_remote_is_logged_and_asked_again(alice, polled, tmp_path, caplog):
    catalog.update_service(actor(alice), "svc", repository_url=str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING, logger="obeya.pipelines"):
        assert polling.poll_due(T0) == 1
    assert "polling svc" in caplog.text
    assert Run.objects.count() == 0
    polled.refresh_from_db()
    assert polled.known_heads == {} and polled.last_polled_at == T0
    assert polling.poll_due(T0 + MINUTE) == 1  # tried again next interval


def test_a_url_that_looks_like_an_option_is_never_passed_to_git(alice, polled, caplog):
    with pytest.raises(InvalidInput, match="not a git URL"):
        catalog.update_service(actor(alice), "svc", repository_url="--upload-pack=touch /tmp/x")
    # A row written before that check existed must still never reach git as an option.
    Service.objects.filter(slug="svc").update(repository_url="--upload-pack=touch /tmp/x")
    with caplog.at_level(logging.WARNING, logger="obeya.pipelines"):
        polling.poll_due(T0)
    assert "cannot be polled" in caplog.text
