"""Operations as use cases: monitors, incidents and their timelines.

Permissions are checked here (UI, API and CLI agree); each change is one transaction with
its event. The scheduler (``ops/scheduler.py``) runs the checks and calls
``record_result``; the reactor (``ops/reactor.py``) opens incidents from other
capabilities' events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, QuerySet

from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events, outbound
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput, NotFound
from obeya.core.models import Event
from obeya.core.roles import Permission
from obeya.ops import logic
from obeya.ops.models import (
    CheckResult,
    CheckRollup,
    Incident,
    IncidentCause,
    IncidentNote,
    Monitor,
    Severity,
)

MONITOR_FIELDS = (
    "environment",
    "kind",
    "url",
    "expect_status",
    "contains",
    "command",
    "interval_s",
    "timeout_s",
    "failure_threshold",
    "enabled",
)


# ---- monitors ----------------------------------------------------------------------------


def list_monitors(slug: str) -> QuerySet[Monitor]:
    return Monitor.objects.filter(service=catalog.get_service(slug)).order_by("name")


def get_monitor(slug: str, name: str) -> Monitor:
    try:
        return Monitor.objects.select_related("service").get(service__slug=slug, name=name)
    except Monitor.DoesNotExist:
        raise NotFound(f'"{slug}" has no monitor "{name}"', field="monitor") from None


def _monitor_fields(fields: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(MONITOR_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown monitor setting {unknown[0]!r}: use {', '.join(MONITOR_FIELDS)}",
            field=unknown[0],
        )
    problems = logic.check_monitor({**current, **fields})
    if problems:
        name, message = problems[0]
        raise InvalidInput(message, field=name)
    return fields


def _settings_of(monitor: Monitor) -> dict[str, Any]:
    return {key: getattr(monitor, key) for key in MONITOR_FIELDS}


def create_monitor(actor: Actor, slug: str, name: str, **fields: Any) -> Monitor:
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.CONFIGURE_MONITORING)
    name = (name or "").strip()
    if not logic.NAME.match(name):
        raise InvalidInput(
            f"monitor name {name!r}: lower-case letters, digits, - and _, up to 63",
            field="name",
        )
    cleaned = _monitor_fields(fields, _settings_of(Monitor()))
    now = actor.now()
    try:
        with transaction.atomic():
            monitor = Monitor.objects.create(
                service=service, name=name, created_at=now, next_due_at=now, **cleaned
            )
            events.record(
                actor,
                "monitor.created",
                f"monitor:{monitor.pk}",
                {"name": name, **_settings_of(monitor)},
                service=slug,
            )
    except IntegrityError:
        raise Conflict(f'"{slug}" already has a monitor "{name}"', field="name") from None
    return monitor


def update_monitor(actor: Actor, slug: str, name: str, **fields: Any) -> Monitor:
    monitor = get_monitor(slug, name)
    catalog.require(actor, monitor.service, Permission.CONFIGURE_MONITORING)
    cleaned = _monitor_fields(fields, _settings_of(monitor))
    with transaction.atomic():
        monitor = Monitor.objects.select_for_update().get(pk=monitor.pk)
        before = _settings_of(monitor)
        for key, value in cleaned.items():
            setattr(monitor, key, value)
        monitor.save()
        changes = {k: {"from": before[k], "to": v} for k, v in cleaned.items() if before[k] != v}
        events.record(
            actor,
            "monitor.changed",
            f"monitor:{monitor.pk}",
            {"name": name, "changes": changes},
            service=slug,
        )
    return monitor


def delete_monitor(actor: Actor, slug: str, name: str) -> None:
    monitor = get_monitor(slug, name)
    catalog.require(actor, monitor.service, Permission.CONFIGURE_MONITORING)
    measured = sorted(monitor.slos.values_list("name", flat=True))
    if measured:
        raise Conflict(
            f'monitor "{name}" measures the SLO {", ".join(measured)}: remove the SLO first'
        )
    with transaction.atomic():
        events.record(
            actor, "monitor.deleted", f"monitor:{monitor.pk}", {"name": name}, service=slug
        )
        monitor.delete()


def outbound_policy(service: Service) -> outbound.Policy:
    """The allow-list for a service's checks: the setting, with the URLs the service's
    environments name on their own ports (public ones, and loopback ones an administrator
    approved), never their hosts' other ports."""
    from obeya.deploy import services as deploy

    return deploy.outbound_policy(service.slug)


def record_result(
    actor: Actor, monitor_id: int, ok: bool, latency_ms: float, detail: str, lateness_ms: float
) -> Monitor:
    """Keep a check's result; open an incident when the threshold of failures is reached,
    note a recovery on the open incident (recovering never resolves it)."""
    now = actor.now()
    with transaction.atomic():
        monitor = Monitor.objects.select_for_update().select_related("service").get(pk=monitor_id)
        CheckResult.objects.create(
            monitor=monitor,
            at=now,
            ok=ok,
            latency_ms=latency_ms,
            detail=detail[:300],
            lateness_ms=lateness_ms,
        )
        open_incident = (
            Incident.objects.filter(monitor=monitor)
            .exclude(status="resolved")
            .order_by("-id")
            .first()
        )
        verdict = logic.judge(
            ok, monitor.consecutive_failures, monitor.failure_threshold, open_incident is not None
        )
        monitor.consecutive_failures = verdict.consecutive_failures
        monitor.last_ok, monitor.last_checked_at, monitor.last_detail = ok, now, detail[:500]
        monitor.save(
            update_fields=["consecutive_failures", "last_ok", "last_checked_at", "last_detail"]
        )
        slug = monitor.service.slug
        if verdict.open_incident:
            incident = _open(
                actor,
                monitor.service,
                f"{monitor.name} is failing: {detail[:120]}",
                "sev2" if monitor.environment in {"production", "prod"} else "sev3",
                source="monitor",
                monitor=monitor,
            )
            events.record(
                actor,
                "monitor.failing",
                f"monitor:{monitor.pk}",
                {
                    "name": monitor.name,
                    "failures": verdict.consecutive_failures,
                    "detail": detail[:300],
                    "incident": incident.number,
                },
                service=slug,
            )
        elif verdict.recovered:
            events.record(
                actor,
                "monitor.recovered",
                f"monitor:{monitor.pk}",
                {"name": monitor.name, "detail": detail[:300]},
                service=slug,
            )
            if open_incident is not None:
                events.record(
                    actor,
                    "incident.monitor_recovered",
                    f"incident:{open_incident.pk}",
                    {"monitor": monitor.name, "number": open_incident.number},
                    service=slug,
                )
    return monitor


def results_of(monitor: Monitor, since: datetime) -> QuerySet[CheckResult]:
    return CheckResult.objects.filter(monitor=monitor, at__gte=since).order_by("at")


# ---- incidents ---------------------------------------------------------------------------


def _open(
    actor: Actor,
    service: Service,
    title: str,
    severity: str,
    *,
    source: str,
    monitor: Monitor | None = None,
    source_event: int | None = None,
    commander: Any = None,
) -> Incident:
    """Record a new incident (inside a transaction), numbered per service."""
    for _attempt in range(5):
        number = (Incident.objects.filter(service=service).aggregate(n=Max("number"))["n"] or 0) + 1
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    service=service,
                    number=number,
                    title=title[:200],
                    severity=severity,
                    source=source,
                    monitor=monitor,
                    source_event=source_event,
                    commander=commander,
                    opened_at=actor.now(),
                )
        except IntegrityError:
            if (
                source_event is not None
                and Incident.objects.filter(source_event=source_event).exists()
            ):
                raise
            continue
        events.record(
            actor,
            "incident.opened",
            f"incident:{incident.pk}",
            {
                "number": number,
                "title": incident.title,
                "severity": severity,
                "source": source,
                "monitor": monitor.name if monitor else None,
            },
            service=service.slug,
        )
        return incident
    raise Conflict("could not number the incident: try again")


def severity_choices() -> list[tuple[str, str]]:
    """The severities with what each means, for forms."""
    return [(str(value), str(label)) for value, label in Severity.choices]


def _severity(value: str) -> str:
    if value not in logic.SEVERITIES:
        raise InvalidInput(
            f"unknown severity {value!r}: use {', '.join(logic.SEVERITIES)}", field="severity"
        )
    return value


def open_incident(
    actor: Actor, slug: str, title: str, severity: str = "sev3", *, deployment: int | None = None
) -> Incident:
    """Open an incident by hand (anyone on the team); optionally caused by a deployment."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.EDIT_BACKLOG)
    title = (title or "").strip()
    if not title:
        raise InvalidInput("an incident needs a title: what hurts, in a few words", field="title")
    with transaction.atomic():
        incident = _open(
            actor, service, title, _severity(severity), source="manual", commander=actor.user
        )
        if deployment is not None:
            _link(actor, incident, deployment, automatic=False)
    return incident


def get_incident(slug: str, number: int) -> Incident:
    try:
        return Incident.objects.select_related("service", "commander", "monitor").get(
            service__slug=slug, number=number
        )
    except Incident.DoesNotExist:
        raise NotFound(f'"{slug}" has no incident INC-{number}', field="number") from None


def list_incidents(slug: str = "", status: str = "") -> QuerySet[Incident]:
    found = Incident.objects.select_related("service", "commander")
    if slug:
        found = found.filter(service=catalog.get_service(slug))
    if status == "unresolved":
        found = found.exclude(status="resolved")
    elif status:
        found = found.filter(status=status)
    return found.order_by("-opened_at", "-id")


def move_incident(actor: Actor, slug: str, number: int, status: str, note: str = "") -> Incident:
    """Acknowledge, mitigate or resolve; the commander defaults to who acknowledged."""
    incident = get_incident(slug, number)
    catalog.require(actor, incident.service, Permission.OPERATE)
    if status not in logic.STATUSES:
        raise InvalidInput(
            f"unknown status {status!r}: use {', '.join(logic.STATUSES[1:])}", field="status"
        )
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if not logic.can_move(incident.status, status):
            raise Conflict(
                f"INC-{number} is {incident.status}: it can only move forward "
                f"({' → '.join(logic.STATUSES)})"
            )
        stamps = logic.moved(
            incident.status,
            status,
            actor.now(),
            {
                "acknowledged_at": incident.acknowledged_at,
                "mitigated_at": incident.mitigated_at,
                "resolved_at": incident.resolved_at,
            },
        )
        previous = incident.status
        for field, value in stamps.items():
            setattr(incident, field, value)
        incident.status = status
        if incident.commander_id is None and actor.user is not None:
            incident.commander = actor.user
        incident.save()
        times = timings_of(incident)  # a note given here lives in the event: shown once
        events.record(
            actor,
            f"incident.{status}",
            f"incident:{incident.pk}",
            {
                "number": number,
                "from": previous,
                "note": note.strip(),
                "time_to_acknowledge_s": times.time_to_acknowledge_s,
                "time_to_restore_s": times.time_to_restore_s,
            },
            service=slug,
        )
    return incident


def add_note(actor: Actor, slug: str, number: int, text: str) -> IncidentNote:
    incident = get_incident(slug, number)
    catalog.require(actor, incident.service, Permission.EDIT_BACKLOG)
    text = (text or "").strip()
    if not text:
        raise InvalidInput("the note is empty", field="text")
    with transaction.atomic():
        note = IncidentNote.objects.create(
            incident=incident, at=actor.now(), author=actor.user, text=text
        )
        events.record(
            actor,
            "incident.noted",
            f"incident:{incident.pk}",
            {"number": number, "text": text[:500]},
            service=slug,
        )
    return note


def _link(actor: Actor, incident: Incident, deployment_id: int, *, automatic: bool) -> None:
    from obeya.deploy import services as deploy

    deployment = deploy.get_deployment(deployment_id)
    if deployment.service_id != incident.service_id:
        raise InvalidInput(
            f"deployment {deployment_id} is not of {incident.service.slug}", field="deployment"
        )
    try:
        with transaction.atomic():
            IncidentCause.objects.create(
                incident=incident,
                deployment_id=deployment_id,
                automatic=automatic,
                linked_at=actor.now(),
                linked_by=actor.name,
            )
    except IntegrityError:
        raise Conflict(
            f"INC-{incident.number} is already linked to deployment {deployment_id}"
        ) from None
    events.record(
        actor,
        "incident.caused_by",
        f"incident:{incident.pk}",
        {
            "number": incident.number,
            "deployment": deployment_id,
            "environment": deployment.environment.name,
            "tier": deployment.environment.tier,
            "automatic": automatic,
        },
        service=incident.service.slug,
    )


def link_deployment(actor: Actor, slug: str, number: int, deployment_id: int) -> Incident:
    """Say which deployment caused the incident (change fail rate counts these links)."""
    incident = get_incident(slug, number)
    catalog.require(actor, incident.service, Permission.OPERATE)
    with transaction.atomic():
        _link(actor, incident, deployment_id, automatic=False)
    return incident


def unlink_deployment(actor: Actor, slug: str, number: int, deployment_id: int) -> Incident:
    incident = get_incident(slug, number)
    catalog.require(actor, incident.service, Permission.OPERATE)
    with transaction.atomic():
        removed, _ = IncidentCause.objects.filter(
            incident=incident, deployment_id=deployment_id
        ).delete()
        if not removed:
            raise NotFound(f"INC-{number} is not linked to deployment {deployment_id}")
        events.record(
            actor,
            "incident.cause_removed",
            f"incident:{incident.pk}",
            {"number": number, "deployment": deployment_id},
            service=slug,
        )
    return incident


def causes_of(incident: Incident) -> list[int]:
    return list(incident.causes.values_list("deployment_id", flat=True))


def timings_of(incident: Incident) -> logic.Timings:
    return logic.timings(
        incident.opened_at, incident.acknowledged_at, incident.mitigated_at, incident.resolved_at
    )


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    who: str
    what: str
    kind: str


def timeline(incident: Incident) -> list[TimelineEntry]:
    """The incident's events and notes, oldest first."""
    entries = [
        TimelineEntry(event.at, event.actor_name, _describe(event), event.kind)
        for event in Event.objects.filter(subject=f"incident:{incident.pk}")
        .exclude(kind="incident.noted")  # the note itself is listed below
        .order_by("id")
    ]
    entries += [
        TimelineEntry(note.at, note.author.username if note.author else "system", note.text, "note")
        for note in incident.notes.select_related("author")
    ]
    return sorted(entries, key=lambda entry: entry.at)


def _describe(event: Event) -> str:
    data = event.data
    kind = event.kind.removeprefix("incident.")
    if kind == "opened":
        return f"opened ({data.get('severity')}, from {data.get('source')}): {data.get('title')}"
    if kind == "caused_by":
        how = "automatically" if data.get("automatic") else "by hand"
        return f"linked {how} to deployment {data.get('deployment')} ({data.get('environment')})"
    if kind == "monitor_recovered":
        return f"monitor {data.get('monitor')} recovered (the incident stays open until resolved)"
    if kind == "noted":
        return "note added"
    return kind.replace("_", " ") + (f": {data['note']}" if data.get("note") else "")


def cleanup_results(actor: Actor) -> int:
    """Roll raw results older than 7 days up per hour, then drop them."""
    cutoff = logic.raw_cutoff(actor.now())
    rolled = 0
    for monitor_id in (
        CheckResult.objects.filter(at__lt=cutoff).values_list("monitor_id", flat=True).distinct()
    ):
        with transaction.atomic():
            old = CheckResult.objects.filter(monitor_id=monitor_id, at__lt=cutoff)
            for rollup in logic.roll_up(old.values_list("at", "ok", "latency_ms")):
                existing = CheckRollup.objects.filter(
                    monitor_id=monitor_id, hour=rollup.hour
                ).first()
                if existing is None:
                    CheckRollup.objects.create(
                        monitor_id=monitor_id,
                        hour=rollup.hour,
                        checks=rollup.checks,
                        failures=rollup.failures,
                        latency_sum_ms=rollup.latency_sum_ms,
                        latency_max_ms=rollup.latency_max_ms,
                    )
                else:
                    existing.checks += rollup.checks
                    existing.failures += rollup.failures
                    existing.latency_sum_ms += rollup.latency_sum_ms
                    existing.latency_max_ms = max(existing.latency_max_ms, rollup.latency_max_ms)
                    existing.save()
            rolled += old.delete()[0]
    return rolled
