"""Pipeline pages: a service's runs, one run's job graph, a job's live log, the runners."""

from __future__ import annotations

import asyncio
import codecs
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from obeya.catalog import services as catalog
from obeya.core.actors import actor_for_request
from obeya.core.errors import InvalidInput, ObeyaError
from obeya.core.roles import Permission
from obeya.pipelines import andon, artifacts, leases, reports, runners, runs
from obeya.pipelines.models import Job, Runner

RUNS_PAGE = 30
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _not_found(request: HttpRequest, error: ObeyaError) -> HttpResponse:
    return render(request, "catalog/not_found.html", {"message": error.message}, status=404)


@login_required
def run_list(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        service = catalog.get_service(slug)
    except ObeyaError as error:
        return _not_found(request, error)
    status = 200
    ref = request.POST.get("ref", "").strip() if request.method == "POST" else ""
    if request.method == "POST":
        try:
            run = runs.create_run(actor_for_request(request), slug, ref or None)
        except ObeyaError as error:
            messages.error(request, error.message)
            status = error.status
        else:
            return redirect(f"/services/{slug}/runs/{run.number}/")
    found = runs.list_runs(slug).select_related("triggered_by")
    page = Paginator(found, RUNS_PAGE).get_page(request.GET.get("page"))
    actor = actor_for_request(request)
    return render(
        request,
        "pipelines/run_list.html",
        {
            "service": service,
            "page": page,
            "ref": ref,
            "default_branch": runs.pipeline_of(service).default_branch,
            "can_run": catalog.can(actor, service, Permission.RUN_PIPELINE),
            "can_reset": catalog.can(actor, service, Permission.RESET_ANDON),
            "andon_state": andon.state(service),
        },
        status=status,
    )


def _stages(jobs: list[Job]) -> list[dict[str, Any]]:
    stages: dict[str, list[Job]] = {}
    for job in sorted(jobs, key=lambda j: (j.stage_index, j.position)):
        stages.setdefault(job.stage, []).append(job)
    return [{"name": name, "jobs": members} for name, members in stages.items()]


@login_required
def run_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    try:
        run = runs.get_run(slug, number)
    except ObeyaError as error:
        return _not_found(request, error)
    jobs = list(runs.jobs_of(run))
    actor = actor_for_request(request)
    return render(
        request,
        "pipelines/run_detail.html",
        {
            "service": run.service,
            "run": run,
            "stages": _stages(jobs),
            "tests": reports.summary(run),
            "failed_tests": list(
                reports.cases_of_run(run).filter(status__in=["failed", "error"])[:50]
            ),
            "live": run.status in {"created", "running"},
            "can_run": catalog.can(actor, run.service, Permission.RUN_PIPELINE),
        },
    )


def _act(request: HttpRequest, action: Any, success: str, back: str) -> HttpResponse:
    try:
        action()
    except ObeyaError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return redirect(back)


@login_required
@require_POST
def run_cancel(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    return _act(
        request,
        lambda: runs.cancel_run(actor_for_request(request), slug, number),
        f"Run #{number} canceled.",
        f"/services/{slug}/runs/{number}/",
    )


@login_required
@require_POST
def job_retry(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    return _act(
        request,
        lambda: runs.retry_job(actor_for_request(request), job_id),
        "Job queued again.",
        f"/services/{slug}/jobs/{job_id}/",
    )


@login_required
@require_POST
def job_play(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    return _act(
        request,
        lambda: runs.play_job(actor_for_request(request), job_id),
        "Manual job started.",
        f"/services/{slug}/jobs/{job_id}/",
    )


@login_required
@require_POST
def andon_change(request: HttpRequest, slug: str) -> HttpResponse:
    reason = request.POST.get("reason", "")
    actor = actor_for_request(request)
    if request.POST.get("action") == "reset":
        return _act(
            request,
            lambda: andon.reset_andon(actor, slug, reason),
            "The andon cord is reset: the line runs again.",
            f"/services/{slug}/runs/",
        )
    return _act(
        request,
        lambda: andon.pull_andon(actor, slug, reason),
        "The andon cord is pulled: the line is stopped.",
        f"/services/{slug}/runs/",
    )


def log_lines(data: bytes) -> list[str]:
    text = _ANSI.sub("", data.decode("utf-8", "replace"))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@login_required
def job_detail(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    try:
        job = runs.get_job(job_id)
    except ObeyaError as error:
        return _not_found(request, error)
    if job.run.service.slug != slug:
        return redirect(f"/services/{job.run.service.slug}/jobs/{job_id}/")
    requested = request.GET.get("attempt", "")
    # An attempt that is not a number, or one past any job's, shows the latest attempt.
    attempt = (int(requested) if requested.isdigit() and len(requested) < 10 else 0) or (
        job.attempt or 0
    )
    data = leases.log_bytes(job, attempt) if attempt else b""
    actor = actor_for_request(request)
    return render(
        request,
        "pipelines/job_detail.html",
        {
            "service": job.run.service,
            "run": job.run,
            "job": job,
            "attempts": list(job.attempts.select_related("runner")),
            "attempt": attempt,
            "lines": log_lines(data),
            "offset": len(data),
            "open_line": bool(data) and not data.endswith(b"\n"),
            "live": job.status in STREAMED and attempt == job.attempt,
            "artifacts": list(artifacts.artifacts_of(job)),
            "cases": list(reports.cases_of(job, attempt)[:2000]) if attempt else [],
            "can_run": catalog.can(actor, job.run.service, Permission.RUN_PIPELINE),
        },
    )


def _read_log(job_id: int, attempt: int, offset: int) -> tuple[bytes, str, int]:
    job = Job.objects.get(pk=job_id)
    data = leases.log_bytes(job, attempt, offset) if attempt else b""
    return data, job.status, job.attempt


STREAMED = {"created", "queued", "running"}


@login_required
async def job_log_events(
    request: HttpRequest, slug: str, job_id: int
) -> HttpResponse | StreamingHttpResponse:
    """Server-sent events: new log text of one attempt as it arrives, then `end`.

    Each event's id is the byte offset reached, so a browser that reconnects resumes
    where it was (Last-Event-ID) instead of replaying. A retry that starts a new attempt
    ends the stream with status "retried" so the page reloads on the new attempt.
    """
    try:
        job = await sync_to_async(runs.get_job)(job_id)
    except ObeyaError as error:
        return HttpResponse(error.message, status=404, content_type="text/plain")
    if job.run.service.slug != slug:
        return HttpResponse("no such job in this service", status=404, content_type="text/plain")
    resume = request.headers.get("Last-Event-ID") or request.GET.get("offset") or "0"
    start = int(resume) if resume.isdigit() else 0
    requested = request.GET.get("attempt") or "0"
    # A job still waiting for a runner has attempt 0: follow the attempt it is about to get.
    attempt = (int(requested) if requested.isdigit() else 0) or job.attempt or 1

    async def events() -> AsyncIterator[str]:
        offset, idle = start, 0.0
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            data, status, current = await sync_to_async(_read_log)(job_id, attempt, offset)
            if data:
                offset += len(data)
                text = _ANSI.sub("", decoder.decode(data))
                payload = json.dumps({"offset": offset, "text": text})
                yield f"id: {offset}\nevent: log\ndata: {payload}\n\n"
                idle = 0.0
            elif current > attempt:
                yield f"event: end\ndata: {json.dumps({'status': 'retried'})}\n\n"
                return
            elif status not in STREAMED:
                yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
                return
            elif idle >= 15:
                yield ": keep-alive\n\n"
                idle = 0.0
            await asyncio.sleep(0.25)
            idle += 0.25

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@login_required
def runner_list(request: HttpRequest) -> HttpResponse:
    """The runners; administrators register (the token is shown once), pause and resume."""
    actor = actor_for_request(request)
    status, token, registered, form = 200, "", None, {"name": "", "labels": ""}
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "register":
                form = {key: request.POST.get(key, "").strip() for key in form}
                registered, token = runners.register_runner(
                    actor, form["name"], form["labels"].split(",")
                )
                form = {"name": "", "labels": ""}
            elif action in {"pause", "resume"}:
                runner = runners.set_paused(actor, _runner_id(request), action == "pause")
                messages.success(request, f"Runner {runner.name} {action}d.")
                return redirect("/runners/")
            else:
                raise InvalidInput(f"unknown action {action!r}: register, pause or resume")
        except ObeyaError as error:
            messages.error(request, error.message)
            status = error.status
    found = list(Runner.objects.all())
    busy = {
        runner_id: job
        for job in Job.objects.filter(status="running").select_related("run__service")
        for runner_id in [job.runner_id]
    }
    rows = [{"runner": r, "online": runners.is_online(r), "job": busy.get(r.pk)} for r in found]
    response = render(
        request,
        "pipelines/runner_list.html",
        {
            "rows": rows,
            "can_manage": actor.is_admin,
            "form": form,
            "registered": registered,
            "token": token,
            "server_url": request.build_absolute_uri("/").rstrip("/"),
        },
        status=status,
    )
    if token:
        response["Cache-Control"] = "no-store"  # the token is shown once, never cached
    return response


def _runner_id(request: HttpRequest) -> int:
    raw = request.POST.get("runner", "")
    if not raw.isdigit():
        raise InvalidInput("which runner? (the form lost its runner id: reload the page)")
    return int(raw)
