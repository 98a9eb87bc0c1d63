"""SLOs with error budgets, blameless postmortems, and problems: the learning side of
operations. Each change is one transaction with its event; permissions are checked here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q, QuerySet

from obeya.catalog import services as catalog
from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput, NotFound
from obeya.core.roles import Permission
from obeya.ops import logic
from obeya.ops.models import (
    CheckResult,
    CheckRollup,
    FollowUp,
    Incident,
    Monitor,
    Postmortem,
    Problem,
    Slo,
)
from obeya.ops.services import get_incident, get_monitor, timeline

# ---- SLOs --------------------------------------------------------------------------------


def list_slos(slug: str) -> QuerySet[Slo]:
    return Slo.objects.filter(service=catalog.get_service(slug)).select_related("monitor")


def get_slo(slug: str, name: str) -> Slo:
    try:
        return Slo.objects.select_related("monitor", "service").get(service__slug=slug, name=name)
    except Slo.DoesNotExist:
        raise NotFound(f'"{slug}" has no SLO "{name}"', field="slo") from None


def create_slo(
    actor: Actor,
    slug: str,
    name: str,
    *,
    kind: str,
    objective_percent: float,
    monitor: str,
    window_days: int = 30,
    latency_threshold_ms: float | None = None,
    story: str = "",
) -> Slo:
    """An objective measured by one of the service's monitors."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.CONFIGURE_MONITORING)
    name = (name or "").strip()
    if not logic.NAME.match(name):
        raise InvalidInput(f"SLO name {name!r}: lower-case letters, digits, - and _", field="name")
    fields = {
        "kind": kind,
        "objective_percent": objective_percent,
        "window_days": window_days,
        "latency_threshold_ms": latency_threshold_ms,
    }
    problems = logic.check_slo(fields)
    if problems:
        field, message = problems[0]
        raise InvalidInput(message, field=field)
    watched = get_monitor(slug, monitor)
    try:
        with transaction.atomic():
            slo = Slo.objects.create(
                service=service,
                name=name,
                monitor=watched,
                story=story,
                created_at=actor.now(),
                **fields,
            )
            events.record(
                actor,
                "slo.created",
                f"slo:{slo.pk}",
                {"name": name, "monitor": monitor, "story": story, **fields},
                service=slug,
            )
    except IntegrityError:
        raise Conflict(f'"{slug}" already has an SLO "{name}"', field="name") from None
    return slo


def slos_from_stories(actor: Actor, slug: str, monitor: str) -> list[Slo]:
    """SLOs for the operation stories' availability and latency targets not yet set."""
    from obeya.backlog import services as backlog

    made = []
    existing = set(list_slos(slug).values_list("story", "kind"))
    for story in backlog.slr_sheet(slug):
        details = story.details or {}
        for kind, value, threshold in (
            ("availability", details.get("availability_target"), None),
            (
                "latency",
                99.0 if details.get("latency_target_ms") else None,
                details.get("latency_target_ms"),
            ),
        ):
            if value is None or (story.key, kind) in existing:
                continue
            made.append(
                create_slo(
                    actor,
                    slug,
                    f"{story.key.lower()}-{kind}",
                    kind=kind,
                    objective_percent=float(value),
                    monitor=monitor,
                    latency_threshold_ms=float(threshold) if threshold else None,
                    story=story.key,
                )
            )
    return made


def _counts(slo: Slo, since: datetime, until: datetime) -> tuple[int, int]:
    """(good, total) checks of the SLO's monitor in [since, until)."""
    raw = CheckResult.objects.filter(monitor_id=slo.monitor_id, at__gte=since, at__lt=until)
    if slo.kind == "latency":
        good_raw = Q(ok=True, latency_ms__lte=slo.latency_threshold_ms or 0)
    else:
        good_raw = Q(ok=True)
    totals = raw.aggregate(total=Count("id"), good=Count("id", filter=good_raw))
    good, total = totals["good"] or 0, totals["total"] or 0
    rolled = CheckRollup.objects.filter(monitor_id=slo.monitor_id, hour__gte=since, hour__lt=until)
    for rollup in rolled:
        total += rollup.checks
        if slo.kind == "latency" and rollup.latency_max_ms > (slo.latency_threshold_ms or 0):
            continue  # past 7 days only hourly maxima are kept: count the hour as slow
        good += rollup.checks - rollup.failures
    return good, total


@dataclass(frozen=True)
class SloView:
    slo: Slo
    status: logic.SloStatus
    daily: list[tuple[str, float | None]]  # (day, achieved %) for the chart


def slo_view(slo: Slo, now: datetime) -> SloView:
    window = now - timedelta(days=slo.window_days)
    now += timedelta(microseconds=1)  # a check made at this very moment counts
    status = logic.slo_status(
        slo.objective_percent,
        _counts(slo, window, now),
        _counts(slo, now - timedelta(hours=1), now),
        _counts(slo, now - timedelta(minutes=5), now),
        _counts(slo, now - timedelta(hours=6), now),
        _counts(slo, now - timedelta(minutes=30), now),
    )
    daily = []
    for back in range(min(slo.window_days, 30) - 1, -1, -1):
        start = (now - timedelta(days=back)).replace(hour=0, minute=0, second=0, microsecond=0)
        good, total = _counts(slo, start, start + timedelta(days=1))
        daily.append((start.date().isoformat(), None if total == 0 else good / total * 100))
    return SloView(slo, status, daily)


def delete_slo(actor: Actor, slug: str, name: str) -> None:
    slo = get_slo(slug, name)
    catalog.require(actor, slo.service, Permission.CONFIGURE_MONITORING)
    with transaction.atomic():
        events.record(actor, "slo.deleted", f"slo:{slo.pk}", {"name": name}, service=slug)
        slo.delete()


# ---- postmortems -------------------------------------------------------------------------


def timeline_text(incident: Incident) -> str:
    """The incident's timeline as lines, to start the postmortem's from."""
    return "\n".join(
        f"{entry.at:%Y-%m-%d %H:%M} UTC  {entry.who}: {entry.what}" for entry in timeline(incident)
    )


def write_postmortem(
    actor: Actor,
    slug: str,
    number: int,
    *,
    summary: str,
    impact: str,
    factors: list[str],
    went_well: str = "",
    timeline: str | None = None,
    actions: list[str] | None = None,
) -> Postmortem:
    """Write (or rewrite) an incident's postmortem; new follow-up actions become change
    requests in the backlog. Refused: a person as a cause, or a single factor."""
    incident = get_incident(slug, number)
    catalog.require(actor, incident.service, Permission.EDIT_BACKLOG)
    if incident.status not in {"mitigated", "resolved"}:
        raise Conflict(
            f"INC-{number} is {incident.status}: write the postmortem once the service is "
            "restored (mitigated or resolved)"
        )
    if not (summary or "").strip():
        raise InvalidInput("the summary is empty: what happened, in a few lines", field="summary")
    if not (impact or "").strip():
        raise InvalidInput("the impact is empty: who was hurt, how, for how long", field="impact")
    problems = logic.factor_problems(factors)
    if problems:
        raise InvalidInput(problems[0], field="factors")
    cleaned = [factor.strip() for factor in factors if factor.strip()]
    titles = [title.strip() for title in actions or [] if title and title.strip()]
    from obeya.backlog import services as backlog

    now = actor.now()
    with transaction.atomic():
        postmortem, created = Postmortem.objects.select_for_update().get_or_create(
            incident=incident,
            defaults={
                "summary": "",
                "impact": "",
                "author": actor.user,
                "created_at": now,
                "updated_at": now,
            },
        )
        postmortem.summary, postmortem.impact = summary.strip(), impact.strip()
        postmortem.factors, postmortem.went_well = cleaned, (went_well or "").strip()
        postmortem.timeline = (
            timeline.strip()
            if timeline is not None and timeline.strip()
            else timeline_text(incident)
        )
        postmortem.updated_at = now
        postmortem.save()
        known = set(postmortem.actions.values_list("title", flat=True))
        for title in titles:
            if title in known:
                continue
            story = backlog.create_story(
                actor,
                slug,
                "change_request",
                title,
                description=f"Follow-up of the postmortem of INC-{number}: {incident.title}",
                details={"source": "postmortem", "reference": f"INC-{number}"},
            )
            FollowUp.objects.create(postmortem=postmortem, title=title, story_key=story.key)
        events.record(
            actor,
            "postmortem.written" if created else "postmortem.updated",
            f"incident:{incident.pk}",
            {"number": number, "factors": cleaned, "actions": titles},
            service=slug,
        )
    return postmortem


def postmortem_of(incident: Incident) -> Postmortem | None:
    return Postmortem.objects.filter(incident=incident).prefetch_related("actions").first()


# ---- problems ----------------------------------------------------------------------------

PROBLEM_STATUSES = ("open", "known_error", "resolved")


def list_problems(slug: str) -> QuerySet[Problem]:
    return Problem.objects.filter(service=catalog.get_service(slug)).prefetch_related("incidents")


def get_problem(slug: str, number: int) -> Problem:
    try:
        return Problem.objects.select_related("service").get(service__slug=slug, number=number)
    except Problem.DoesNotExist:
        raise NotFound(f'"{slug}" has no problem PRB-{number}', field="number") from None


def _incidents(slug: str, numbers: list[int]) -> list[Incident]:
    return [get_incident(slug, number) for number in numbers]


def _story_keys(slug: str, keys: list[str]) -> list[str]:
    from obeya.backlog import services as backlog

    found = []
    for key in keys:
        story = backlog.get_story(slug, key)  # NotFound names the missing key
        found.append(story.key)
    return found


def open_problem(
    actor: Actor, slug: str, title: str, incidents: list[int] | None = None
) -> Problem:
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.OPERATE)
    title = (title or "").strip()
    if not title:
        raise InvalidInput(
            "a problem needs a title: the shared cause, in a few words", field="title"
        )
    grouped = _incidents(slug, incidents or [])
    now = actor.now()
    with transaction.atomic():
        number = (Problem.objects.filter(service=service).aggregate(n=Max("number"))["n"] or 0) + 1
        problem = Problem.objects.create(
            service=service, number=number, title=title, created_at=now, updated_at=now
        )
        problem.incidents.set(grouped)
        events.record(
            actor,
            "problem.opened",
            f"problem:{problem.pk}",
            {"number": number, "title": title, "incidents": [i.number for i in grouped]},
            service=slug,
        )
    return problem


def update_problem(actor: Actor, slug: str, number: int, **fields: Any) -> Problem:
    """Change a problem: status, known_error, workaround, analysis, incidents (numbers),
    change_requests (story keys)."""
    problem = get_problem(slug, number)
    catalog.require(actor, problem.service, Permission.OPERATE)
    allowed = {
        "title",
        "status",
        "known_error",
        "workaround",
        "analysis",
        "incidents",
        "change_requests",
    }
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidInput(f"a problem has no field {unknown[0]!r}", field=unknown[0])
    if "status" in fields and fields["status"] not in PROBLEM_STATUSES:
        raise InvalidInput(
            f"unknown status {fields['status']!r}: use {', '.join(PROBLEM_STATUSES)}",
            field="status",
        )
    grouped = _incidents(slug, list(fields.pop("incidents"))) if "incidents" in fields else None
    if "change_requests" in fields:
        fields["change_requests"] = _story_keys(slug, list(fields["change_requests"]))
    with transaction.atomic():
        problem = Problem.objects.select_for_update().get(pk=problem.pk)
        for key, value in fields.items():
            setattr(problem, key, value.strip() if isinstance(value, str) else value)
        problem.updated_at = actor.now()
        problem.save()
        if grouped is not None:
            problem.incidents.set(grouped)
        events.record(
            actor,
            "problem.changed",
            f"problem:{problem.pk}",
            {
                "number": number,
                **{k: v for k, v in fields.items() if k in {"status", "change_requests"}},
                **({"incidents": [i.number for i in grouped]} if grouped is not None else {}),
            },
            service=slug,
        )
    return problem


def monitors_without_slo(slug: str) -> QuerySet[Monitor]:
    return Monitor.objects.filter(service__slug=slug, slos__isnull=True)
