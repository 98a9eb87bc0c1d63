"""The event log's hash chain, as pure rules: no Django, no I/O.

Each event carries ``prev_hash``, the ``hash`` of the event before it (``GENESIS`` for the
first), and its own ``hash``: the SHA-256 of the canonical JSON of its content together
with ``prev_hash``. A changed row no longer matches its hash; a removed or inserted row
breaks the link of the row after it. Walking the log in id order finds both.

The canonical JSON (what is hashed): one object with the keys ``actor_id``,
``actor_name``, ``at`` (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), ``channel``, ``data``,
``ip``, ``kind``, ``prev_hash``, ``service`` and ``subject``; keys sorted at every level,
no spaces, non-ASCII escaped, and a float with no fraction written as an integer (a JSON
column may give ``1e16`` back as ``10000000000000000``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
CONTENT = ("at", "actor_id", "actor_name", "channel", "ip", "kind", "subject", "service", "data")
MAX_PROBLEMS = 1000  # kept in a report; the rest are only counted


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def canonical(content: Mapping[str, Any], prev_hash: str) -> bytes:
    """The bytes that are hashed for an event of ``content`` (the ``CONTENT`` fields)."""
    at = content["at"]
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValueError(f"an event's time must be an aware datetime, not {at!r}")
    document = {key: content[key] for key in CONTENT}
    document["at"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    document["data"] = _plain(content["data"])
    document["prev_hash"] = prev_hash
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")


def digest(content: Mapping[str, Any], prev_hash: str) -> str:
    """The ``hash`` of an event of ``content`` that follows the event hashed ``prev_hash``."""
    return hashlib.sha256(canonical(content, prev_hash)).hexdigest()


@dataclass(frozen=True)
class Link:
    """One event as the walk reads it: its id, content and the two hashes it carries."""

    id: int
    content: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Problem:
    """Something wrong at one event: ``kind`` is changed, unchained, gap, link or anchor."""

    event: int
    kind: str
    message: str


@dataclass
class Report:
    """What a walk of the log found."""

    events: int = 0
    first: int | None = None
    last: int | None = None
    head: str = GENESIS  # the hash of the newest event walked
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0  # found beyond MAX_PROBLEMS

    @property
    def ok(self) -> bool:
        return not self.problems and not self.more_problems

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems += 1

    def as_dict(self) -> dict[str, Any]:
        """The report as the API and ``obeya audit verify --json`` give it."""
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "events": self.events,
            "first": self.first,
            "last": self.last,
            "head": self.head,
            "problems": [
                {"event": p.event, "kind": p.kind, "message": p.message} for p in self.problems
            ],
            "more_problems": self.more_problems,
        }

    def summary(self) -> str:
        if self.ok:
            if not self.events:
                return "audit log intact: no events yet"
            return (
                f"audit log intact: {self.events} events (#{self.first} to #{self.last}), "
                f"head #{self.last} {self.head}"
            )
        count = len(self.problems) + self.more_problems
        return f"audit log BROKEN: {count} problem(s) in {self.events} events"


class Walk:
    """Checks events fed in id order, in as many batches as it takes."""

    def __init__(self, expect: Mapping[int, str] | None = None) -> None:
        self.report = Report()
        self._previous: Link | None = None
        self._expect = dict(expect or {})  # anchors: event id -> the hash it had

    def feed(self, links: Iterable[Link]) -> None:
        for link in links:
            self._check(link)

    def _check(self, link: Link) -> None:
        report, previous = self.report, self._previous
        report.events += 1
        report.first = link.id if report.first is None else report.first
        report.last, report.head = link.id, link.hash
        if not link.hash:
            report.add(
                Problem(
                    link.id,
                    "unchained",
                    f"event #{link.id} has no hash: it was written "
                    "around the event log (record() chains every event)",
                )
            )
        elif digest(link.content, link.prev_hash) != link.hash:
            report.add(
                Problem(
                    link.id,
                    "changed",
                    f"event #{link.id} was changed after it was "
                    "written: its content no longer matches its hash",
                )
            )
        expected = previous.hash if previous is not None else GENESIS
        if link.prev_hash != expected:
            report.add(self._broken(link, previous))
        anchored = self._expect.pop(link.id, None)
        if anchored is not None and anchored != link.hash:
            report.add(
                Problem(
                    link.id,
                    "anchor",
                    f"event #{link.id} no longer has the hash "
                    f"{anchored} it had when it was noted: the log up to it was rewritten",
                )
            )
        self._previous = link

    @staticmethod
    def _broken(link: Link, previous: Link | None) -> Problem:
        if previous is None:
            return Problem(
                link.id,
                "gap",
                f"event #{link.id}, the oldest in the log, is chained to an event before it: "
                "the start of the log was removed",
            )
        if link.id > previous.id + 1:
            return Problem(
                link.id,
                "gap",
                f"events are missing between #{previous.id} and #{link.id}: #{link.id} is "
                "chained to an event that is no longer in the log",
            )
        return Problem(
            link.id,
            "link",
            f"event #{link.id} is not chained to #{previous.id}, the event before it: an "
            "event between them was removed, or one of them was rewritten",
        )

    def finish(self) -> Report:
        """The report, with anchors whose events were never reached."""
        for event, anchored in sorted(self._expect.items()):
            self.report.add(
                Problem(
                    event,
                    "anchor",
                    f"event #{event} (noted with the hash {anchored}) is no longer in the log",
                )
            )
        self._expect.clear()
        return self.report


def parse_anchor(text: str) -> tuple[int, str]:
    """``ID:HASH`` (as ``obeya audit verify`` prints the head) into its parts."""
    number, _, value = text.strip().partition(":")
    value = value.strip().lower()
    if not number.strip().isdigit() or len(value) != 64 or set(value) - set("0123456789abcdef"):
        raise ValueError(
            f"anchor {text!r}: give EVENT_ID:HASH, the id and 64-hex-digit hash of an event "
            "as `obeya audit verify` printed them"
        )
    return int(number), value
