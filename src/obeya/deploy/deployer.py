"""The deployer: takes an environment's lease, carries out its next deployment step by step,
rolls back when the release is unhealthy, and resolves deployments whose deployer died.

One deployment per environment at a time, across processes and machines: the lease is a
row update on the environment (``lease_token``, ``lease_expires_at``), never a mutex, and
it is renewed by a heartbeat while the deployment runs (RELIABILITY B3). Every step is
logged in the deployment's log and every change of status is an event.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections, transaction

from obeya.core import events
from obeya.core.actors import Actor, system_actor
from obeya.deploy import health, logic, reach
from obeya.deploy.models import Deployment, DeploymentLog, DeploymentStatus, Environment, Release
from obeya.deploy.targets import Host, LocalHost, TargetError
from obeya.pipelines import services as pipelines
from obeya.runner import sandbox
from obeya.runner.keeper import Keepers

log = logging.getLogger("obeya.deploy")
IDLE_WAIT_S = 0.5
JOB_REASON_LIMIT = 200  # a pipeline job's failure_reason column
_wakeup = threading.Event()
JOB_STATUS = {
    DeploymentStatus.QUEUED: "queued",
    DeploymentStatus.RUNNING: "running",
    DeploymentStatus.SUCCEEDED: "succeeded",
    DeploymentStatus.FAILED: "failed",
    DeploymentStatus.ROLLED_BACK: "failed",
    DeploymentStatus.OUTDATED: "canceled",
    DeploymentStatus.CANCELED: "canceled",
    DeploymentStatus.REJECTED: "canceled",
}


class LeaseLost(Exception):
    """Another deployer holds the environment now: stop without writing anything."""


def wake() -> None:
    """Call inside the transaction that queued a deployment; deployers here look at once."""
    transaction.on_commit(_wakeup.set)


def lease_seconds() -> int:
    return int(settings.OBEYA_LEASE_SECONDS)


def keepers() -> Keepers:
    """The sandboxes local targets' hooks run in, recorded in the data directory."""
    return Keepers(sandbox.configured(), Path(settings.DATA_DIR) / "keepers")


def hosts_for(environment: Environment) -> list[Host]:
    target = environment.target or {}
    if target.get("kind") == "ssh":
        from obeya.deploy import ssh  # asyncssh is only loaded for SSH targets

        return ssh.hosts_for(target)
    if target.get("kind") == "local":
        return [LocalHost(str(target["root"]), keepers())]
    raise TargetError(f"environment {environment.name} has no target: configure one")


# ---- the lease ---------------------------------------------------------------------------


@dataclass
class Lease:
    environment_id: int
    deployment_id: int
    token: str
    lost: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Raise LeaseLost unless this deployer still holds the environment.

        Read from the database, not only from the heartbeat: a deployer that was stalled
        past its lease must not start another step beside the one that took over.
        """
        if not self.lost.is_set() and not (
            Environment.objects.filter(
                pk=self.environment_id,
                lease_token=self.token,
                lease_deployment=self.deployment_id,
            ).exists()
        ):
            self.lost.set()
        if self.lost.is_set():
            raise LeaseLost(f"lease on environment {self.environment_id} was lost")


def _heartbeat(lease: Lease, stop: threading.Event, clock: Actor) -> None:
    every = max(lease_seconds() / 3, 0.2)
    try:
        while not stop.wait(every):
            try:
                renewed = Environment.objects.filter(
                    pk=lease.environment_id, lease_token=lease.token
                ).update(lease_expires_at=clock.now() + timedelta(seconds=lease_seconds()))
                if not renewed:
                    lease.lost.set()
                    return
            except Exception:  # a failed renewal is retried; the lease has slack
                log.exception("deploy lease heartbeat failed")
            finally:
                close_old_connections()
    finally:
        # One thread per deployment: its connection would otherwise outlive it (PostgreSQL
        # keeps connections up to CONN_MAX_AGE, and nobody else can close this one).
        connections.close_all()


@contextlib.contextmanager
def _heartbeat_running(lease: Lease, clock: Actor) -> Iterator[None]:
    """Renew ``lease`` in the background while the block runs (a deployment or a recovery:
    both run hooks and health checks that can outlast the lease)."""
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(lease, stop, clock), name="deploy-lease", daemon=True
    )
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(timeout=5)


def _release_lease(lease: Lease) -> None:
    Environment.objects.filter(pk=lease.environment_id, lease_token=lease.token).update(
        lease_deployment=None, lease_token="", lease_expires_at=None
    )
    _wakeup.set()


# ---- status changes ----------------------------------------------------------------------


def note(deployment_id: int, step: str, line: str, clock: Actor | None = None) -> None:
    """Append a line to the deployment's log (outside any transaction: logs are kept)."""
    DeploymentLog.objects.create(
        deployment_id=deployment_id,
        at=(clock or system_actor()).now(),
        step=step,
        line=line[:10_000],
    )


def event_data(deployment: Deployment, **extra: Any) -> dict[str, Any]:
    environment = deployment.environment
    data: dict[str, Any] = {
        "deployment": deployment.pk,
        "environment": environment.name,
        "tier": environment.tier,
        "kind": deployment.kind,
        "status": deployment.status,
        "sha": deployment.sha,
        "run": deployment.run.number if deployment.run_id and deployment.run else None,
        "version": deployment.version,
        "artifact_sha256": deployment.artifact_sha256,
        "release": deployment.release_id,
        "previous_release": deployment.previous_release_id,
        "switched": deployment.switched_at is not None,
    }
    data.update(extra)
    return data


def settle(
    actor: Actor,
    deployment: Deployment,
    status: str,
    reason: str = "",
    *,
    kind: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Give ``deployment`` its new status, record the event and tell its pipeline job.

    Call inside a transaction.
    """
    deployment.status = status
    if reason:
        deployment.reason = reason
    if status in logic.TERMINAL:
        deployment.finished_at = actor.now()
        deployment.step = ""
    deployment.save()
    events.record(
        actor,
        kind or f"deployment.{status}",
        f"deployment:{deployment.pk}",
        event_data(deployment, reason=deployment.reason, **dict(extra or {})),
        service=deployment.service.slug,
    )
    if deployment.job_id and status in JOB_STATUS:
        pipelines.settle_deploy_job(
            actor,
            deployment.job_id,
            JOB_STATUS[DeploymentStatus(status)],
            _shortened(deployment.reason, JOB_REASON_LIMIT),
        )


def _shortened(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked when cut (the full reason stays on the
    deployment)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- choosing and claiming ---------------------------------------------------------------


def _candidate(deployment: Deployment) -> logic.Candidate:
    return logic.Candidate(
        id=deployment.pk,
        kind=deployment.kind,
        committed_at=deployment.committed_at,
        run_number=deployment.run.number if deployment.run else 0,
        sha=deployment.sha,
    )


def serving(environment: Environment) -> Deployment | None:
    """The last deployment that ended with its release current (what runs there now)."""
    return (
        Deployment.objects.filter(environment=environment, status=DeploymentStatus.SUCCEEDED)
        .select_related("run")
        .order_by("-finished_at", "-id")
        .first()
    )


def claim_next(actor: Actor) -> Lease | None:
    """Take the lease of an environment with deployments waiting; start its newest one."""
    waiting = (
        Deployment.objects.filter(status=DeploymentStatus.QUEUED)
        .order_by("requested_at", "id")
        .values_list("environment_id", flat=True)
    )
    seen: set[int] = set()
    for environment_id in waiting[:200]:
        if environment_id in seen:
            continue
        seen.add(environment_id)
        lease = _claim(actor, environment_id)
        if lease is not None:
            return lease
    return None


def _claim(actor: Actor, environment_id: int) -> Lease | None:
    now = actor.now()
    with transaction.atomic():
        # FOR NO KEY UPDATE: new deployments of this environment (their foreign key takes a
        # key-share lock on it) are not held up, so a runner finishing a package job, which
        # locks its service first, never waits on us while we wait on its service.
        environment = Environment.objects.select_for_update(no_key=True).get(pk=environment_id)
        if (
            environment.lease_token
            and environment.lease_expires_at
            and (environment.lease_expires_at > now)
        ):
            return None  # busy: its holder will look again when it is done
        if environment.lease_token:
            return None  # expired: recover_lost() resolves the holder first
        queued = list(
            # of=self: PostgreSQL cannot lock the nullable side of the outer join to run
            Deployment.objects.select_for_update(of=("self",))
            .filter(environment=environment, status=DeploymentStatus.QUEUED)
            .select_related("run", "service", "environment")
        )
        current = serving(environment)
        winner, outdated = logic.choose_next(
            [_candidate(d) for d in queued], _candidate(current) if current else None
        )
        by_id = {d.pk: d for d in queued}
        for candidate in outdated:
            stale = by_id[candidate.id]
            newer = by_id[winner.id] if winner else current
            what = f"run #{newer.run.number}" if newer and newer.run else "a newer commit"
            settle(
                actor,
                stale,
                DeploymentStatus.OUTDATED,
                f"outdated: {what} ({(newer.sha if newer else '')[:12]}) is newer; "
                f"an older commit never replaces it in {environment.name}",
            )
        if winner is None:
            return None
        deployment = by_id[winner.id]
        held = _held_by_andon(environment, deployment)
        if held:
            if deployment.reason != held:
                Deployment.objects.filter(pk=deployment.pk).update(reason=held)
            return None  # the line is stopped: it waits, queued, until the andon is reset
        token = secrets.token_urlsafe(24)
        environment.lease_deployment = deployment.pk
        environment.lease_token = token
        environment.lease_expires_at = now + timedelta(seconds=lease_seconds())
        environment.save(update_fields=["lease_deployment", "lease_token", "lease_expires_at"])
        deployment.started_at = now
        deployment.step = "claimed"
        deployment.reason = ""
        if deployment.kind == "deploy":
            deployment.release_id = logic.release_name(now, deployment.pk)
        settle(actor, deployment, DeploymentStatus.RUNNING, kind="deployment.started")
    return Lease(environment_id, deployment.pk, token)


def _held_by_andon(environment: Environment, deployment: Deployment) -> str:
    """Why a deploy to a protected environment may not start now: the andon was pulled
    after its approval ("" when it may). Rollbacks are repairs: the andon never holds them."""
    slug = deployment.service.slug
    if deployment.kind != "deploy" or not environment.protected:
        return ""
    if not pipelines.andon_is_pulled(slug):
        return ""
    return (
        f"waiting: the andon of {slug} is pulled ({pipelines.andon_reason(slug)}); it starts "
        f"once the default branch is green again or the andon is reset"
    )


# ---- carrying a deployment out -----------------------------------------------------------


class StepFailed(Exception):
    """A step failed; the message is the deployment's reason."""


@dataclass
class Work:
    """One deployment being carried out by this deployer."""

    actor: Actor
    lease: Lease
    deployment: Deployment
    environment: Environment
    hosts: list[Host]

    def note(self, step: str, line: str) -> None:
        note(self.deployment.pk, step, line, self.actor)

    def step(self, name: str) -> None:
        self.lease.check()
        Deployment.objects.filter(pk=self.deployment.pk).update(step=name)
        self.deployment.step = name
        self.note(name, f"— {name.replace('_', ' ')}")

    def env(self, host: Host, release_id: str) -> dict[str, str]:
        deployment = self.deployment
        values = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
        values.update(
            {
                "OBEYA_SERVICE": deployment.service.slug,
                "OBEYA_ENVIRONMENT": self.environment.name,
                "OBEYA_TIER": self.environment.tier,
                "OBEYA_DEPLOYMENT": str(deployment.pk),
                "OBEYA_ROOT": host.root,
                "OBEYA_RELEASE_ID": release_id,
                "OBEYA_RELEASE_DIR": host.release_dir(release_id),
                "OBEYA_SHARED_DIR": f"{host.root}/shared",
                "OBEYA_CURRENT_DIR": f"{host.root}/current",
                "OBEYA_PREVIOUS_RELEASE": deployment.previous_release_id,
                "OBEYA_SHA": deployment.sha,
                "OBEYA_VERSION": deployment.version,
                "OBEYA_HOST": host.name,
            }
        )
        return values

    def hook(self, name: str, host: Host, release_id: str, cwd: str) -> None:
        command = (self.environment.hooks or {}).get(name)
        if not command:
            return
        self.note(name, f"{host.name}: $ {command.splitlines()[0][:200]}")
        code = host.run(
            command,
            self.env(host, release_id),
            cwd,
            float(self.environment.hook_timeout_s),
            lambda line: self.note(name, f"{host.name}: {line}"),
        )
        if code != 0:
            raise StepFailed(f"{name} hook failed on {host.name} (exit code {code})")
        self.note(name, f"{host.name}: {name} ok")

    def healthy(
        self, host: Host, release_id: str, *, passes: int | None = None
    ) -> tuple[bool, str]:
        environment = self.environment
        return health.warm_up(
            environment.health or {},
            host,
            self.env(host, release_id),
            window_s=float(environment.warmup_s),
            passes=passes or environment.health_passes,
            interval_ms=environment.health_interval_ms,
            log=lambda line: self.note("health", f"{host.name}: {line}"),
            between_checks=self.lease.check,
            policy=reach.policy_for([environment]),  # its own URLs, as approved (C3)
        )


def execute(lease: Lease, *, clock: Actor | None = None) -> Deployment:
    """Carry out the deployment ``lease`` holds, to its end; the lease is then given back."""
    actor = clock or system_actor()
    deployment = Deployment.objects.select_related("environment", "service", "run").get(
        pk=lease.deployment_id
    )
    with _heartbeat_running(lease, actor):
        _guarded(actor, lease, deployment, _carry_out, "internal error")
    deployment.refresh_from_db()
    return deployment


def _guarded(
    actor: Actor,
    lease: Lease,
    deployment: Deployment,
    action: Callable[[Actor, Lease, Deployment], None],
    what: str,
) -> None:
    """Run ``action``; a lost lease stops it quietly, any other error ends the deployment."""
    try:
        action(actor, lease, deployment)
    except LeaseLost:
        log.warning("deployment %s: lease lost; another deployer resolves it", deployment.pk)
    except Exception as error:  # an unexpected error still ends the deployment, loudly
        log.exception("deployment %s failed unexpectedly", deployment.pk)
        with contextlib.suppress(LeaseLost):
            _end(actor, lease, deployment, DeploymentStatus.FAILED, f"{what}: {error}")


def _carry_out(actor: Actor, lease: Lease, deployment: Deployment) -> None:
    environment = deployment.environment
    try:
        hosts = hosts_for(environment)
    except TargetError as error:
        _end(actor, lease, deployment, DeploymentStatus.FAILED, str(error))
        return
    work = Work(actor, lease, deployment, environment, hosts)
    if deployment.job_id and pipelines.get_job(deployment.job_id).cancel_requested:
        _end(actor, lease, deployment, DeploymentStatus.CANCELED, "canceled before it started")
        return
    try:
        _prepare(work)
        release_id = _stage_release(work)
        _before_switch(work, release_id)
    except (StepFailed, TargetError) as error:
        work.note(work.deployment.step or "prepare", f"FAILED: {error}")
        _end(actor, lease, deployment, DeploymentStatus.FAILED, f"{error}; nothing was switched")
        return
    failure, switched = _switch_in_batches(work, release_id)
    if failure is None:
        failure = _after_switch(work, release_id)
    if failure is not None:
        _roll_back(work, switched, failure)
        return
    _keep_releases(work)
    work.note("done", f"release {release_id} is live on {len(hosts)} host(s)")
    _end(actor, lease, deployment, DeploymentStatus.SUCCEEDED, "")


def _prepare(work: Work) -> None:
    work.step("prepare")
    for host in work.hosts:
        host.prepare()
        host.discard_incoming()
    previous = work.hosts[0].current() or ""
    work.deployment.previous_release_id = previous
    Deployment.objects.filter(pk=work.deployment.pk).update(previous_release_id=previous)
    work.note("prepare", f"current release: {previous or '(none yet)'}")


def _stage_release(work: Work) -> str:
    """Unpack the artifact as a new release on every host (deploy), or find the kept one."""
    deployment = work.deployment
    if deployment.kind == "rollback":
        release_id = deployment.release_id
        missing = [host.name for host in work.hosts if not host.has_release(release_id)]
        if missing:
            raise StepFailed(f"release {release_id} is no longer kept on {', '.join(missing)}")
        work.note("prepare", f"rolling back to kept release {release_id}")
        return release_id
    work.step("unpack")
    try:
        blob = pipelines.artifact_blob(deployment.artifact_sha256)
    except Exception as error:
        raise StepFailed(f"artifact {deployment.artifact_sha256[:12]} is gone: {error}") from None
    version = _version_in(blob) or deployment.version
    if version != deployment.version:
        deployment.version = version
        Deployment.objects.filter(pk=deployment.pk).update(version=version)
    release_id = deployment.release_id
    manifest: dict[str, str] = {}
    for host in work.hosts:
        work.lease.check()
        manifest = host.unpack(release_id, blob)
        work.note("unpack", f"{host.name}: {len(manifest)} file(s) in releases/{release_id}")
    Release.objects.update_or_create(
        environment=work.environment,
        release_id=release_id,
        defaults={
            "deployment": deployment,
            "sha": deployment.sha,
            "version": version,
            "artifact_sha256": deployment.artifact_sha256,
            "manifest": manifest,
            "created_at": work.actor.now(),
        },
    )
    return release_id


def _version_in(blob: Path) -> str:
    """The VERSION file at the top of the artifact, if it has one."""
    try:
        with tarfile.open(blob, "r:*") as tar:
            for name in ("VERSION", "./VERSION"):
                try:
                    member = tar.getmember(name)
                except KeyError:
                    continue
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None and member.size <= 200:
                    return io.TextIOWrapper(handle).read().strip()[:100]
    except (tarfile.TarError, OSError):
        return ""
    return ""


def _before_switch(work: Work, release_id: str) -> None:
    if not (work.environment.hooks or {}).get("before_switch"):
        return
    work.step("before_switch")
    host = work.hosts[0]  # once, like a database migration: not on every host
    try:
        work.hook("before_switch", host, release_id, host.release_dir(release_id))
    except StepFailed:
        if work.deployment.kind == "deploy":
            for each in work.hosts:
                each.archive(release_id)
            Release.objects.filter(environment=work.environment, release_id=release_id).update(
                state="archived"
            )
        raise


def _batches(hosts: list[Host], size: int) -> Iterator[list[Host]]:
    for start in range(0, len(hosts), max(size, 1)):
        yield hosts[start : start + size]


def _switch_in_batches(work: Work, release_id: str) -> tuple[str | None, list[Host]]:
    """Switch, restart and warm up batch by batch; stop at the first unhealthy batch."""
    switched: list[Host] = []
    size = int((work.environment.target or {}).get("batch_size", 1) or 1)
    for number, batch in enumerate(_batches(work.hosts, size), start=1):
        try:
            work.step("switch")
            for host in batch:
                switched.append(host)  # before: a host lost mid-switch is switched back too
                host.switch(release_id)
                work.note("switch", f"{host.name}: current → releases/{release_id}")
            if number == 1:
                with transaction.atomic():
                    work.lease.check()
                    Deployment.objects.filter(pk=work.deployment.pk).update(
                        switched_at=work.actor.now()
                    )
                    events.record(
                        work.actor,
                        "deployment.switched",
                        f"deployment:{work.deployment.pk}",
                        event_data(work.deployment, release=release_id),
                        service=work.deployment.service.slug,
                    )
            work.step("restart")
            for host in batch:
                work.hook("restart", host, release_id, f"{host.root}/current")
            work.step("health")
            for host in batch:
                healthy, verdict = work.healthy(host, release_id)
                work.note("health", f"{host.name}: {verdict}")
                if not healthy:
                    return f"health check failed on {host.name} in batch {number}: {verdict}", (
                        switched
                    )
        except (StepFailed, TargetError) as error:
            return str(error), switched
    return None, switched


def _after_switch(work: Work, release_id: str) -> str | None:
    if not (work.environment.hooks or {}).get("after_switch"):
        return None
    work.step("after_switch")
    host = work.hosts[0]
    try:
        work.hook("after_switch", host, release_id, f"{host.root}/current")
    except (StepFailed, TargetError) as error:
        return str(error)
    return None


def _roll_back(work: Work, switched: list[Host], failure: str) -> None:
    """Switch the hosts that took the bad release back, restart, and check them again."""
    actor, lease, deployment = work.actor, work.lease, work.deployment
    previous = deployment.previous_release_id
    work.note("rollback", f"FAILED: {failure}")
    if not previous or (deployment.kind == "rollback" and previous == deployment.release_id):
        _end(
            actor,
            lease,
            deployment,
            DeploymentStatus.FAILED,
            f"{failure}; there is no previous release to go back to, so "
            f"{deployment.release_id} stays current: fix forward or deploy another build",
            failed_event=True,
        )
        return
    work.step("rollback")
    problems = []
    for host in switched:
        try:
            host.switch(previous)
            work.note("rollback", f"{host.name}: current → releases/{previous}")
            work.hook("restart", host, previous, f"{host.root}/current")
            # the previous release was healthy moments ago: its first passing check shows it
            # serves again, and the environment is given back without a second warm-up
            healthy, verdict = work.healthy(host, previous, passes=1)
            work.note("rollback", f"{host.name}: {verdict}")
            if not healthy:
                problems.append(f"{host.name} is still unhealthy after going back")
        except (StepFailed, TargetError) as error:
            problems.append(str(error))
    after = f" ({'; '.join(problems)})" if problems else ""
    _end(
        actor,
        lease,
        deployment,
        DeploymentStatus.ROLLED_BACK,
        f"{failure}; rolled back to {previous}{after}",
        failed_event=True,
    )


def _keep_releases(work: Work) -> None:
    """Move releases beyond the retention count into archive/ on every host."""
    work.step("retention")
    deployment = work.deployment
    protect = {deployment.release_id, deployment.previous_release_id} - {""}
    for host in work.hosts:
        for release_id in logic.to_archive(host.releases(), work.environment.retention, protect):
            host.archive(release_id)
            work.note("retention", f"{host.name}: releases/{release_id} → archive/")
            Release.objects.filter(environment=work.environment, release_id=release_id).update(
                state="archived"
            )


def _new_commits(deployment: Deployment) -> list[dict[str, str]]:
    """The commits this deployment brings to its environment, each with its commit time:
    change lead time counts every one of them, not only the head (metrics read these)."""
    if deployment.kind != "deploy" or not deployment.sha:
        return []
    before = serving(deployment.environment)
    if before is not None and before.sha == deployment.sha:
        return []
    found = pipelines.commits_between(
        deployment.service.slug, before.sha if before else "", deployment.sha, 200
    )
    if before is None:
        found = found[:1]  # a first deployment: only its own commit, not all of history
    return [{"sha": c.sha, "committed_at": c.committed_at.isoformat()} for c in found]


def _end(
    actor: Actor,
    lease: Lease,
    deployment: Deployment,
    status: str,
    reason: str,
    *,
    failed_event: bool = False,
) -> None:
    """Record the deployment's end and give the environment back, in one transaction."""
    extra = {"commits": _new_commits(deployment)} if status == DeploymentStatus.SUCCEEDED else {}
    with transaction.atomic():
        # The environment's row first, as _claim takes it, then what settle() locks (the
        # job, its run and service): the same order everywhere, so no deadlock between them.
        released = Environment.objects.filter(
            pk=lease.environment_id, lease_token=lease.token, lease_deployment=lease.deployment_id
        ).update(lease_deployment=None, lease_token="", lease_expires_at=None)
        if not released:
            raise LeaseLost(f"deployment {deployment.pk}: lease lost before its end")
        deployment = Deployment.objects.select_related("environment", "service", "run").get(
            pk=deployment.pk
        )
        if failed_event and status == DeploymentStatus.ROLLED_BACK:
            # the failure itself, for the operations capability to open an incident on
            events.record(
                actor,
                "deployment.failed",
                f"deployment:{deployment.pk}",
                event_data(deployment, status="failed", reason=reason, rolled_back=True),
                service=deployment.service.slug,
            )
        settle(actor, deployment, status, reason, extra=extra)
    note(deployment.pk, "end", f"{status}{': ' + reason if reason else ''}", actor)
    _wakeup.set()


# ---- deployers that died -----------------------------------------------------------------


def recover_lost(*, clock: Actor | None = None) -> int:
    """Resolve deployments whose deployer stopped (lease expired): switch back if needed."""
    actor = clock or system_actor()
    now = actor.now()
    expired = Environment.objects.filter(lease_expires_at__lt=now).exclude(lease_token="")
    count = 0
    for environment_id, old_token in list(expired.values_list("pk", "lease_token")[:50]):
        token = secrets.token_urlsafe(24)
        taken = Environment.objects.filter(
            pk=environment_id, lease_token=old_token, lease_expires_at__lt=now
        ).update(lease_token=token, lease_expires_at=now + timedelta(seconds=lease_seconds()))
        if not taken:
            continue  # another deployer is recovering it
        environment = Environment.objects.get(pk=environment_id)
        deployment = (
            Deployment.objects.select_related("environment", "service", "run")
            .filter(pk=environment.lease_deployment or 0)
            .first()
        )
        if deployment is None:
            Environment.objects.filter(pk=environment_id, lease_token=token).update(
                lease_deployment=None, lease_token="", lease_expires_at=None
            )
            continue
        lease = Lease(environment_id, deployment.pk, token)
        with _heartbeat_running(lease, actor):
            _guarded(actor, lease, deployment, _recover, "recovery failed")
        count += 1
    return count


def _recover(actor: Actor, lease: Lease, deployment: Deployment) -> None:
    step = deployment.step or "start"
    lost = f"the deployer stopped during {step.replace('_', ' ')} (its lease expired)"
    note(deployment.pk, "recover", lost, actor)
    if deployment.status != DeploymentStatus.RUNNING:
        _release_lease(lease)
        return
    try:
        hosts = hosts_for(deployment.environment)
        for host in hosts:
            host.discard_incoming()
    except (TargetError, OSError) as error:
        _end(actor, lease, deployment, DeploymentStatus.FAILED, f"{lost}; {error}")
        return
    release = deployment.release_id
    on_release = [host for host in hosts if release and host.current() == release]
    previous = deployment.previous_release_id
    # A deployment that died while switching back has no host on its release any more,
    # but it did switch: its hosts still need the restart on the previous release.
    switched = bool(on_release) or deployment.switched_at is not None
    if not switched:
        if deployment.kind == "deploy" and release:
            for host in hosts:
                host.archive(release)
            Release.objects.filter(
                environment_id=deployment.environment_id, release_id=release
            ).update(state="archived")
        _end(
            actor,
            lease,
            deployment,
            DeploymentStatus.FAILED,
            f"{lost}, before the switch: current is unchanged ({hosts[0].current() or 'none'})",
            failed_event=False,
        )
        return
    work = Work(actor, lease, deployment, deployment.environment, hosts)
    if step == "retention":
        # The release passed its health check and after_switch: only tidying was left.
        _keep_releases(work)
        _end(actor, lease, deployment, DeploymentStatus.SUCCEEDED, "")
        return
    if deployment.kind == "rollback" or not previous:
        _end(
            actor,
            lease,
            deployment,
            DeploymentStatus.FAILED,
            f"{lost}, after the switch: {release} is current and was never checked",
            failed_event=True,
        )
        return
    _roll_back(work, on_release if on_release and step != "rollback" else hosts, lost)


# ---- the loop inside `obeya serve` -------------------------------------------------------


def work_once(*, clock: Actor | None = None) -> Deployment | None:
    """Resolve lost deployments, then carry out the next waiting one, if any."""
    recover_lost(clock=clock)
    lease = claim_next(clock or system_actor())
    if lease is None:
        return None
    return execute(lease, clock=clock)


def _loop(stop: threading.Event) -> None:
    while not stop.is_set():
        did = None
        try:
            close_old_connections()
            did = work_once()
        except Exception:  # the deployer must outlive a failing round
            log.exception("deployer round failed")
        finally:
            close_old_connections()
        if did is None:
            _wakeup.wait(IDLE_WAIT_S)
            _wakeup.clear()


def start(count: int) -> tuple[threading.Event, list[threading.Thread]]:
    """Start ``count`` deployer threads; set the returned event to stop them."""
    stop = threading.Event()
    threads = []
    for number in range(count):
        thread = threading.Thread(
            target=_loop, args=(stop,), name=f"deployer-{number}", daemon=True
        )
        thread.start()
        threads.append(thread)
    return stop, threads
