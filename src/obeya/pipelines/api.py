"""Pipelines API: runs, jobs and their logs, the andon cord, runners and secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse
from ninja import Field, Router, Schema, Status
from ninja.pagination import LimitOffsetPagination, paginate

from obeya.catalog import services as catalog
from obeya.core.actors import Actor, actor_for_request
from obeya.core.errors import PermissionDenied
from obeya.core.paging import Mapped
from obeya.pipelines import andon, artifacts, leases, reports, runners, runs, secrets_store
from obeya.pipelines.models import Job, Pipeline, Run, Runner

router = Router(tags=["pipelines"])


class RunOut(Schema):
    number: int
    service: str
    status: str
    trigger: str
    triggered_by: str | None
    ref: str
    branch: str
    sha: str
    author_name: str
    author_email: str
    authored_at: datetime | None
    committed_at: datetime | None
    message: str
    errors: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None


class JobOut(Schema):
    id: int
    run: int
    name: str
    stage: str
    needs: list[str]
    status: str
    when: str
    attempt: int
    retry_max: int
    exit_code: int | None
    failure_reason: str
    runner: str | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None  # while running: when the runner must next be heard


class RunDetail(RunOut):
    jobs: list[JobOut]


class AttemptOut(Schema):
    number: int
    runner: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    exit_code: int | None
    reason: str
    log_size: int


class JobDetail(JobOut):
    script: list[str]
    attempts: list[AttemptOut]


class RunIn(Schema):
    ref: str | None = None


class AndonOut(Schema):
    pulled: bool
    reason: str
    pulled_by: str
    pulled_at: datetime | None
    run: int | None


class AndonIn(Schema):
    action: str
    reason: str


class RunnerOut(Schema):
    id: int
    name: str
    labels: list[str]
    embedded: bool
    paused: bool
    online: bool
    sandbox: str  # bwrap, off (jobs run unconfined), unavailable, or empty: not said yet
    last_seen_at: datetime | None
    current_jobs: list[int]


class RunnerIn(Schema):
    name: str
    labels: list[str] = []


class RunnerCreated(RunnerOut):
    token: str


class SecretOut(Schema):
    name: str
    environment: str = Field(description='The environment it is scoped to ("" = every job).')
    protected: bool = Field(description="Only runs of protected refs receive it.")
    updated_at: datetime


class SecretIn(Schema):
    value: str
    protected: bool = Field(False, description="Only runs of protected refs receive it.")
    environment: str = Field(
        "", description='Only jobs naming this environment receive it ("" = every job).'
    )


class PipelineIn(Schema):
    default_branch: str | None = None
    poll_interval_s: int | None = None
    protected_branches: list[str] | None = Field(
        None, description="Glob patterns of branches whose runs receive protected secrets."
    )
    protected_tags: list[str] | None = Field(
        None, description="Glob patterns of tags whose runs receive protected secrets."
    )


def run_body(run: Run) -> dict[str, Any]:
    started, finished = run.started_at or run.created_at, run.finished_at
    return {
        "number": run.number,
        "service": run.service.slug,
        "status": run.status,
        "trigger": run.trigger,
        "triggered_by": run.triggered_by.username if run.triggered_by else None,
        "ref": run.ref,
        "branch": run.branch,
        "sha": run.sha,
        "author_name": run.author_name,
        "author_email": run.author_email,
        "authored_at": run.authored_at,
        "committed_at": run.committed_at,
        "message": run.message,
        "errors": run.errors,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": finished,
        "duration_s": round((finished - started).total_seconds(), 3) if finished else None,
    }


def job_body(job: Job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "run": job.run.number,
        "name": job.name,
        "stage": job.stage,
        "needs": job.needs,
        "status": job.status,
        "when": job.spec.get("when", "on_success"),
        "attempt": job.attempt,
        "retry_max": job.retry_max,
        "exit_code": job.exit_code,
        "failure_reason": job.failure_reason,
        "runner": job.runner.name if job.runner else None,
        "queued_at": job.queued_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "lease_expires_at": job.lease_expires_at,
    }


def run_detail(run: Run) -> dict[str, Any]:
    return {**run_body(run), "jobs": [job_body(job) for job in runs.jobs_of(run)]}


@router.get("/services/{slug}/runs", response=list[RunOut], summary="A service's runs")
@paginate(LimitOffsetPagination)
def list_runs(request: HttpRequest, slug: str, branch: str = "") -> Any:
    return Mapped(runs.list_runs(slug, branch).select_related("triggered_by"), run_body)


@router.post(
    "/services/{slug}/runs",
    response={201: RunDetail},
    summary="Start a run of a branch, tag or commit",
)
def create_run(request: HttpRequest, slug: str, payload: RunIn) -> Status[Any]:
    run = runs.create_run(actor_for_request(request, "api"), slug, payload.ref)
    return Status(201, run_detail(run))


@router.get("/services/{slug}/runs/{number}", response=RunDetail, summary="One run and its jobs")
def get_run(request: HttpRequest, slug: str, number: int) -> dict[str, Any]:
    return run_detail(runs.get_run(slug, number))


@router.post("/services/{slug}/runs/{number}/cancel", response=RunDetail, summary="Cancel a run")
def cancel_run(request: HttpRequest, slug: str, number: int) -> dict[str, Any]:
    run = runs.cancel_run(actor_for_request(request, "api"), slug, number)
    return run_detail(runs.get_run(slug, run.number))


@router.get("/jobs/{job_id}", response=JobDetail, summary="One job with its attempts")
def get_job(request: HttpRequest, job_id: int) -> dict[str, Any]:
    job = runs.get_job(job_id)
    attempts = [
        {
            "number": a.number,
            "runner": a.runner.name if a.runner else None,
            "started_at": a.started_at,
            "finished_at": a.finished_at,
            "outcome": a.outcome,
            "exit_code": a.exit_code,
            "reason": a.reason,
            "log_size": a.log_size,
        }
        for a in job.attempts.select_related("runner")
    ]
    return {**job_body(job), "script": job.spec.get("script", []), "attempts": attempts}


@router.get("/jobs/{job_id}/log", summary="A job's log as text (latest attempt by default)")
def job_log(
    request: HttpRequest, job_id: int, attempt: int | None = None, offset: int = 0
) -> HttpResponse:
    job = runs.get_job(job_id)
    data = leases.log_bytes(job, attempt, max(0, offset))
    response = HttpResponse(data, content_type="text/plain; charset=utf-8")
    response["X-Obeya-Job-Status"] = job.status
    response["X-Obeya-Attempt"] = str(attempt or job.attempt)
    response["X-Obeya-Next-Offset"] = str(max(0, offset) + len(data))
    return response


@router.post("/jobs/{job_id}/retry", response=JobOut, summary="Retry a failed or canceled job")
def retry_job(request: HttpRequest, job_id: int) -> dict[str, Any]:
    return job_body(runs.retry_job(actor_for_request(request, "api"), job_id))


@router.post("/jobs/{job_id}/play", response=JobOut, summary="Start a manual job")
def play_job(request: HttpRequest, job_id: int) -> dict[str, Any]:
    return job_body(runs.play_job(actor_for_request(request, "api"), job_id))


def _andon_body(slug: str) -> dict[str, Any]:
    from obeya.catalog import services as catalog

    state = andon.state(catalog.get_service(slug))
    return {
        "pulled": state.pulled,
        "reason": state.reason,
        "pulled_by": state.pulled_by,
        "pulled_at": state.pulled_at,
        "run": state.run.number if state.run else None,
    }


@router.get("/services/{slug}/andon", response=AndonOut, summary="The service's andon cord")
def get_andon(request: HttpRequest, slug: str) -> dict[str, Any]:
    return _andon_body(slug)


@router.post(
    "/services/{slug}/andon",
    response=AndonOut,
    summary="Pull the cord, or reset it (action: pull | reset)",
)
def change_andon(request: HttpRequest, slug: str, payload: AndonIn) -> dict[str, Any]:
    actor = actor_for_request(request, "api")
    if payload.action == "pull":
        andon.pull_andon(actor, slug, payload.reason)
    elif payload.action == "reset":
        andon.reset_andon(actor, slug, payload.reason)
    else:
        from obeya.core.errors import InvalidInput

        raise InvalidInput(f"unknown action {payload.action!r}: use pull or reset", field="action")
    return _andon_body(slug)


def _pipeline_body(pipeline: Pipeline) -> dict[str, Any]:
    return {
        "default_branch": pipeline.default_branch,
        "poll_interval_s": pipeline.poll_interval_s,
        "protected_branches": pipeline.protected_branches,
        "protected_tags": pipeline.protected_tags,
    }


@router.get(
    "/services/{slug}/pipeline",
    response=dict[str, Any],
    summary="Pipeline settings: default branch, polling, protected refs",
)
def get_pipeline(request: HttpRequest, slug: str) -> dict[str, Any]:
    return _pipeline_body(runs.pipeline_of(catalog.get_service(slug)))


@router.put(
    "/services/{slug}/pipeline",
    response=dict[str, Any],
    summary="Pipeline settings: default branch, polling, protected refs",
)
def set_pipeline(request: HttpRequest, slug: str, payload: PipelineIn) -> dict[str, Any]:
    pipeline = runs.set_pipeline(
        actor_for_request(request, "api"),
        slug,
        default_branch=payload.default_branch,
        poll_interval_s=payload.poll_interval_s,
        protected_branches=payload.protected_branches,
        protected_tags=payload.protected_tags,
    )
    return _pipeline_body(pipeline)


def runner_body(runner: Runner) -> dict[str, Any]:
    return {
        "id": runner.pk,
        "name": runner.name,
        "labels": runner.labels,
        "embedded": runner.embedded,
        "paused": runner.paused,
        "online": runners.is_online(runner),
        "sandbox": runner.sandbox,
        "last_seen_at": runner.last_seen_at,
        "current_jobs": list(
            Job.objects.filter(runner=runner, status="running").values_list("pk", flat=True)
        ),
    }


@router.get("/runners", response=list[RunnerOut], summary="Registered runners")
def list_runners(request: HttpRequest) -> list[dict[str, Any]]:
    return [runner_body(runner) for runner in Runner.objects.all()]


@router.post(
    "/runners",
    response={201: RunnerCreated},
    summary="Register a runner (administrators); its token is shown once",
)
def register_runner(request: HttpRequest, payload: RunnerIn) -> Status[Any]:
    actor = _admin_actor(request, "registering a runner")
    runner, token = runners.register_runner(actor, payload.name, payload.labels)
    return Status(201, {**runner_body(runner), "token": token})


@router.post(
    "/runners/{runner_id}/pause",
    response=RunnerOut,
    summary="Pause a runner (administrators): it finishes its jobs, then takes no new one",
)
def pause_runner(request: HttpRequest, runner_id: int) -> dict[str, Any]:
    actor = _admin_actor(request, "pausing a runner")
    return runner_body(runners.set_paused(actor, runner_id, True))


@router.post(
    "/runners/{runner_id}/resume",
    response=RunnerOut,
    summary="Resume a paused runner (administrators)",
)
def resume_runner(request: HttpRequest, runner_id: int) -> dict[str, Any]:
    actor = _admin_actor(request, "resuming a runner")
    return runner_body(runners.set_paused(actor, runner_id, False))


def _admin_actor(request: HttpRequest, doing: str) -> Actor:
    actor = actor_for_request(request, "api")
    if actor.token is not None and actor.token.scope != "admin":
        raise PermissionDenied(f"{doing} needs an admin-scope token")
    return actor


@router.get(
    "/services/{slug}/secrets",
    response=list[SecretOut],
    summary="Secret names (values are write-only)",
)
def list_secrets(request: HttpRequest, slug: str) -> list[dict[str, Any]]:
    return secrets_store.secret_names(slug)


@router.put("/services/{slug}/secrets/{name}", response={204: None}, summary="Set a secret")
def set_secret(request: HttpRequest, slug: str, name: str, payload: SecretIn) -> Status[None]:
    secrets_store.set_secret(
        actor_for_request(request, "api"),
        slug,
        name,
        payload.value,
        protected=payload.protected,
        environment=payload.environment,
    )
    return Status(204, None)


@router.delete(
    "/services/{slug}/secrets/{name}",
    response={204: None},
    summary="Delete a secret (?environment= names the scope of an environment's secret)",
)
def delete_secret(
    request: HttpRequest, slug: str, name: str, environment: str = ""
) -> Status[None]:
    secrets_store.delete_secret(actor_for_request(request, "api"), slug, name, environment)
    return Status(204, None)


class ArtifactInfo(Schema):
    name: str
    attempt: int
    sha256: str
    size: int
    paths: list[str]
    created_at: datetime
    expires_at: datetime


class TestCaseOut(Schema):
    suite: str
    classname: str
    name: str
    status: str
    duration_s: float
    message: str
    file: str
    job: str


class TestReportOut(Schema):
    total: int
    passed: int
    failed: int
    skipped: int
    cases: list[TestCaseOut]


@router.get("/jobs/{job_id}/artifacts", response=list[ArtifactInfo], summary="A job's artifacts")
def list_artifacts(request: HttpRequest, job_id: int) -> list[dict[str, Any]]:
    job = runs.get_job(job_id)
    return [
        {
            "name": a.name,
            "attempt": a.attempt,
            "sha256": a.sha256,
            "size": a.size,
            "paths": a.paths,
            "created_at": a.created_at,
            "expires_at": a.expires_at,
        }
        for a in artifacts.artifacts_of(job)
    ]


@router.get("/jobs/{job_id}/artifacts/{name}", summary="Download an artifact (tar.gz)")
def download_artifact(request: HttpRequest, job_id: int, name: str) -> FileResponse:
    job = runs.get_job(job_id)
    found = artifacts.get_artifact(job, name)
    filename = f"{job.run.service.slug}-{job.run.number}-{job.name}-{found.name}.tar.gz"
    response = FileResponse(
        artifacts.blob_path(found.sha256).open("rb"),
        as_attachment=True,
        filename=filename,
        content_type="application/gzip",
    )
    response["X-Obeya-Sha256"] = found.sha256
    return response


def _case_body(case: Any) -> dict[str, Any]:
    return {
        "suite": case.suite,
        "classname": case.classname,
        "name": case.name,
        "status": case.status,
        "duration_s": case.duration_s,
        "message": case.message,
        "file": case.file,
        "job": case.job.name,
    }


@router.get(
    "/services/{slug}/runs/{number}/tests",
    response=TestReportOut,
    summary="Test cases of a run (each job's latest attempt)",
)
def run_tests(request: HttpRequest, slug: str, number: int, status: str = "") -> dict[str, Any]:
    run = runs.get_run(slug, number)
    cases = reports.cases_of_run(run)
    if status:
        # "failed" means every case that did not pass: failures and errors alike.
        cases = cases.filter(status__in=["failed", "error"] if status == "failed" else [status])
    return {**reports.summary(run), "cases": [_case_body(c) for c in cases[:5000]]}
