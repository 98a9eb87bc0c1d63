"""Deployments as use cases: environments, deploy requests, approvals, rollback, views.

Permissions are checked here, so the web UI, the API and the CLI agree. Each change is
one transaction with its event; the deployer (``deploy/deployer.py``) carries the
deployments out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events, outbound
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from obeya.core.roles import Permission, Role
from obeya.deploy import deployer, logic, reach
from obeya.deploy.models import (
    Approval,
    Deployment,
    DeploymentLog,
    DeploymentStatus,
    Environment,
    Release,
)
from obeya.deploy.targets import TargetError
from obeya.pipelines import services as pipelines
from obeya.pipelines.models import Job, JobKind, Run

EDITABLE = (
    "tier",
    "position",
    "protected",
    "required_approvals",
    "approval_role",
    "target",
    "health",
    "hooks",
    "hook_timeout_s",
    "warmup_s",
    "health_passes",
    "health_interval_ms",
    "retention",
)
# Who lets a deployment through. No one may widen that gate for themselves: only an
# administrator or the environment's own gatekeepers (holders of its approval role) change it.
PROTECTION = ("protected", "required_approvals", "approval_role")
RUN_LOOKBACK = 50


# ---- environments ------------------------------------------------------------------------


def list_environments(slug: str) -> QuerySet[Environment]:
    return Environment.objects.filter(service=catalog.get_service(slug)).order_by(
        "position", "name"
    )


def get_environment(slug: str, name: str) -> Environment:
    try:
        return Environment.objects.select_related("service").get(service__slug=slug, name=name)
    except Environment.DoesNotExist:
        known = ", ".join(list_environments(slug).values_list("name", flat=True)) or "none yet"
        raise NotFound(
            f'"{slug}" has no environment "{name}" (environments: {known})', field="environment"
        ) from None


def _clean(fields: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise InvalidInput(
            f"unknown environment setting {unknown[0]!r}: use {', '.join(EDITABLE)}",
            field=unknown[0],
        )
    merged = {**current, **fields}
    if "approval_role" in fields:
        try:
            Role(str(fields["approval_role"]))
        except ValueError:
            raise InvalidInput(
                f"unknown role {fields['approval_role']!r}: use one of "
                f"{', '.join(r.value for r in Role)}",
                field="approval_role",
            ) from None
    if "position" in fields and not (
        isinstance(fields["position"], int) and 0 <= fields["position"] <= 1000
    ):
        raise InvalidInput("position: a whole number from 0 to 1000", field="position")
    problems = logic.check_settings(merged)
    if problems:
        name, message = problems[0]
        raise InvalidInput(message, field=name)
    return fields


def _settings_of(environment: Environment) -> dict[str, Any]:
    return {key: getattr(environment, key) for key in EDITABLE}


def create_environment(actor: Actor, slug: str, name: str, **fields: Any) -> Environment:
    """Define an environment of ``slug`` (devops engineers and service masters)."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.CONFIGURE_ENVIRONMENTS)
    name = (name or "").strip()
    if not logic.NAME.match(name):
        raise InvalidInput(
            f"environment name {name!r}: lower-case letters, digits, - and _, up to 63",
            field="name",
        )
    fields.setdefault(
        "position",
        (list_environments(slug).values_list("position", flat=True).last() or 0) + 10,
    )
    defaults = _settings_of(Environment())
    cleaned = _clean(fields, defaults)
    merged = {**defaults, **cleaned}
    approved = reach.approve(actor, merged["target"], merged["health"], [])
    now = actor.now()
    try:
        with transaction.atomic():
            environment = Environment.objects.create(
                service=service,
                name=name,
                created_at=now,
                updated_at=now,
                approved_origins=approved,
                **cleaned,
            )
            events.record(
                actor,
                "environment.created",
                f"environment:{environment.pk}",
                {"name": name, **_settings_of(environment), **_approvals(approved, [])},
                service=slug,
            )
    except IntegrityError:
        raise Conflict(f'"{slug}" already has an environment "{name}"', field="name") from None
    return environment


def may_change_protection(actor: Actor, environment: Environment) -> bool:
    """Whether ``actor`` may change who approves deployments to ``environment``: an
    administrator (or Obeya itself and the local admin CLI), or a holder of its approval
    role on the service. A read-scope token may change nothing."""
    if actor.token is not None and actor.token.scope == "read":
        return False
    if actor.user is None:
        return actor.channel in {"system", "cli"}
    if actor.is_admin:
        return True
    return environment.approval_role in catalog.roles_of(actor.user, environment.service)


def _require_protection_right(actor: Actor, environment: Environment, changing: list[str]) -> None:
    if may_change_protection(actor, environment):
        return
    if actor.token is not None and actor.token.scope == "read":
        raise PermissionDenied("this token has the read scope: use a write-scope token to change")
    role, slug = environment.approval_role, environment.service.slug
    holders = sorted(
        {m.user.username for m in catalog.members(environment.service) if m.role == role}
    )
    who = f" ({', '.join(holders)})" if holders else " (nobody holds it yet)"
    raise PermissionDenied(
        f"{actor.name} may not change the protection of {environment.name} "
        f"({', '.join(changing)}): only an administrator or a holder of the {role} role on "
        f"{slug}{who}, the role that approves deployments to {environment.name}, may"
    )


def _approvals(approved: list[str], before: list[str]) -> dict[str, Any]:
    """What an event records of the loopback URLs approved (only when they change)."""
    return {"approved_origins": approved} if approved != before else {}


def _checked_urls(
    actor: Actor, environment: Environment, fields: dict[str, Any]
) -> list[str] | None:
    """The approved loopback origins after a change of the environment's target or health,
    each URL it names checked against the allow-list (obeya.deploy.reach); None when
    neither changes, unless an administrator saves it (which approves its loopback URLs:
    how one saved before approvals existed gets its approval). Checked before the
    change's transaction: a name lookup can be slow."""
    target = fields.get("target", environment.target)
    health = fields.get("health", environment.health)
    unchanged = (target, health) == (environment.target, environment.health)
    if unchanged and not reach.may_approve(actor):
        return None
    if not isinstance(target, dict) or not isinstance(health, dict):
        return None  # not settings at all: _clean says what is wrong
    # The setting's right first: a refusal names addresses, which only those may learn.
    catalog.require(actor, environment.service, Permission.CONFIGURE_ENVIRONMENTS)
    return reach.approve(actor, target, health, environment.approved_origins)


def update_environment(actor: Actor, slug: str, name: str, **fields: Any) -> Environment:
    """Change settings of an environment: ``deploy.configure`` for most of them; its
    protection (``PROTECTION``) only by an administrator or its gatekeepers."""
    environment = get_environment(slug, name)
    approved = _checked_urls(actor, environment, fields)
    with transaction.atomic():
        # Checked against the locked row, so a protection change that commits meanwhile
        # is the one the rule is read from.
        service = environment.service
        environment = Environment.objects.select_for_update().get(pk=environment.pk)
        environment.service = service
        before = _settings_of(environment)
        changing = {key for key, value in fields.items() if key in before and before[key] != value}
        guarded = [key for key in PROTECTION if key in changing]
        if guarded:
            _require_protection_right(actor, environment, guarded)
        if changing - set(PROTECTION) or not (guarded or may_change_protection(actor, environment)):
            catalog.require(actor, environment.service, Permission.CONFIGURE_ENVIRONMENTS)
        cleaned = _clean(fields, before)
        for key, value in cleaned.items():
            setattr(environment, key, value)
        approved_before = list(environment.approved_origins)
        if approved is not None:
            environment.approved_origins = approved
        environment.updated_at = actor.now()
        environment.save()
        changes = {
            key: {"from": before[key], "to": value}
            for key, value in cleaned.items()
            if before[key] != value and key not in PROTECTION
        }
        if approved is not None and approved != approved_before:
            changes["approved_origins"] = {"from": approved_before, "to": approved}
        subject = f"environment:{environment.pk}"
        if changes or not guarded:
            events.record(
                actor,
                "environment.changed",
                subject,
                {"name": name, "changes": changes},
                service=slug,
            )
        if guarded:
            events.record(
                actor,
                "environment.protection_changed",
                subject,
                {
                    "name": name,
                    "changed": guarded,
                    "before": {key: before[key] for key in PROTECTION},
                    "after": {key: getattr(environment, key) for key in PROTECTION},
                },
                service=slug,
            )
    return environment


def outbound_policy(slug: str) -> outbound.Policy:
    """Where checks of ``slug`` may connect: the allow-list setting, with the URLs its
    environments name (obeya.deploy.reach): public ones, and approved loopback ones."""
    return reach.policy_for(list_environments(slug))


def _previous_environment(environment: Environment) -> Environment | None:
    return (
        Environment.objects.filter(
            service_id=environment.service_id, position__lt=environment.position
        )
        .order_by("-position", "-id")
        .first()
    )


def _next_environment(environment: Environment) -> Environment | None:
    return (
        Environment.objects.filter(
            service_id=environment.service_id, position__gt=environment.position
        )
        .order_by("position", "id")
        .first()
    )


# ---- asking for a deployment -------------------------------------------------------------


def _require_deployer(actor: Actor, environment: Environment) -> None:
    catalog.require(actor, environment.service, Permission.DEPLOY)
    if environment.protected:
        catalog.require(actor, environment.service, Permission.DEPLOY_PROTECTED)


def _refusal(environment: Environment, artifact_sha256: str) -> str:
    """Why this artifact may not go to this environment now ("" when it may)."""
    slug = environment.service.slug
    if environment.protected and pipelines.andon_is_pulled(slug):
        return (
            f"the andon of {slug} is pulled: {pipelines.andon_reason(slug)}; promotion to "
            f"the protected environment {environment.name} stops until the default branch is "
            "green again or the andon is reset"
        )
    before = _previous_environment(environment)
    if before is None:
        return ""
    passed = Deployment.objects.filter(
        environment=before, artifact_sha256=artifact_sha256, status=DeploymentStatus.SUCCEEDED
    ).exists()
    if passed:
        return ""
    return (
        f"artifact {artifact_sha256[:12]} has not been deployed successfully to "
        f"{before.name}, which comes before {environment.name} in the promotion order: "
        f"deploy it to {before.name} first (build once, promote)"
    )


def _new_deployment(
    actor: Actor,
    environment: Environment,
    *,
    run: Run | None,
    job: Job | None,
    artifact_job: str,
    artifact_sha256: str,
    requested_by: Any,
    kind: str = "deploy",
    release: Release | None = None,
) -> Deployment:
    """Record a deployment request (inside a transaction); it waits for approval or runs.

    The environment's approval rules are copied onto the deployment: it is decided by the
    rules it was requested under, whatever changes on the environment meanwhile.
    """
    status = (
        DeploymentStatus.WAITING_APPROVAL
        if environment.required_approvals > 0
        else DeploymentStatus.QUEUED
    )
    deployment = Deployment.objects.create(
        environment=environment,
        service=environment.service,
        kind=kind,
        status=status,
        run=run,
        job=job,
        sha=run.sha if run else (release.sha if release else ""),
        branch=run.branch if run else "",
        committed_at=run.committed_at if run else None,
        version=release.version if release else "",
        artifact_job=artifact_job,
        artifact_sha256=artifact_sha256,
        release_id=release.release_id if release else "",
        requested_by=requested_by,
        requested_at=actor.now(),
        required_approvals=environment.required_approvals,
        approval_role=environment.approval_role,
    )
    events.record(
        actor,
        "deployment.requested",
        f"deployment:{deployment.pk}",
        deployer.event_data(
            deployment,
            required_approvals=deployment.required_approvals,
            approval_role=deployment.approval_role,
        ),
        service=environment.service.slug,
    )
    if status == DeploymentStatus.QUEUED:
        deployer.wake()
    return deployment


def dispatch_job(actor: Actor, job: Job) -> str:
    """The pipeline's deploy job is ready: ask for its deployment (pipelines calls this).

    A person starting the job (play, retry) must be allowed to deploy there; an automatic
    start is checked by the environment's approvals instead.
    """
    run = job.run
    slug = run.service.slug
    name = str(job.spec.get("environment") or "")
    artifact_job = str((job.spec.get("deploy") or {}).get("artifact") or "")
    environment = Environment.objects.filter(service=run.service, name=name).first()
    if environment is None:
        job.failure_reason = (
            f'"{slug}" has no environment "{name}": define it on the server '
            f"(obeya env create {slug} {name} …) and retry the job"
        )
        return "failed"
    if actor.user is not None:
        _require_deployer(actor, environment)
    artifact = pipelines.artifact_of(run, artifact_job)
    if artifact is None:
        job.failure_reason = f"job {artifact_job} of run #{run.number} kept no artifact to deploy"
        return "failed"
    refusal = _refusal(environment, artifact.sha256)
    if refusal:
        job.failure_reason = refusal
        return "failed"
    deployment = _new_deployment(
        actor,
        environment,
        run=run,
        job=job,
        artifact_job=artifact_job,
        artifact_sha256=artifact.sha256,
        requested_by=actor.user or run.triggered_by,
    )
    return (
        "waiting_approval" if deployment.status == DeploymentStatus.WAITING_APPROVAL else "queued"
    )


def _deploy_job(run: Run, environment: str) -> Job | None:
    for job in Job.objects.filter(run=run, kind=JobKind.DEPLOY).order_by("position"):
        if job.spec.get("environment") == environment:
            return job
    return None


def _run_to_deploy(service: Service, environment: Environment, number: int | None) -> Run:
    if number is not None:
        try:
            run = pipelines.get_run(service.slug, number)
        except NotFound as error:
            raise NotFound(error.message, field="run") from None
        if _deploy_job(run, environment.name) is None:
            raise InvalidInput(
                f"run #{number} has no deploy job for {environment.name}: add one with "
                f"environment: {environment.name} and deploy: to obeya.yml",
                field="run",
            )
        return run
    branch = pipelines.pipeline_of(service).default_branch
    for run in pipelines.list_runs(service.slug, branch)[:RUN_LOOKBACK]:
        job = _deploy_job(run, environment.name)
        if job is not None and pipelines.artifact_of(run, job.spec["deploy"]["artifact"]):
            return run
    raise NotFound(
        f"no run of {branch} has a build to deploy to {environment.name}: run the pipeline "
        "first, or name a run with --run",
        field="run",
    )


def deploy(
    actor: Actor, slug: str, environment_name: str, run_number: int | None = None
) -> Deployment:
    """Deploy a run's build (default: the newest deployable run of the default branch)."""
    environment = get_environment(slug, environment_name)
    _require_deployer(actor, environment)
    run = _run_to_deploy(environment.service, environment, run_number)
    job = _deploy_job(run, environment.name)
    assert job is not None  # _run_to_deploy checked it
    if job.status == "manual":
        pipelines.play_job(actor, job.pk)
        found = Deployment.objects.filter(job=job).order_by("-id").first()
        assert found is not None  # play_job raised unless the deployment was recorded
        return found
    artifact_job = str(job.spec["deploy"]["artifact"])
    artifact = pipelines.artifact_of(run, artifact_job)
    if artifact is None:
        raise Conflict(
            f"job {artifact_job} of run #{run.number} kept no artifact to deploy "
            "(it failed, did not run, or its artifact expired)"
        )
    refusal = _refusal(environment, artifact.sha256)
    if refusal:
        raise Conflict(refusal)
    with transaction.atomic():
        return _new_deployment(
            actor,
            environment,
            run=run,
            job=None,
            artifact_job=artifact_job,
            artifact_sha256=artifact.sha256,
            requested_by=actor.user,
        )


def kept_releases(environment: Environment) -> list[Release]:
    """Releases still on the target (not archived), newest first."""
    return list(
        Release.objects.filter(environment=environment, state="kept").order_by("-release_id")
    )


def current_release(environment: Environment) -> str:
    """The release ``current`` points at on the (first) host; "" when none or unreachable."""
    try:
        return deployer.hosts_for(environment)[0].current() or ""
    except (TargetError, OSError):
        return ""


def rollback(
    actor: Actor, slug: str, environment_name: str, to_release: str | None = None
) -> Deployment:
    """Go back to a kept release (default: the one before the current one)."""
    environment = get_environment(slug, environment_name)
    _require_deployer(actor, environment)
    current = current_release(environment)
    kept = kept_releases(environment)
    if to_release:
        chosen = next((r for r in kept if r.release_id == to_release), None)
        if chosen is None:
            names = ", ".join(r.release_id for r in kept) or "none"
            raise NotFound(
                f"release {to_release} is not kept in {environment.name} (kept: {names})",
                field="to",
            )
        if chosen.release_id == current:
            raise Conflict(f"release {to_release} is already current in {environment.name}")
    else:
        # A release that failed its warm-up is kept too, but is no place to go back to.
        served = set(
            Deployment.objects.filter(
                environment=environment, status=DeploymentStatus.SUCCEEDED
            ).values_list("release_id", flat=True)
        )
        older = (
            [r for r in kept if r.release_id < current and r.release_id in served]
            if current
            else []
        )
        if not older:
            raise Conflict(
                f"no release older than the current one ({current or 'none'}) that ran "
                f"successfully is kept in {environment.name}: nothing to roll back to"
            )
        chosen = older[0]
    with transaction.atomic():
        return _new_deployment(
            actor,
            environment,
            run=chosen.deployment.run if chosen.deployment else None,
            job=None,
            artifact_job=chosen.deployment.artifact_job if chosen.deployment else "",
            artifact_sha256=chosen.artifact_sha256,
            requested_by=actor.user,
            kind="rollback",
            release=chosen,
        )


# ---- approvals and cancel ----------------------------------------------------------------


def get_deployment(deployment_id: int) -> Deployment:
    try:
        return Deployment.objects.select_related(
            "environment", "service", "run", "requested_by"
        ).get(pk=deployment_id)
    except Deployment.DoesNotExist:
        raise NotFound(f"no deployment with id {deployment_id}", field="deployment") from None


def _triggered_by(deployment: Deployment) -> set[int]:
    people = {deployment.requested_by_id}
    if deployment.run is not None:
        people.add(deployment.run.triggered_by_id)
    return {pk for pk in people if pk is not None}


def decide(actor: Actor, deployment_id: int, comment: str, *, reject: bool = False) -> Deployment:
    """Approve (or reject) a deployment waiting for approval, with a comment."""
    deployment = get_deployment(deployment_id)
    environment = deployment.environment
    role = deployment.approval_role  # the rules it was requested under
    if actor.user is None:
        raise PermissionDenied("sign in to approve deployments")
    if role not in catalog.roles_of(actor.user, deployment.service):
        since = " (the rule when it was requested)" if role != environment.approval_role else ""
        raise PermissionDenied(
            f"approving deployments to {environment.name} needs the {role} role on "
            f"{deployment.service.slug}{since}"
        )
    if actor.user.pk in _triggered_by(deployment):
        raise PermissionDenied(
            "you triggered this deployment: someone else must approve it (four eyes)"
        )
    comment = (comment or "").strip()
    if not comment:
        raise InvalidInput("say why: a comment is required", field="comment")
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if deployment.status != DeploymentStatus.WAITING_APPROVAL:
            raise Conflict(f"deployment {deployment.pk} is {deployment.status}, not waiting")
        if (
            not reject
            and deployment.kind == "deploy"  # a rollback is a repair: the andon never holds it
            and environment.protected
            and pipelines.andon_is_pulled(deployment.service.slug)
        ):
            raise Conflict(_refusal(environment, deployment.artifact_sha256))
        try:
            with transaction.atomic():
                Approval.objects.create(
                    deployment=deployment,
                    user=actor.user,
                    decision="reject" if reject else "approve",
                    comment=comment,
                    at=actor.now(),
                )
        except IntegrityError:
            raise Conflict("you have already decided on this deployment") from None
        events.record(
            actor,
            "deployment.rejected" if reject else "deployment.approved",
            f"deployment:{deployment.pk}",
            {"environment": environment.name, "comment": comment},
            service=deployment.service.slug,
        )
        state = logic.approval_state(
            deployment.required_approvals,
            deployment.approvals.values_list("decision", flat=True),
        )
        if state == "rejected":
            deployer.settle(
                actor,
                deployment,
                DeploymentStatus.REJECTED,
                f"rejected by {actor.name}: {comment}",
                kind="deployment.closed",
            )
        elif state == "approved":
            deployer.settle(actor, deployment, DeploymentStatus.QUEUED, kind="deployment.queued")
            deployer.wake()
    return get_deployment(deployment.pk)


def cancel(actor: Actor, deployment_id: int) -> Deployment:
    """Withdraw a deployment that has not started."""
    deployment = get_deployment(deployment_id)
    catalog.require(actor, deployment.service, Permission.DEPLOY)
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if deployment.status not in logic.WAITING:
            raise Conflict(
                f"deployment {deployment.pk} is {deployment.status}: only a waiting one can be "
                "canceled"
            )
        deployer.settle(actor, deployment, DeploymentStatus.CANCELED, f"canceled by {actor.name}")
    return get_deployment(deployment.pk)


def on_job_canceled(actor: Actor, job: Job) -> None:
    """A person canceled the run of a deploy job that was still waiting (pipelines hook)."""
    for deployment in Deployment.objects.select_for_update().filter(
        job=job, status__in=logic.WAITING
    ):
        deployer.settle(
            actor, deployment, DeploymentStatus.CANCELED, f"run canceled by {actor.name}"
        )


# ---- reading -----------------------------------------------------------------------------


def list_deployments(slug: str, environment: str = "", status: str = "") -> QuerySet[Deployment]:
    found = Deployment.objects.filter(service=catalog.get_service(slug)).select_related(
        "environment", "run", "requested_by"
    )
    if environment:
        found = found.filter(environment=get_environment(slug, environment))
    if status:
        if status not in DeploymentStatus.values:
            raise InvalidInput(
                f"unknown deployment status {status!r}: use one of "
                f"{', '.join(DeploymentStatus.values)}",
                field="status",
            )
        found = found.filter(status=status)
    return found.order_by("-id")


def deployable_runs(environment: Environment, limit: int = 15) -> list[Run]:
    """Recent runs, newest first, whose build is ready to deploy to ``environment``."""
    found: list[Run] = []
    for run in pipelines.list_runs(environment.service.slug)[:RUN_LOOKBACK]:
        job = _deploy_job(run, environment.name)
        if job is not None and pipelines.artifact_of(run, str(job.spec["deploy"]["artifact"])):
            found.append(run)
            if len(found) == limit:
                break
    return found


def log_of(deployment: Deployment, after: int = 0) -> QuerySet[DeploymentLog]:
    return DeploymentLog.objects.filter(deployment=deployment, pk__gt=after).order_by("id")


def approvers_of(deployment: Deployment) -> list[str]:
    return [
        approval.user.username
        for approval in deployment.approvals.select_related("user")
        if approval.decision == "approve"
    ]


def drift(environment: Environment) -> logic.Drift | None:
    """How ``current`` differs from its release's manifest; None when it cannot be told."""
    try:
        host = deployer.hosts_for(environment)[0]
        current = host.current()
    except (TargetError, OSError):
        return None
    if not current:
        return None
    release = Release.objects.filter(environment=environment, release_id=current).first()
    if release is None:
        return None
    try:
        return logic.compare(release.manifest, host.manifest())
    except (TargetError, OSError):
        return None


@dataclass
class EnvironmentState:
    """What an environment runs and what is on its way, for pages, API and CLI."""

    environment: Environment
    serving: Deployment | None
    current_release: str
    waiting: list[Deployment]
    last: Deployment | None
    drift: logic.Drift | None
    approved_by: list[str] = field(default_factory=list)
    next_environment: str = ""
    not_yet_in_next: list[Any] = field(default_factory=list)

    @property
    def health(self) -> str:
        if self.last is None:
            return "unknown"
        if self.last.status == DeploymentStatus.RUNNING:
            return "deploying"
        if self.last.status == DeploymentStatus.ROLLED_BACK:
            return "rolled back"
        if self.last.status == DeploymentStatus.FAILED:
            return "failed"
        return "healthy" if self.serving else "unknown"


def environment_state(
    environment: Environment, *, with_commits: bool = True, with_drift: bool = True
) -> EnvironmentState:
    serving = deployer.serving(environment)
    last = (
        Deployment.objects.filter(environment=environment)
        .exclude(status__in=[*logic.WAITING, DeploymentStatus.OUTDATED, DeploymentStatus.CANCELED])
        .order_by("-id")
        .first()
    )
    waiting = list(
        Deployment.objects.filter(environment=environment, status__in=logic.WAITING)
        .select_related("run", "requested_by")
        .order_by("id")
    )
    state = EnvironmentState(
        environment=environment,
        serving=serving,
        current_release=current_release(environment),
        waiting=waiting,
        last=last,
        drift=drift(environment) if with_drift else None,  # reads every file of the release
        approved_by=approvers_of(serving) if serving else [],
    )
    following = _next_environment(environment)
    if following is not None:
        state.next_environment = following.name
        there = deployer.serving(following)
        if (
            with_commits
            and serving is not None
            and serving.sha
            and (there is None or there.sha != serving.sha)
        ):
            state.not_yet_in_next = pipelines.commits_between(
                environment.service.slug, there.sha if there else "", serving.sha
            )
    return state


def overview(slug: str) -> list[EnvironmentState]:
    """Every environment of the service, in promotion order."""
    return [environment_state(environment) for environment in list_environments(slug)]
