"""The continuity panel of the Operations tab (§4.4): the RPO and RTO in force and where
each comes from, the live RPO verdict from the newest good backup, the last restore drills
against the RTO, the backup jobs; and its three forms: back up now, run a restore drill,
set the policy.

The panel only shows what ``continuity_status.status`` computes from real runs and drills.
Every action goes through ``obeya.ops.continuity`` / ``continuity_drills``; a refusal
shows the tab again with the message beside the refused button or form, what was typed
kept, and the refusal's own status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from obeya.catalog import services as catalog
from obeya.core.actors import Actor, actor_for_request
from obeya.core.errors import InvalidInput, ObeyaError
from obeya.core.roles import Permission
from obeya.ops import continuity, continuity_drills, continuity_status, views
from obeya.ops.continuity_logic import MAX_SECONDS, format_seconds

RECENT_DRILLS = 5
RECENT_RUNS = 50  # enough to find each job's newest run
POLICY_TEXT = (
    "rpo_minutes",
    "rto_minutes",
    "max_drill_age_days",
    "restore_command",
    "verify_command",
)
# The form asks for minutes; continuity's own refusals name the stored fields.
FORM_FIELD = {"rpo_s": "rpo_minutes", "rto_s": "rto_minutes"}


@dataclass(frozen=True)
class Shown:
    """A verdict as people read it: an icon and words; the tone's colour only repeats them."""

    tone: str  # a ``status-…`` class: succeeded, failed, manual (a warning) or "" (neutral)
    icon: str
    words: str


RPO_SHOWN = {
    "met": Shown("succeeded", "✓", "RPO met"),
    "breached": Shown("failed", "✗", "RPO breached"),
    "no_backup": Shown("failed", "✗", "no backup yet"),
    "unset": Shown("", "·", "no RPO to meet"),
}
RTO_SHOWN = {
    "within_rto": Shown("succeeded", "✓", "passed, within the RTO"),
    "over_rto": Shown("manual", "⚠", "passed, over the RTO"),
    "no_rto": Shown("succeeded", "✓", "passed (no RTO to compare with)"),
}
FAILED = Shown("failed", "✗", "failed")
RUNNING = Shown("running", "◐", "running")


def drill_shown(status: str, rto_verdict: str) -> Shown:
    """A drill's verdict: a failed drill restored nothing, whatever its duration."""
    if status == "running":
        return RUNNING
    if status != "passed":
        return FAILED
    return RTO_SHOWN.get(rto_verdict, FAILED)


# ---- the panel ---------------------------------------------------------------------------


def _objective(seconds: int | None, source: str) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "text": format_seconds(seconds) if seconds is not None else "",
        "source": source,
        "from_story": bool(source) and source != "set directly",
    }


def _age(seconds: float | None) -> str:
    """How long ago, as people say it; whole seconds are precise enough for an age."""
    if seconds is None:
        return ""
    return "under a second" if seconds < 1 else format_seconds(round(seconds))


def _rpo_margin(live: continuity_status.ContinuityStatus) -> str:
    """How far the newest good backup is from breaking (or past) the RPO."""
    age, rpo = live.rpo.age_s, live.rpo.rpo_s
    if age is None or rpo is None:
        return ""
    if age <= rpo:
        return f"{format_seconds(rpo - age)} left before the RPO is breached"
    return f"over the RPO by {format_seconds(age - rpo)}"


def _drill_row(drill: Any) -> dict[str, Any]:
    duration = drill.duration_s
    return {
        "drill": drill,
        "shown": drill_shown(drill.status, drill.rto_verdict),
        "duration": format_seconds(duration) if duration is not None else "",
        "rto": format_seconds(drill.rto_s) if drill.rto_s is not None else "",
    }


def _job_rows(slug: str) -> list[dict[str, Any]]:
    newest: dict[str, Any] = {}
    for run in continuity.list_runs(slug, RECENT_RUNS):
        newest.setdefault(run.job_name, run)
    return [{"job": job, "last_run": newest.get(job.name)} for job in continuity.list_jobs(slug)]


def _minutes_text(seconds: int | None) -> str:
    return "" if seconds is None else f"{seconds / 60:g}"


def policy_values(policy: Any) -> dict[str, Any]:
    """The policy form's values: only what is set directly (blank RPO/RTO: from stories)."""
    if policy is None:
        return {"max_drill_age_days": "30"}
    return {
        "rpo_minutes": _minutes_text(policy.rpo_s),
        "rto_minutes": _minutes_text(policy.rto_s),
        "max_drill_age_days": str(policy.max_drill_age_days),
        "restore_command": policy.restore_command,
        "verify_command": policy.verify_command,
    }


def panel(actor: Actor, service: Any) -> dict[str, Any]:
    """The ``continuity`` context of the Operations tab, computed live at ``actor.now()``."""
    slug = service.slug
    live = continuity_status.status(actor, slug)
    policy = continuity.get_policy(slug)
    last_run = live.last_run
    jobs = _job_rows(slug)
    return {
        "continuity": {
            "live": live,
            "rpo": _objective(live.objectives.rpo_s, live.objectives.rpo_source),
            "rto": _objective(live.objectives.rto_s, live.objectives.rto_source),
            "rpo_shown": RPO_SHOWN[live.rpo.state],
            "backup_age": _age(live.rpo.age_s),
            "rpo_margin": _rpo_margin(live),
            # The newest run failed after the last good one: say so beside the verdict.
            "failed_since": last_run if last_run is not None and last_run.ok is False else None,
            "drills": [_drill_row(d) for d in continuity_drills.list_drills(slug, RECENT_DRILLS)],
            "jobs": jobs,
            "job_names": [row["job"].name for row in jobs],
            "drill_ready": bool(policy and policy.restore_command),
            "can_run": catalog.can(actor, service, Permission.OPERATE),
            "can_set": catalog.can(actor, service, Permission.CONFIGURE_MONITORING),
            "time_zone": settings.TIME_ZONE,
        },
        "continuity_policy_values": policy_values(policy),
    }


# ---- actions -----------------------------------------------------------------------------


def _anchor(slug: str, anchor: str = "continuity") -> str:
    return f"/services/{slug}/operations/#{anchor}"


@login_required
@require_POST
def backup_now(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    try:
        run = continuity.run_backup(actor_for_request(request), slug, name)
    except ObeyaError as error:
        return views._tab_refused(request, slug, error, "backup", {"job": name})
    if run.ok:
        size = f", {run.size_bytes} bytes" if run.size_bytes is not None else ""
        where = f" at {run.location}" if run.location else ""
        messages.success(request, f"Backup {name} succeeded{where}{size}.")
    else:
        messages.error(request, f"Backup {name} failed: {run.detail}. The run is kept as evidence.")
    return redirect(_anchor(slug, f"backup-job-{name}"))


@login_required
@require_POST
def drill_now(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        drill = continuity_drills.run_drill(actor_for_request(request), slug)
    except ObeyaError as error:
        return views._tab_refused(request, slug, error, "drill", {})
    shown = drill_shown(drill.status, drill.rto_verdict)
    text = f"Restore drill {drill.number} {shown.words}: {drill.detail}"
    if drill.status == "passed":
        messages.success(request, text)
    else:
        messages.error(request, text)
    return redirect(_anchor(slug, "drills"))


def _minutes(form: QueryDict, name: str, label: str) -> int | None:
    """Minutes typed into the form, as whole seconds; blank is None."""
    text = form.get(name, "").strip().replace(",", ".")
    if not text:
        return None
    try:
        seconds = round(float(text) * 60)
    except ValueError:
        seconds = -1
    if not 0 < seconds <= MAX_SECONDS:
        raise InvalidInput(
            f"{label}: minutes, more than 0 and at most a year ({MAX_SECONDS // 60}), "
            f"not {text!r}; leave it blank to take it from the operation stories",
            field=name,
        )
    return seconds


def policy_fields(form: QueryDict) -> dict[str, Any]:
    """The continuity settings the policy form asks for; a blank max age keeps its value."""
    fields: dict[str, Any] = {
        "rpo_s": _minutes(form, "rpo_minutes", "RPO"),
        "rto_s": _minutes(form, "rto_minutes", "RTO"),
        "restore_command": form.get("restore_command", ""),
        "verify_command": form.get("verify_command", ""),
    }
    age = form.get("max_drill_age_days", "").strip()
    if age:
        if not age.isdigit():
            raise InvalidInput(
                f"Max drill age: whole days from 1 to 3660, not {age!r}", field="max_drill_age_days"
            )
        fields["max_drill_age_days"] = int(age)
    return fields


@login_required
@require_POST
def policy_set(request: HttpRequest, slug: str) -> HttpResponse:
    typed = {name: request.POST.get(name, "") for name in POLICY_TEXT}
    try:
        continuity.set_policy(actor_for_request(request), slug, **policy_fields(request.POST))
    except ObeyaError as error:
        if error.field in FORM_FIELD:
            error.field = FORM_FIELD[error.field]
        return views._tab_refused(request, slug, error, "continuity_policy", typed)
    found = continuity.objectives(catalog.get_service(slug), continuity.get_policy(slug))
    messages.success(request, f"Continuity policy saved: {_in_force(found)}.")
    return redirect(_anchor(slug))


def _in_force(found: continuity.Objectives) -> str:
    parts = []
    for what, seconds, source in (
        ("RPO", found.rpo_s, found.rpo_source),
        ("RTO", found.rto_s, found.rto_source),
    ):
        if seconds is None:
            parts.append(f"no {what}")
        else:
            parts.append(f"{what} {format_seconds(seconds)} ({source})")
    return ", ".join(parts)
