"""The deployer end to end on local targets: switch, warm-up, rollback, retention."""

from __future__ import annotations

import os

from obeya.deploy import deployer
from obeya.pipelines.models import Job
from tests.deploy.conftest import Shop, latest


def _current(shop: Shop, name: str) -> str:
    return os.readlink(shop.target(name) / "current")


def test_a_green_package_deploys_to_staging_and_the_job_succeeds(shop: Shop) -> None:
    run = shop.build("1.0.0")
    job = Job.objects.get(run=run, name="to-staging")
    assert job.status == "queued"
    done = deployer.work_once()
    assert done is not None and done.status == "succeeded", done.reason if done else None
    assert done.version == "1.0.0"
    assert (shop.target("staging") / "current" / "VERSION").read_text() == "1.0.0\n"
    assert _current(shop, "staging") == f"releases/{done.release_id}"
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert Job.objects.get(run=run, name="to-production").status == "manual"


def test_an_unhealthy_release_rolls_back_to_the_previous_one(shop: Shop) -> None:
    shop.build("1.0.0")
    first = deployer.work_once()
    assert first is not None and first.status == "succeeded"
    shop.commit("break it")
    run = shop.build("2.0.0", status="broken")
    second = deployer.work_once()
    assert second is not None
    assert second.status == "rolled_back", second.reason
    assert "health check failed" in second.reason
    assert _current(shop, "staging") == f"releases/{first.release_id}"
    assert (shop.target("staging") / "current" / "VERSION").read_text() == "1.0.0\n"
    job = Job.objects.get(run=run, name="to-staging")
    assert job.status == "failed"
    assert latest("staging").pk == second.pk


def test_with_no_previous_release_a_failed_health_check_fails_loudly(shop: Shop) -> None:
    shop.build("1.0.0", status="broken")
    done = deployer.work_once()
    assert done is not None and done.status == "failed"
    assert "no previous release" in done.reason


def test_a_deployment_records_every_commit_it_brings_for_lead_time(shop: Shop) -> None:
    from obeya.core.models import Event

    shop.build("1.0.0")
    first = deployer.work_once()
    assert first is not None and first.status == "succeeded"
    one, two = shop.commit("one"), shop.commit("two")
    shop.build("1.1.0")
    second = deployer.work_once()
    assert second is not None and second.status == "succeeded"
    events = Event.objects.filter(kind="deployment.succeeded").order_by("id")
    assert [c["sha"] for c in events[0].data["commits"]] == [first.sha]
    assert [c["sha"] for c in events[1].data["commits"]] == [two, one]
    assert all(c["committed_at"] for c in events[1].data["commits"])
