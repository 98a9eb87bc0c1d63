"""Reading the values of obeya.yml: names, durations, lists, variables, choices.

Every reader records what is wrong in ``Problems`` and carries on with a usable default,
so one pass over the file finds every mistake in it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from obeya.pipelines.spec_yaml import (
    Position,
    Problem,
    item_position,
    key_position,
    kind,
    shown,
    value_position,
)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
NAME_RULE = (
    'must start with a letter or digit and hold only letters, digits, "_", "." and "-" '
    "(at most 63 characters)"
)
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"([0-9]{1,9})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Problems:
    """The mistakes found so far in one file, each with where it was written."""

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, position: Position, message: str) -> None:
        self.found.append((position, message))


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """'; did you mean "x"?' for the closest option, or nothing when none is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def one_of(options: Iterable[str]) -> str:
    """The options as a sentence: "a, b or c"."""
    names = list(options)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def string_keys(
    problems: Problems, mapping: CommentedMap, allowed: tuple[str, ...] | None, where: str
) -> list[str]:
    """The keys of ``mapping`` that are strings and, when ``allowed`` is given, known."""
    keys: list[str] = []
    for key in mapping:
        if not isinstance(key, str):
            problems.add(
                key_position(mapping, key),
                f"key {shown(key)} {where} must be a string, not {kind(key)}: quote it",
            )
        elif allowed is not None and key not in allowed:
            hint = did_you_mean(key, allowed) or f": expected {one_of(allowed)}"
            problems.add(key_position(mapping, key), f'unknown key "{key}" {where}{hint}')
        else:
            keys.append(key)
    return keys


def duration(
    problems: Problems,
    mapping: CommentedMap,
    key: str,
    label: str,
    *,
    units: str,
    maximum: int,
    examples: str,
    whole_seconds: bool,
) -> int | None:
    """Seconds from ``10m``-style text (or an integer, when ``whole_seconds``); None if bad."""
    value = mapping[key]
    position = value_position(mapping, key)
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool) and whole_seconds:
        seconds = int(value)
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match and match.group(2) in units:
            seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds is None:
        also = ", or whole seconds" if whole_seconds else ""
        problems.add(
            position, f"{label} must be a duration like {examples}{also}, not {_show(value)}"
        )
        return None
    if seconds <= 0:
        problems.add(position, f"{label} must be more than zero")
        return None
    if seconds > maximum:
        unit = units[-1]
        written = f"{value} seconds" if isinstance(value, int) else value
        most = f"{maximum // _UNIT_SECONDS[unit]}{unit}"
        problems.add(position, f"{label} is {written}; the most is {most}")
        return None
    return seconds


def _show(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return kind(value)
    return shown(value)


def strings(
    problems: Problems, mapping: CommentedMap, key: str, label: str, what: str
) -> list[tuple[str, Position]]:
    """A list of strings, or one string standing for a list of one, with their positions.

    ``what`` names the items ("job names"); wrong items are reported and left out.
    """
    value = mapping[key]
    if isinstance(value, str):
        return [(value, value_position(mapping, key))]
    if not isinstance(value, CommentedSeq):
        problems.add(
            value_position(mapping, key),
            f"{label} must be a list of {what} or a single one, not {kind(value)}",
        )
        return []
    items: list[tuple[str, Position]] = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            items.append((item, item_position(value, index)))
        else:
            hint = ': quote items that contain ": "' if isinstance(item, dict) else ""
            problems.add(
                item_position(value, index),
                f"{label} must hold {what}, not {kind(item)}{hint}",
            )
    return items


def unique(
    problems: Problems, items: list[tuple[str, Position]], label: str
) -> list[tuple[str, Position]]:
    """``items`` without repeats; each repeat is reported where it is written."""
    seen: set[str] = set()
    kept: list[tuple[str, Position]] = []
    for item, position in items:
        if item in seen:
            problems.add(position, f'"{item}" is listed twice in {label}')
        else:
            seen.add(item)
            kept.append((item, position))
    return kept


def names(
    problems: Problems, items: list[tuple[str, Position]], what: str, where: str = ""
) -> list[tuple[str, Position]]:
    """The items that are valid names; ``what`` says what each one is ("runner label")."""
    kept = []
    for item, position in items:
        if NAME.fullmatch(item):
            kept.append((item, position))
        else:
            problems.add(position, f"{what} {shown(item)}{where} {NAME_RULE}")
    return kept


def relative_paths(
    problems: Problems, items: list[tuple[str, Position]], label: str
) -> list[tuple[str, Position]]:
    """The items that are paths inside the workspace: not empty, not absolute, no ".."."""
    kept = []
    for item, position in items:
        parts = item.replace("\\", "/").split("/")
        if not item.strip():
            problems.add(position, f"{label} holds an empty path: name a file, directory or glob")
        elif item.startswith(("/", "\\", "~")) or ".." in parts:
            problems.add(
                position,
                f"{label} holds {shown(item)}: paths must be relative to the workspace, "
                'without ".."',
            )
        else:
            kept.append((item, position))
    return kept


def variables(problems: Problems, mapping: CommentedMap, key: str, owner: str) -> dict[str, str]:
    """Environment variables: valid names mapped to strings.

    Plain integers and true/false are taken as the text written; numbers with a fraction
    and dates already are text (see ``spec_yaml``).
    """
    value = mapping[key]
    if value is None:
        return {}
    if not isinstance(value, CommentedMap):
        problems.add(
            value_position(mapping, key),
            f"variables{owner} must be a mapping of names to values, not {kind(value)}",
        )
        return {}
    found: dict[str, str] = {}
    for name in string_keys(problems, value, None, f"in variables{owner}"):
        label = f'variable "{name}"{owner}'
        if not VARIABLE_NAME.fullmatch(name):
            problems.add(
                key_position(value, name),
                f"variable name {shown(name)}{owner} must start with a letter or _ and hold "
                "only letters, digits and _",
            )
            continue
        text = _variable_value(problems, value, name, label)
        if text is not None:
            found[name] = text
    return found


def _variable_value(problems: Problems, mapping: CommentedMap, name: str, label: str) -> str | None:
    value: Any = mapping[name]
    position = value_position(mapping, name)
    if value is None:
        problems.add(position, f'{label} has no value: write {name}: "" for an empty one')
        return None
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if isinstance(value, str):
        if "\0" in value:
            problems.add(position, f"{label} holds a NUL character, which the environment cannot")
            return None
        return str(value)
    if isinstance(value, int):  # 0x1F, 0o17, 1_000, 007: YAML would pass on another number
        problems.add(position, f"{label} must be quoted so it reaches the environment as written")
    else:
        problems.add(position, f"{label} must be a string, not {kind(value)}")
    return None


def choice(
    problems: Problems, mapping: CommentedMap, key: str, label: str, options: tuple[str, ...]
) -> str | None:
    """One of ``options``, or None after reporting what was written instead."""
    value = mapping[key]
    if isinstance(value, str) and value in options:
        return value
    hint = did_you_mean(value, options) if isinstance(value, str) else ""
    problems.add(
        value_position(mapping, key),
        f"{label} must be {one_of(options)}, not {_show(value)}{hint}",
    )
    return None


def whole_number(
    problems: Problems, mapping: CommentedMap, key: str, label: str, low: int, high: int
) -> int | None:
    """An integer from ``low`` to ``high``, or None after reporting it."""
    value = mapping[key]
    position = value_position(mapping, key)
    if not isinstance(value, int) or isinstance(value, bool):
        problems.add(
            position, f"{label} must be a whole number from {low} to {high}, not {_show(value)}"
        )
        return None
    if not low <= value <= high:
        problems.add(position, f"{label} must be {low} to {high}, not {value}")
        return None
    return int(value)
