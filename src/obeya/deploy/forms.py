"""The environment settings form: its fields as text, and the settings a submission asks for.

Validation itself lives in ``services``; this only turns text into the shapes it takes.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import QueryDict

from obeya.core.errors import InvalidInput
from obeya.deploy.logic import HOOKS

WHOLE_NUMBERS = (
    ("position", "Position in the promotion order"),
    ("required_approvals", "Approvals needed"),
    ("warmup_s", "Warm-up window (s)"),
    ("health_passes", "Passing checks in a row"),
    ("health_interval_ms", "Time between checks (ms)"),
    ("retention", "Releases kept"),
    ("hook_timeout_s", "Hook timeout (s)"),
)
TEXT_FIELDS = (
    "name",
    "tier",
    "approval_role",
    "target_kind",
    "target_root",
    "target_hosts",
    "target_batch_size",
    "health_kind",
    "health_url",
    "health_command",
    *(f"hook_{hook}" for hook in HOOKS),
    *(name for name, _ in WHOLE_NUMBERS),
)


def settings_values(environment: Any) -> dict[str, Any]:
    """The settings form's values, as text, from the environment as it is."""
    target, health, hooks = (
        environment.target or {},
        environment.health or {},
        environment.hooks or {},
    )
    values: dict[str, Any] = {
        "tier": environment.tier,
        "approval_role": environment.approval_role,
        "protected": environment.protected,
        "target_kind": target.get("kind", "local"),
        "target_root": target.get("root", ""),
        "target_hosts": ", ".join(target.get("hosts", [])),
        "target_batch_size": str(target.get("batch_size", "")),
        "health_kind": health.get("kind", ""),
        "health_url": health.get("url", ""),
        "health_command": health.get("command", ""),
    }
    values.update({f"hook_{hook}": hooks.get(hook, "") for hook in HOOKS})
    values.update({name: str(getattr(environment, name)) for name, _ in WHOLE_NUMBERS})
    return values


def whole_numbers(form: QueryDict) -> dict[str, int]:
    numbers = {}
    for name, label in WHOLE_NUMBERS:
        text = form.get(name, "").strip()
        if not text:
            continue  # left blank: the current value (or the default) stays
        if not text.isdigit():
            raise InvalidInput(f"{label}: a whole number, not {text!r}", field=name)
        numbers[name] = int(text)
    return numbers


def target_from(form: QueryDict, before: dict[str, Any]) -> dict[str, Any]:
    kind = form.get("target_kind", "local")
    kept = {k: v for k, v in before.items() if k not in {"kind", "root", "hosts", "batch_size"}}
    target: dict[str, Any] = {**kept, "kind": kind, "root": form.get("target_root", "").strip()}
    if kind == "ssh":
        target["hosts"] = [h for h in re.split(r"[\s,]+", form.get("target_hosts", "")) if h]
        batch = form.get("target_batch_size", "").strip() or "1"
        if not batch.isdigit():
            raise InvalidInput(f"SSH batch size: a whole number, not {batch!r}", field="target")
        target["batch_size"] = int(batch)
    return target


def health_from(form: QueryDict, before: dict[str, Any]) -> dict[str, Any]:
    kind = form.get("health_kind", "")
    if not kind:
        return {}
    # Settings the form does not show (expected status, timeout…) survive an edit.
    kept = {k: v for k, v in before.items() if k not in {"kind", "url", "command"}}
    if before.get("kind") != kind:
        kept = {}
    if kind == "http":
        return {**kept, "kind": kind, "url": form.get("health_url", "").strip()}
    return {**kept, "kind": kind, "command": form.get("health_command", "").strip()}


def settings_from(form: QueryDict, environment: Any = None) -> dict[str, Any]:
    """The environment settings a submitted form asks for; the service checks them."""
    fields: dict[str, Any] = {}
    # The protection inputs are on the form only for people who may change them
    # (services.may_change_protection); without them, protection is not asked about.
    if "required_approvals" in form:
        fields["protected"] = form.get("protected") == "on"
    for name in ("tier", "approval_role"):
        if form.get(name):
            fields[name] = form.get(name)
    fields.update(whole_numbers(form))
    fields["target"] = target_from(form, (environment.target if environment else None) or {})
    fields["health"] = health_from(form, (environment.health if environment else None) or {})
    commands = {hook: form.get(f"hook_{hook}", "").strip() for hook in HOOKS}
    fields["hooks"] = {hook: command for hook, command in commands.items() if command}
    return fields


def protection_from(form: QueryDict) -> dict[str, Any]:
    """The protection a gatekeeper's form asks for (protected, approvals, approving role)."""
    fields: dict[str, Any] = {"protected": form.get("protected") == "on"}
    if form.get("approval_role"):
        fields["approval_role"] = form.get("approval_role")
    text = form.get("required_approvals", "").strip()
    if text:
        if not text.isdigit():
            raise InvalidInput(
                f"Approvals needed: a whole number, not {text!r}", field="required_approvals"
            )
        fields["required_approvals"] = int(text)
    return fields


def typed(form: QueryDict) -> dict[str, Any]:
    values: dict[str, Any] = {name: form.get(name, "") for name in TEXT_FIELDS}
    values["protected"] = form.get("protected") == "on"
    return values
