"""Template filters: events told as sentences, stages as badges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import template

register = template.Library()

Describer = Callable[[dict[str, Any]], str]

_DESCRIBERS: dict[str, Describer] = {
    "service.created": lambda d: (
        f"created the service “{d.get('name', '')}” in stage {d.get('stage')}"
    ),
    "service.updated": lambda d: "changed " + ", ".join(sorted(d.get("changes", {}))),
    "service.charter_changed": lambda d: (
        "changed the charter: " + ", ".join(sorted(d.get("changes", {})))
    ),
    "service.stage_changed": lambda d: (
        f"moved the stage from {d.get('from')} to {d.get('to')}"
        + (f" — “{d['reason']}”" if d.get("reason") else "")
    ),
    "member.added": lambda d: f"gave {d.get('username')} the role {d.get('role')}",
    "member.removed": lambda d: f"took the role {d.get('role')} from {d.get('username')}",
    "user.created": lambda d: (
        f"added the user {d.get('username')}" + (" (admin)" if d.get("admin") else "")
    ),
    "user.logged_in": lambda d: "signed in",
    "user.login_failed": lambda d: f"failed to sign in as {d.get('username')}",
    "user.login_throttled": lambda d: (
        f"sign-in as {d.get('username')} throttled: too many failures for this {d.get('limit')}"
    ),
    "user.password_changed": lambda d: "changed a password",
    "token.created": lambda d: (
        f"created the {d.get('scope')} token “{d.get('name')}” for "
        f"{d.get('owner')} ({d.get('days')} days)"
    ),
    "token.revoked": lambda d: f"revoked the token “{d.get('name')}” of {d.get('owner')}",
}


def register_describer(kind: str, describer: Describer) -> None:
    """Capabilities teach the timeline how to tell their own event kinds."""
    _DESCRIBERS[kind] = describer


@register.filter
def event_text(event: Any) -> str:
    describer = _DESCRIBERS.get(event.kind)
    if describer is None:
        return f"{event.kind} on {event.subject}"
    try:
        return describer(event.data or {})
    except (KeyError, TypeError, AttributeError):
        return f"{event.kind} on {event.subject}"


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """``values|get_item:name``: a dict entry by a variable key (empty when missing)."""
    if hasattr(mapping, "get"):
        value = mapping.get(key)
        return "" if value is None else value
    return ""


@register.filter
def duration(seconds: float | None) -> str:
    """``12.3`` -> "12.3 s", ``75`` -> "1 min 15 s", ``3700`` -> "1 h 1 min"."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
