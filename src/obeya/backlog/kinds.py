"""What each kind of story holds (§2.5.2, §2.4, §5), checked here. Pure: no Django."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

KINDS = ("user", "test", "operation", "change_request", "end_of_life")
CHANGE_SOURCES = ("maintenance", "customer_feedback", "incident", "postmortem", "other")
KEY = re.compile(r"\bS-(\d{1,9})\b")


class DetailProblem(ValueError):
    """A detail of a story is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _text(limit: int = 4000) -> Callable[[str, Any], str]:
    def check(field: str, value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise DetailProblem(field, f"{field} must be text")
        if len(value) > limit:
            raise DetailProblem(field, f"{field} is longer than {limit} characters")
        return value.strip()

    return check


def _number(
    low: float, high: float, *, integer: bool, open_low: bool = False, open_high: bool = False
) -> Callable[[str, Any], Any]:
    def check(field: str, value: Any) -> Any:
        if value in (None, ""):
            return None
        try:
            number = int(value) if integer else float(value)
        except (TypeError, ValueError):
            raise DetailProblem(field, f"{field} must be a number, not {value!r}") from None
        below = number <= low if open_low else number < low
        above = number >= high if open_high else number > high
        if below or above:
            lo, hi = (
                ("(" if open_low else "[") + f"{low:g}",
                f"{high:g}" + (")" if open_high else "]"),
            )
            raise DetailProblem(field, f"{field} must be in {lo}, {hi}, not {number:g}")
        return number

    return check


def _choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(field: str, value: Any) -> str:
        if value not in choices:
            raise DetailProblem(
                field, f"{field} must be one of {', '.join(choices)}, not {value!r}"
            )
        return str(value)

    return check


def _date(field: str, value: Any) -> str:
    if value in (None, ""):
        return ""
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise DetailProblem(field, f"{field} must be a date like 2027-03-31") from None


def _checklist(field: str, value: Any) -> list[dict[str, Any]]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise DetailProblem(field, f"{field} must be a list of items")
    items = []
    for item in value:
        if isinstance(item, str):
            item = {"text": item, "done": False}
        if not isinstance(item, Mapping) or not str(item.get("text", "")).strip():
            raise DetailProblem(field, f"each {field} item needs a text")
        items.append({"text": str(item["text"]).strip()[:300], "done": bool(item.get("done"))})
    return items


FIELDS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    "user": {
        "as_a": _text(200),
        "i_want": _text(),
        "so_that": _text(),
        "operational_conditions": _text(),
        "acceptance_criteria": _text(),
    },
    "test": {"gherkin": _text(100_000)},
    "operation": {
        "availability_target": _number(0, 100, integer=False, open_low=True, open_high=True),
        "latency_target_ms": _number(0, 600_000, integer=True, open_low=True),
        "rpo_minutes": _number(0, 525_600, integer=True),
        "rto_minutes": _number(0, 525_600, integer=True, open_low=True),
        "backup_frequency": _text(100),
        "continuity_conditions": _text(),
    },
    "change_request": {"source": _choice(CHANGE_SOURCES), "reference": _text(300)},
    "end_of_life": {
        "reason": _text(),
        "replaced_by": _text(200),
        "data_disposition": _text(),
        "documents_disposition": _text(),
        "tools_disposition": _text(),
        "replacement_evidence": _text(),
        "shutdown_order": _text(),
        "shutdown_at": _date,
        "checklist": _checklist,
    },
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "change_request": {"source": "maintenance"},
    "end_of_life": {
        "checklist": [
            "Data archived or handed over",
            "Documents moved to the archive",
            "Tools and components disposed of",
            "Replacement shown ready",
            "Users told the shutdown date",
            "Service shut down in the agreed order",
        ]
    },
}


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise DetailProblem("kind", f"unknown story kind {kind!r}: use {', '.join(KINDS)}")
    return kind


def clean_details(
    kind: str, details: Mapping[str, Any], base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The kind's details, checked and normalised; unknown fields are refused."""
    fields = FIELDS[check_kind(kind)]
    unknown = sorted(set(details) - set(fields))
    if unknown:
        raise DetailProblem(
            unknown[0], f"a {kind} story has no field {unknown[0]!r}; it has {', '.join(fields)}"
        )
    merged = {**DEFAULTS.get(kind, {}), **(base or {}), **details}
    return {name: check(name, merged.get(name)) for name, check in fields.items()}


def keys_in(text: str) -> list[int]:
    """Story numbers named in a commit message or a tag (``S-12``), in order, once each."""
    seen: list[int] = []
    for match in KEY.finditer(text or ""):
        number = int(match.group(1))
        if number not in seen:
            seen.append(number)
    return seen


def parse_key(key: str) -> int:
    match = re.fullmatch(r"S-(\d{1,9})", key.strip())
    if not match:
        raise DetailProblem("key", f"{key!r} is not a story key: keys look like S-12")
    return int(match.group(1))


def end_of_life_problem(details: Mapping[str, Any], done: bool) -> str | None:
    """Why an end-of-life story does not yet allow retirement, or None."""
    if not done:
        return "its end-of-life story is not done yet"
    open_items = [item["text"] for item in details.get("checklist", []) if not item.get("done")]
    if open_items:
        return f"its end-of-life checklist has open items: {', '.join(open_items)}"
    missing = [
        name for name in ("reason", "data_disposition", "shutdown_order") if not details.get(name)
    ]
    if missing:
        return f"its end-of-life story does not say: {', '.join(missing)}"
    return None
