"""The rules a deployment must pass, at the service level (RELIABILITY B4, C5, issue #5).

Who may ask for a deployment and who may approve it (four eyes, the environment's role,
two people for two approvals), build once and promote in order, the andon, unsafe
archives, retention that archives and never deletes, manual rollback as a deployment of
its own, drift after a hand edit, and a canceled run taking its waiting deployment along.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from obeya.catalog import services as catalog
from obeya.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from obeya.core.models import User
from obeya.deploy import deployer
from obeya.deploy import services as deploy
from obeya.deploy.models import Deployment, DeploymentStatus, Release
from obeya.deploy.targets import LocalHost, TargetError
from obeya.pipelines import andon, artifacts, leases, runs
from obeya.pipelines.models import Job, Run
from tests.conftest import actor
from tests.deploy.conftest import Shop, environment, release_tar

TEAM = (
    ("dora", ("developer",)),
    ("otto", ("operator",)),
    ("gina", ("gatekeeper",)),
    ("greg", ("gatekeeper",)),
    ("gwen", ("gatekeeper", "operator")),  # may ask and may approve, never her own
    ("rita", ("reliability_engineer",)),
)


@pytest.fixture
def team(shop: Shop, make_user: Callable[..., User]) -> dict[str, User]:
    people = {"olga": shop.owner}
    for name, roles in TEAM:
        people[name] = make_user(name)
        for role in roles:
            catalog.add_member(actor(shop.owner), "shop", name, role)
    return people


def staged(shop: Shop, version: str = "1.0.0", status: str = "healthy") -> Run:
    """A new commit built and deployed to staging (which succeeds unless ``status`` says)."""
    shop.commit(f"version {version}")
    run = shop.build(version, status)
    done = deployer.work_once()
    assert done is not None and done.environment.name == "staging"
    return run


def in_production(shop: Shop, team: dict[str, User], version: str) -> Deployment:
    """A build promoted through staging to production, approved by gina."""
    run = staged(shop, version)
    asked = deploy.deploy(actor(team["olga"]), "shop", "production", run.number)
    deploy.decide(actor(team["gina"]), asked.pk, "looks right")
    done = deployer.work_once()
    assert done is not None and done.status == "succeeded", done and done.reason
    return done


def version_in(shop: Shop, name: str) -> str:
    return (shop.target(name) / "current" / "VERSION").read_text().strip()


# ---- who may deploy and approve (B4) -----------------------------------------------------


def test_a_developer_deploys_to_staging_but_not_to_protected_production(
    shop: Shop, team: dict[str, User]
) -> None:
    run = shop.build("1.0.0")
    assert deployer.work_once() is not None
    with pytest.raises(PermissionDenied, match=r"run_protected.*devops_engineer or operator"):
        deploy.deploy(actor(team["dora"]), "shop", "production", run.number)
    job = Job.objects.get(run=run, name="to-production")
    assert job.status == "manual", "the refused request changed nothing"
    assert not Deployment.objects.filter(environment__name="production").exists()
    shop.commit("again")
    again = shop.build("1.0.1")
    asked = deploy.deploy(actor(team["dora"]), "shop", "staging", again.number)
    assert asked.status in {DeploymentStatus.QUEUED, DeploymentStatus.OUTDATED}


@pytest.mark.parametrize("who", ["otto", "olga"])
def test_operators_and_devops_engineers_may_ask_for_production(
    shop: Shop, team: dict[str, User], who: str
) -> None:
    run = staged(shop)
    asked = deploy.deploy(actor(team[who]), "shop", "production", run.number)
    assert asked.status == DeploymentStatus.WAITING_APPROVAL
    assert asked.requested_by == team[who]
    assert Job.objects.get(run=run, name="to-production").status == "waiting_approval"


def test_the_person_who_asked_cannot_approve_it(shop: Shop, team: dict[str, User]) -> None:
    run = staged(shop)
    asked = deploy.deploy(actor(team["gwen"]), "shop", "production", run.number)
    with pytest.raises(PermissionDenied, match="four eyes"):
        deploy.decide(actor(team["gwen"]), asked.pk, "mine, and fine")
    assert deploy.get_deployment(asked.pk).status == DeploymentStatus.WAITING_APPROVAL
    done = deploy.decide(actor(team["gina"]), asked.pk, "checked")
    assert done.status == DeploymentStatus.QUEUED


def test_the_person_who_triggered_the_run_cannot_approve_its_deployment(
    shop: Shop, team: dict[str, User]
) -> None:
    catalog.add_member(actor(shop.owner), "shop", "gina", "developer")
    shop.commit("gina's change")
    run = runs.create_run(actor(team["gina"]), "shop", "main")
    claim = leases.claim(shop.runner)
    assert claim is not None
    archive = release_tar({"VERSION": "2.0.0\n", "STATUS": "healthy\n"})
    artifacts.upload(shop.runner, claim.job.pk, claim.lease_token, "package", io.BytesIO(archive))
    leases.complete(shop.runner, claim.job.pk, claim.lease_token, "succeeded", 0)
    assert deployer.work_once() is not None
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    with pytest.raises(PermissionDenied, match="four eyes"):
        deploy.decide(actor(team["gina"]), asked.pk, "my own run")
    assert deploy.decide(actor(team["greg"]), asked.pk, "ok").status == DeploymentStatus.QUEUED


def test_approving_needs_the_environments_role(shop: Shop, team: dict[str, User]) -> None:
    run = staged(shop)
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    for who in ("dora", "olga", "rita"):
        with pytest.raises(PermissionDenied, match="gatekeeper"):
            deploy.decide(actor(team[who]), asked.pk, "I'd like it out")
    # A gatekeeper hands production to the reliability engineers: what is asked from now
    # on is theirs to approve (what already waits keeps its rules: test_gates.py).
    deploy.update_environment(
        actor(team["gina"]), "shop", "production", approval_role="reliability_engineer"
    )
    later = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    with pytest.raises(PermissionDenied, match="reliability_engineer"):
        deploy.decide(actor(team["gina"]), later.pk, "gatekeepers no longer decide here")
    assert deploy.decide(actor(team["rita"]), later.pk, "SLOs fine").status == "queued"
    with pytest.raises(PermissionDenied):
        deploy.decide(actor(None), later.pk, "anonymous")


def test_two_required_approvals_need_two_different_people(
    shop: Shop, team: dict[str, User]
) -> None:
    deploy.update_environment(actor(team["gina"]), "shop", "production", required_approvals=2)
    run = staged(shop)
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    with pytest.raises(InvalidInput, match="comment"):
        deploy.decide(actor(team["gina"]), asked.pk, "  ")
    first = deploy.decide(actor(team["gina"]), asked.pk, "ok")
    assert first.status == DeploymentStatus.WAITING_APPROVAL
    with pytest.raises(Conflict, match="already decided"):
        deploy.decide(actor(team["gina"]), asked.pk, "ok again")
    assert deploy.get_deployment(asked.pk).status == DeploymentStatus.WAITING_APPROVAL
    second = deploy.decide(actor(team["greg"]), asked.pk, "ok too")
    assert second.status == DeploymentStatus.QUEUED
    assert deploy.approvers_of(second) == ["gina", "greg"]
    done = deployer.work_once()
    assert done is not None and done.pk == asked.pk and done.status == "succeeded"


def test_a_rejection_ends_the_deployment_and_cancels_its_pipeline_job(
    shop: Shop, team: dict[str, User]
) -> None:
    run = staged(shop)
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    assert asked.job is not None
    rejected = deploy.decide(actor(team["gina"]), asked.pk, "not on a Friday", reject=True)
    assert rejected.status == DeploymentStatus.REJECTED
    assert "gina" in rejected.reason and "Friday" in rejected.reason
    job = Job.objects.get(pk=asked.job.pk)
    assert job.status == "canceled"
    with pytest.raises(Conflict, match="rejected"):
        deploy.decide(actor(team["greg"]), asked.pk, "too late")
    assert deployer.work_once() is None
    assert not (shop.target("production") / "current").exists()


# ---- build once, promote, andon ----------------------------------------------------------


def test_production_gets_only_what_passed_staging_and_the_very_same_bytes(
    shop: Shop, team: dict[str, User]
) -> None:
    run = shop.build("1.0.0")  # staging's deployment is queued, not done yet
    with pytest.raises(Conflict) as refused:
        deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    assert "has not been deployed successfully to staging" in str(refused.value)
    assert "build once, promote" in str(refused.value)
    assert not Deployment.objects.filter(environment__name="production").exists()

    staging = deployer.work_once()
    assert staging is not None and staging.status == "succeeded"
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    deploy.decide(actor(team["gina"]), asked.pk, "go")
    production = deployer.work_once()
    assert production is not None and production.status == "succeeded", production.reason
    assert production.artifact_sha256 == staging.artifact_sha256
    kept = {r.environment.name: r for r in Release.objects.select_related("environment")}
    assert kept["production"].artifact_sha256 == kept["staging"].artifact_sha256
    assert kept["production"].manifest == kept["staging"].manifest
    assert version_in(shop, "production") == "1.0.0"


def test_a_build_that_failed_in_staging_is_refused_for_production(
    shop: Shop, team: dict[str, User]
) -> None:
    staged(shop, "1.0.0")
    broken = staged(shop, "2.0.0", status="broken")
    assert Deployment.objects.get(run=broken).status == "rolled_back"
    andon.reset_andon(actor(team["olga"]), "shop", "rolled back; the fix is on its way")
    with pytest.raises(Conflict, match="has not been deployed successfully to staging"):
        deploy.deploy(actor(team["otto"]), "shop", "production", broken.number)


def test_a_pulled_andon_stops_promotion_to_the_protected_environment_until_reset(
    shop: Shop, team: dict[str, User]
) -> None:
    run = staged(shop)
    andon.pull_andon(actor(team["dora"]), "shop", "main is red: flaky checkout test")
    with pytest.raises(Conflict) as refused:
        deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    assert "andon" in str(refused.value) and "flaky checkout test" in str(refused.value)
    shop.commit("fix")
    fix = shop.build("1.0.1")
    assert deploy.deploy(actor(team["dora"]), "shop", "staging", fix.number).pk
    andon.reset_andon(actor(team["olga"]), "shop", "test quarantined")
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    assert asked.status == DeploymentStatus.WAITING_APPROVAL


def test_a_pulled_andon_also_stops_an_approval_waiting_for_production(
    shop: Shop, team: dict[str, User]
) -> None:
    run = staged(shop)
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    andon.pull_andon(actor(team["dora"]), "shop", "smoke test red")
    with pytest.raises(Conflict, match="smoke test red"):
        deploy.decide(actor(team["gina"]), asked.pk, "go")
    assert deploy.get_deployment(asked.pk).status == DeploymentStatus.WAITING_APPROVAL
    andon.reset_andon(actor(team["olga"]), "shop", "green again")
    assert deploy.decide(actor(team["gina"]), asked.pk, "go").status == "queued"


def test_an_andon_pulled_after_the_approval_holds_the_deployment_until_it_is_reset(
    shop: Shop, team: dict[str, User]
) -> None:
    run = staged(shop)
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    deploy.decide(actor(team["gina"]), asked.pk, "go")
    andon.pull_andon(actor(team["dora"]), "shop", "checkout is broken on main")
    assert deployer.work_once() is None
    held = deploy.get_deployment(asked.pk)
    assert held.status == DeploymentStatus.QUEUED
    assert "andon" in held.reason and "checkout is broken" in held.reason
    assert not (shop.target("production") / "current").exists()
    andon.reset_andon(actor(team["olga"]), "shop", "fixed")
    done = deployer.work_once()
    assert done is not None and done.pk == asked.pk and done.status == "succeeded"
    assert done.reason == ""


# ---- unsafe archives (C5) ----------------------------------------------------------------


def _tar(*members: tuple[str, str, str]) -> bytes:
    """A tar.gz of (kind, name, data-or-link-target) members, written as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(value.encode())
                tar.addfile(info, io.BytesIO(value.encode()))
            else:
                info.type, info.linkname = tarfile.SYMTYPE, value
                tar.addfile(info)
    return buffer.getvalue()


UNSAFE = {
    "dot-dot": _tar(("file", "VERSION", "1\n"), ("file", "../escaped", "x")),
    "deep-dot-dot": _tar(("file", "app/../../escaped", "x")),
    "absolute": _tar(("file", "/tmp/obeya-escaped", "x")),
    "symlink-outside": _tar(("link", "config", "../../../etc")),
    "symlink-absolute": _tar(("link", "passwd", "/etc/passwd")),
    "symlink-then-write": _tar(("link", "up", "."), ("file", "up/../../escaped", "x")),
    "write-through-symlink": _tar(("link", "d", "sub"), ("file", "d/x", "x")),
}


@pytest.mark.parametrize("name", sorted(UNSAFE))
def test_unsafe_archives_are_refused_by_the_target_and_write_nothing(
    tmp_path: Path, name: str
) -> None:
    host = LocalHost(str(tmp_path / "deep" / "target"))
    host.prepare()
    archive = tmp_path / "release.tar.gz"
    archive.write_bytes(UNSAFE[name])
    with pytest.raises(TargetError, match="artifact refused"):
        host.unpack("r1", archive)
    assert os.listdir(tmp_path / "deep" / "target" / "releases") == []
    assert sorted(os.listdir(tmp_path)) == ["deep", "release.tar.gz"]
    assert sorted(os.listdir(tmp_path / "deep")) == ["target"]
    assert not Path("/tmp/obeya-escaped").exists()


@pytest.mark.parametrize("name", sorted(UNSAFE))
def test_unsafe_archives_are_refused_at_upload(shop: Shop, name: str) -> None:
    run = runs.create_run(actor(shop.owner), "shop", "main")
    claim = leases.claim(shop.runner)
    assert claim is not None
    with pytest.raises(InvalidInput, match="artifact refused"):
        artifacts.upload(
            shop.runner, claim.job.pk, claim.lease_token, "package", io.BytesIO(UNSAFE[name])
        )
    leases.complete(shop.runner, claim.job.pk, claim.lease_token, "succeeded", 0)
    staging = Job.objects.get(run=run, name="to-staging")
    assert staging.status == "failed" and "no artifact" in staging.failure_reason
    assert not Deployment.objects.exists()


# ---- releases on the target: retention, rollback, drift ----------------------------------


def test_retention_moves_old_releases_into_archive_and_deletes_none(shop: Shop) -> None:
    made = []
    for number in range(1, 6):
        run = staged(shop, f"1.0.{number}")
        made.append(Deployment.objects.get(run=run, environment__name="staging").release_id)
    root = shop.target("staging")
    assert sorted(os.listdir(root / "releases")) == made[2:]  # retention 3
    assert sorted(os.listdir(root / "archive")) == made[:2]
    for number, release in enumerate(made[:2], start=1):
        assert (root / "archive" / release / "VERSION").read_text() == f"1.0.{number}\n"
    states = dict(Release.objects.values_list("release_id", "state"))
    assert states == {r: "archived" for r in made[:2]} | {r: "kept" for r in made[2:]}
    assert LocalHost(str(root)).current() == made[-1]


def test_a_manual_rollback_goes_back_to_the_release_before_current(
    shop: Shop, team: dict[str, User]
) -> None:
    first = staged(shop, "1.0.0")
    staged(shop, "2.0.0")
    before = Deployment.objects.get(run=first, environment__name="staging").release_id
    back = deploy.rollback(actor(team["dora"]), "shop", "staging")
    assert back.kind == "rollback" and back.release_id == before
    assert back.status == DeploymentStatus.QUEUED
    done = deployer.work_once()
    assert done is not None and done.pk == back.pk and done.status == "succeeded", done.reason
    assert version_in(shop, "staging") == "1.0.0"
    assert done.version == "1.0.0" and done.sha == first.sha
    assert LocalHost(str(shop.target("staging"))).current() == before
    with pytest.raises(Conflict, match="nothing to roll back to"):
        deploy.rollback(actor(team["dora"]), "shop", "staging")


def test_a_manual_rollback_to_a_named_release_needs_the_same_approvals(
    shop: Shop, team: dict[str, User]
) -> None:
    one = in_production(shop, team, "1.0.0")
    in_production(shop, team, "2.0.0")
    in_production(shop, team, "3.0.0")
    with pytest.raises(PermissionDenied):
        deploy.rollback(actor(team["dora"]), "shop", "production", one.release_id)
    with pytest.raises(NotFound, match="not kept"):
        deploy.rollback(actor(team["otto"]), "shop", "production", "20000101T000000-d1")
    back = deploy.rollback(actor(team["gwen"]), "shop", "production", one.release_id)
    assert back.status == DeploymentStatus.WAITING_APPROVAL
    assert deployer.work_once() is None, "nothing runs before the approval"
    with pytest.raises(PermissionDenied, match="four eyes"):
        deploy.decide(actor(team["gwen"]), back.pk, "mine")
    # A rollback is a repair: a pulled andon (main is red) never holds it.
    andon.pull_andon(actor(team["dora"]), "shop", "main is red")
    deploy.decide(actor(team["greg"]), back.pk, "incident 42: go back")
    done = deployer.work_once()
    assert done is not None and done.pk == back.pk and done.status == "succeeded", done.reason
    assert version_in(shop, "production") == "1.0.0"
    assert deploy.current_release(environment("production")) == one.release_id


def test_a_hand_edit_in_current_shows_as_drift(shop: Shop) -> None:
    staged(shop, "1.0.0")
    staging = environment("staging")
    found = deploy.drift(staging)
    assert found is not None and not found.found
    current = shop.target("staging") / "current"
    (current / "VERSION").write_text("1.0.0-hotfix\n")
    (current / "notes.txt").write_text("patched by hand\n")
    found = deploy.drift(staging)
    assert found is not None and found.found
    assert found.changed == ("VERSION",) and found.added == ("notes.txt",)
    (current / "STATUS").unlink()
    found = deploy.drift(staging)
    assert found is not None and found.missing == ("STATUS",)
    assert "1 changed (VERSION)" in found.summary()


# ---- canceling ---------------------------------------------------------------------------


def test_canceling_the_run_cancels_its_waiting_deployments(
    shop: Shop, team: dict[str, User]
) -> None:
    run = staged(shop)
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    shop.commit("next")
    queued = shop.build("1.0.1")
    waiting = Deployment.objects.get(run=queued, environment__name="staging")
    assert waiting.status == DeploymentStatus.QUEUED
    runs.cancel_run(actor(team["olga"]), "shop", run.number)
    runs.cancel_run(actor(team["olga"]), "shop", queued.number)
    assert deploy.get_deployment(asked.pk).status == DeploymentStatus.CANCELED
    assert deploy.get_deployment(waiting.pk).status == DeploymentStatus.CANCELED
    assert Job.objects.get(run=queued, name="to-staging").status == "canceled"
    assert deployer.work_once() is None
    with pytest.raises(Conflict, match="canceled"):
        deploy.decide(actor(team["gina"]), asked.pk, "too late")


def test_a_waiting_deployment_can_be_canceled_but_not_a_finished_one(
    shop: Shop, team: dict[str, User]
) -> None:
    run = staged(shop)
    done = Deployment.objects.get(run=run, environment__name="staging")
    asked = deploy.deploy(actor(team["otto"]), "shop", "production", run.number)
    with pytest.raises(PermissionDenied):
        deploy.cancel(actor(team["gina"]), asked.pk)
    assert deploy.cancel(actor(team["otto"]), asked.pk).status == DeploymentStatus.CANCELED
    assert Job.objects.get(run=run, name="to-production").status == "canceled"
    with pytest.raises(Conflict, match="only a waiting one"):
        deploy.cancel(actor(team["otto"]), done.pk)
