"""The operations forms as text: the values a form shows, and the settings a submission asks
for. Validation itself lives in ``services`` and ``reviews``; this only turns text into the
shapes they take, and refuses text that is not a number where a number is asked for."""

from __future__ import annotations

import re
from typing import Any

from django.http import QueryDict

from obeya.core.errors import InvalidInput

MONITOR_WHOLE = (
    ("interval_s", "Interval (s)"),
    ("failure_threshold", "Failures before an incident"),
    ("expect_status", "Expected status"),
)
MONITOR_TEXT = (
    "name",
    "environment",
    "kind",
    "url",
    "contains",
    "command",
    "timeout_s",
    *(name for name, _ in MONITOR_WHOLE),
)
MONITOR_DEFAULTS: dict[str, Any] = {
    "kind": "http",
    "interval_s": "30",
    "timeout_s": "5",
    "failure_threshold": "3",
    "expect_status": "200",
    "enabled": True,
}
SLO_TEXT = ("name", "kind", "objective_percent", "window_days", "latency_threshold_ms", "monitor")
SLO_DEFAULTS: dict[str, Any] = {
    "kind": "availability",
    "objective_percent": "99.9",
    "window_days": "30",
}
POSTMORTEM_TEXT = ("summary", "impact", "timeline", "factors", "went_well", "actions")
PROBLEM_TEXT = ("title", "status", "known_error", "workaround", "analysis")


def _whole(form: QueryDict, name: str, label: str) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(f"{label}: a whole number, not {text!r}", field=name)
    return int(text)


def _decimal(form: QueryDict, name: str, label: str) -> float | None:
    text = form.get(name, "").strip().replace(",", ".")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{label}: a number, not {text!r}", field=name) from None


def typed(form: QueryDict, names: tuple[str, ...]) -> dict[str, Any]:
    """What was typed, to put back into a refused form."""
    return {name: form.get(name, "") for name in names}


# ---- monitors ----------------------------------------------------------------------------


def monitor_values(monitor: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(monitor, name) for name in MONITOR_TEXT}
    values["timeout_s"] = f"{monitor.timeout_s:g}"
    values["enabled"] = monitor.enabled
    return values


def typed_monitor(form: QueryDict) -> dict[str, Any]:
    values = typed(form, MONITOR_TEXT)
    values["enabled"] = form.get("enabled") == "on"
    return values


def monitor_fields(form: QueryDict) -> dict[str, Any]:
    """The monitor settings a submitted form asks for: blank numbers keep their value."""
    kind = form.get("kind", "")
    fields: dict[str, Any] = {
        "kind": kind,
        "environment": form.get("environment", "").strip(),
        "enabled": form.get("enabled") == "on",
    }
    if kind == "http":
        fields["url"] = form.get("url", "").strip()
        fields["contains"] = form.get("contains", "").strip()
    elif kind == "command":
        fields["command"] = form.get("command", "").strip()
    for name, label in MONITOR_WHOLE:
        number = _whole(form, name, label)
        if number is not None:
            fields[name] = number
    timeout = _decimal(form, "timeout_s", "Timeout (s)")
    if timeout is not None:
        fields["timeout_s"] = timeout
    return fields


# ---- SLOs --------------------------------------------------------------------------------


def slo_fields(form: QueryDict) -> dict[str, Any]:
    objective = _decimal(form, "objective_percent", "Objective (%)")
    window = _whole(form, "window_days", "Window (days)")
    return {
        "kind": form.get("kind", ""),
        "objective_percent": -1.0 if objective is None else objective,
        "window_days": 30 if window is None else window,
        "latency_threshold_ms": _decimal(form, "latency_threshold_ms", "Latency threshold (ms)"),
        "monitor": form.get("monitor", ""),
    }


# ---- incidents, postmortems and problems -------------------------------------------------


def lines(text: str) -> list[str]:
    """One item per line, blank lines and list bullets dropped."""
    items = (re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line).strip() for line in text.splitlines())
    return [item for item in items if item]


def deployment_id(form: QueryDict, name: str = "deployment") -> int | None:
    text = form.get(name, "").strip().lstrip("#")
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(f"deployment: a deployment number, not {text!r}", field=name)
    return int(text)


def numbers(form: QueryDict, name: str) -> list[int]:
    """Ticked incident numbers (checkbox values)."""
    found = []
    for value in form.getlist(name):
        if not value.strip().isdigit():
            raise InvalidInput(f"{name}: incident numbers, not {value!r}", field=name)
        found.append(int(value))
    return found


def postmortem_values(postmortem: Any, timeline: str) -> dict[str, Any]:
    if postmortem is None:
        return {"timeline": timeline}
    return {
        "summary": postmortem.summary,
        "impact": postmortem.impact,
        "timeline": postmortem.timeline or timeline,
        "factors": "\n".join(postmortem.factors),
        "went_well": postmortem.went_well,
        "actions": "\n".join(action.title for action in postmortem.actions.all()),
    }


def problem_values(problem: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(problem, name) for name in PROBLEM_TEXT}
    values["incidents"] = [incident.number for incident in problem.incidents.all()]
    values["change_requests"] = list(problem.change_requests)
    return values


def typed_problem(form: QueryDict) -> dict[str, Any]:
    values = typed(form, PROBLEM_TEXT)
    values["incidents"] = [int(v) for v in form.getlist("incidents") if v.strip().isdigit()]
    values["change_requests"] = form.getlist("change_requests")
    return values
