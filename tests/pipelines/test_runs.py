"""Runs from a real git repository: the job graph, results, andon, cancel, retry, play."""

from __future__ import annotations

import pytest

from obeya.core.errors import Conflict, NotFound, PermissionDenied
from obeya.core.models import Event
from obeya.pipelines import andon, git, leases, runs
from obeya.pipelines.models import Job
from tests.conftest import actor


def statuses(run) -> dict[str, str]:
    return {job.name: job.status for job in Job.objects.filter(run=run)}


def test_a_run_records_the_commit(alice, service, repo):
    sha = repo.commit({"x": "1"}, 'message with "quotes" and $(touch /tmp/x)')
    run = runs.create_run(actor(alice), "svc")
    assert (run.number, run.sha, run.branch, run.status) == (1, sha, "main", "running")
    assert run.author_name == "Ann Dev" and run.author_email == "ann@example.com"
    assert run.message == 'message with "quotes" and $(touch /tmp/x)'
    assert run.authored_at is not None and run.committed_at is not None
    assert statuses(run) == {"build": "queued", "unit": "created", "lint": "created"}
    assert Event.objects.filter(kind="run.created", service="svc").count() == 1


def test_a_default_branch_run_lists_the_commits_it_is_the_first_to_see(alice, service, repo):
    first = runs.create_run(actor(alice), "svc")
    one = repo.commit({"a": "1"}, "one")
    two = repo.commit({"b": "2"}, "two")
    runs.create_run(actor(alice), "svc")
    created = [e.data for e in Event.objects.filter(kind="run.created").order_by("id")]
    assert [c["sha"] for c in created[0]["commits"]] == [first.sha]
    assert [c["sha"] for c in created[1]["commits"]] == [two, one]  # newest first
    assert {c["author"] for c in created[1]["commits"]} == {"ann@example.com"}
    assert all(c["committed_at"] for c in created[1]["commits"])
    assert created[1]["default_branch"] is True
    runs.create_run(actor(alice), "svc")  # nothing new since the last run: no commits
    again = Event.objects.filter(kind="run.created").order_by("-id").first()
    assert again is not None and again.data["commits"] == []


def test_the_graph_moves_on_and_the_run_succeeds(alice, service, finish):
    run = runs.create_run(actor(alice), "svc")
    finish()
    assert statuses(run) == {"build": "succeeded", "unit": "queued", "lint": "queued"}
    finish()
    finish()
    run.refresh_from_db()
    assert run.status == "succeeded" and run.finished_at is not None
    finished = Event.objects.get(kind="run.finished")
    assert finished.data["status"] == "succeeded" and finished.data["branch"] == "main"


def test_a_failure_skips_what_depends_on_it_and_pulls_the_andon(alice, service, finish):
    run = runs.create_run(actor(alice), "svc")
    job = finish("failed", 1)
    assert job.failure_reason == "script_failure: exit code 1"
    run.refresh_from_db()
    assert run.status == "failed"
    assert statuses(run) == {"build": "failed", "unit": "skipped", "lint": "skipped"}
    assert andon.andon_is_pulled("svc")
    assert Event.objects.filter(kind="andon.pulled").count() == 1


def test_a_green_default_branch_run_releases_the_andon(alice, service, finish):
    runs.create_run(actor(alice), "svc")
    finish("failed", 2)
    assert andon.andon_is_pulled("svc")
    runs.create_run(actor(alice), "svc")
    for _ in range(3):
        finish()
    assert not andon.andon_is_pulled("svc")
    assert Event.objects.filter(kind="andon.released").count() == 1


def test_other_branches_leave_the_andon_alone(alice, service, repo, finish):
    from tests.pipelines.conftest import git as run_git

    run_git(repo.path, "checkout", "-q", "-b", "feature")
    repo.commit({"y": "2"})
    run = runs.create_run(actor(alice), "svc", "feature")
    assert run.branch == "feature"
    finish("failed", 1)
    assert not andon.andon_is_pulled("svc")


def test_pull_and_reset_by_hand(alice, bob, service):
    with pytest.raises(Exception, match="say why"):
        andon.pull_andon(actor(bob), "svc", "  ")
    andon.pull_andon(actor(bob), "svc", "prod is on fire")
    with pytest.raises(Conflict):
        andon.pull_andon(actor(bob), "svc", "again")
    with pytest.raises(PermissionDenied, match="devops_engineer"):
        andon.reset_andon(actor(bob), "svc", "fixed")
    andon.reset_andon(actor(alice), "svc", "fixed by revert")
    assert not andon.andon_is_pulled("svc")


def test_missing_or_invalid_obeya_yml_fails_the_run_with_every_error(alice, service, repo):
    repo.commit({"obeya.yml": "jobs:\n  a:\n    stage: nope\n    scrpt: [x]\n"})
    run = runs.create_run(actor(alice), "svc")
    assert run.status == "failed"
    assert len(run.errors) >= 2
    assert all(error.startswith("obeya.yml:") for error in run.errors)
    assert not Job.objects.filter(run=run).exists()
    (repo.path / "obeya.yml").unlink()
    repo.commit({})
    run = runs.create_run(actor(alice), "svc")
    assert run.status == "failed" and "not found" in run.errors[0]


def test_unknown_ref_and_hostile_refs(alice, service):
    with pytest.raises(git.GitError, match="no branch, tag or commit"):
        runs.create_run(actor(alice), "svc", "nope")
    with pytest.raises(git.GitError):
        runs.create_run(actor(alice), "svc", "--upload-pack=touch /tmp/pwned")
    with pytest.raises(git.GitError):
        runs.create_run(actor(alice), "svc", 'zzz";echo${IFS}pwned;#')


def test_a_service_without_repository_is_refused(alice):
    from obeya.catalog import services as catalog

    catalog.create_service(actor(alice), "bare", "Bare")
    with pytest.raises(git.GitError, match="no repository"):
        runs.create_run(actor(alice), "bare")


def test_only_team_roles_may_run(alice, bob, service):
    with pytest.raises(PermissionDenied):
        runs.create_run(actor(bob), "svc")


def test_cancel_ends_waiting_jobs_and_flags_running_ones(alice, service, runner):
    run = runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    runs.cancel_run(actor(alice), "svc", run.number)
    assert statuses(run)["unit"] == "canceled"
    assert leases.heartbeat(runner, claim.job.pk, claim.lease_token)[1] is True
    leases.complete(runner, claim.job.pk, claim.lease_token, "canceled")
    run.refresh_from_db()
    assert run.status == "canceled"
    with pytest.raises(Conflict):
        runs.cancel_run(actor(alice), "svc", run.number)


def test_retry_a_failed_job_reopens_the_run(alice, service, finish):
    run = runs.create_run(actor(alice), "svc")
    failed = finish("failed", 1)
    runs.retry_job(actor(alice), failed.pk)
    run.refresh_from_db()
    assert run.status == "running"
    finish()
    finish()
    finish()
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert Job.objects.get(pk=failed.pk).attempt == 2
    with pytest.raises(Conflict):
        runs.retry_job(actor(alice), failed.pk)


def test_manual_jobs_wait_for_a_person(alice, service, repo, finish):
    repo.commit(
        {
            "obeya.yml": "stages: [build, deploy]\njobs:\n  b:\n    stage: build\n"
            "    script: [x]\n  ship:\n    stage: deploy\n    script: [y]\n"
            "    when: manual\n"
        }
    )
    run = runs.create_run(actor(alice), "svc")
    finish()
    run.refresh_from_db()
    assert statuses(run)["ship"] == "manual" and run.status == "succeeded"
    ship = Job.objects.get(run=run, name="ship")
    runs.play_job(actor(alice), ship.pk)
    run.refresh_from_db()
    assert run.status == "running"
    finish()
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_run_numbers_count_per_service(alice, service):
    assert [runs.create_run(actor(alice), "svc").number for _ in range(3)] == [1, 2, 3]
    with pytest.raises(NotFound):
        runs.get_run("svc", 99)


def test_the_run_commit_survives_a_force_push(alice, service, repo, finish):
    from tests.pipelines.conftest import git as run_git

    old = repo.commit({"z": "1"})
    run = runs.create_run(actor(alice), "svc")
    run_git(repo.path, "reset", "-q", "--hard", "HEAD~1")
    repo.commit({"z": "other"})
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(leases.Runner.objects.get(name="r1"))
    assert claim.job.run_id == run.pk
    bundle = leases.source_bundle(claim.job.runner, claim.job.pk, claim.lease_token)
    listed = run_git(repo.path, "bundle", "list-heads", str(bundle))
    assert old in listed


def test_a_job_whose_needs_did_not_succeed_cannot_be_retried(alice, service, runner):
    run = runs.create_run(actor(alice), "svc")
    runs.cancel_run(actor(alice), "svc", run.number)
    unit = Job.objects.get(run=run, name="unit")
    with pytest.raises(Conflict, match="needs build"):
        runs.retry_job(actor(alice), unit.pk)
    build = Job.objects.get(run=run, name="build")
    runs.retry_job(actor(alice), build.pk)
    assert Job.objects.get(pk=unit.pk).status == "canceled"


def test_a_run_whose_remaining_jobs_wait_on_a_manual_one_is_blocked(alice, service, repo, finish):
    repo.commit(
        {
            "obeya.yml": "stages: [build, gate, after]\njobs:\n  b:\n    stage: build\n"
            "    script: [x]\n  gate:\n    stage: gate\n    script: [y]\n    when: manual\n"
            "  after:\n    stage: after\n    script: [z]\n"
        }
    )
    run = runs.create_run(actor(alice), "svc")
    finish()
    run.refresh_from_db()
    assert statuses(run) == {"b": "succeeded", "gate": "manual", "after": "created"}
    assert run.status == "blocked" and run.finished_at is None
    runs.play_job(actor(alice), Job.objects.get(run=run, name="gate").pk)
    run.refresh_from_db()
    assert run.status == "running"
    finish()
    finish()
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_an_older_green_run_does_not_release_the_cord_a_newer_red_one_pulled(
    alice, service, finish
):
    older = runs.create_run(actor(alice), "svc")
    newer = runs.create_run(actor(alice), "svc")
    finish()  # older's build
    finish("failed", 1)  # newer's build: main is red
    assert andon.andon_is_pulled("svc")
    finish()
    finish()
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, newer.status) == ("succeeded", "failed")
    assert andon.andon_is_pulled("svc")
