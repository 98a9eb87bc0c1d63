"""The flow checks of syllabus §3.4 as pure functions: is quality built in at each stage
(JKK), is done defined, is the deployment rhythm steady, how much work is in progress,
and who holds several items at once.

No I/O here: the caller reads one service's events and its board and passes them in.
Definitions:

- the **stages** a change passes are the commit stage (a pipeline run's build and tests),
  then the environments by tier: development, testing, staging, production. A stage
  *passed* a sha when a run of it finished ``succeeded``, when a run of it asked for a
  deployment (deploy jobs wait for the build and tests), or when a deployment of it to
  that tier succeeded;
- a **defect escaped** when a ``deploy`` to staging or production failed (``failed``,
  ``rolled_back``, rolled back later by hand, or named as an incident's cause) and an
  earlier stage had passed its sha first. A failed default-branch run is the commit stage
  catching a defect itself: it is counted, as the good case, not as an escape;
- **work in progress** sits in the columns from the first ``starts_work`` column up to
  the first ``is_done`` column after it; on a board that marks no such column, in every
  column but the first and the done ones.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from obeya.metrics.dora import Record, production_deployments
from obeya.metrics.model import Board, BoardCard, BoardColumn, Check, Result

TIERS = ("development", "testing", "staging", "production")
LATE_TIERS = ("staging", "production")  # where a failure means the defect got through
WIP_PER_PERSON = 2


def checks(
    records: Sequence[Record], board: Board, window: tuple[datetime, datetime]
) -> list[Check]:
    """The five flow checks for one service over ``window`` = [start, end), in order:
    defect_escaped, done_defined, rhythm, wip, multitasking."""
    ordered = sorted(records, key=lambda r: (r.at, r.id))
    return [
        _defect_escaped(ordered, window),
        _done_defined(board),
        _rhythm(ordered, window),
        _wip(board),
        _multitasking(board),
    ]


def in_words(seconds: float) -> str:
    """A duration as a wall screen says it: "45 s", "12 min", "3.5 h", "2.1 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 ", " ")
    return f"{seconds / 86400:.1f} days".replace(".0 ", " ")


def _within(window: tuple[datetime, datetime], at: datetime) -> bool:
    return window[0] <= at < window[1]


# ---- did a defect pass to a later stage? ---------------------------------------------------


@dataclass
class _Stages:
    """What each stage has let through so far, and the deployments seen."""

    commit: dict[str, int | None] = field(default_factory=dict)  # sha → run that passed it
    tiers: dict[str, set[str]] = field(default_factory=dict)  # sha → tiers it succeeded in
    deployments: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    installed: dict[tuple[str, str], int] = field(default_factory=dict)  # (tier, release)

    def see(self, record: Record) -> None:
        data, kind = record.data, record.kind
        sha = str(data.get("sha") or "")
        if kind == "run.finished" and data.get("status") == "succeeded" and sha:
            self.commit.setdefault(sha, _int(data.get("number")))
        if not kind.startswith("deployment.") or not isinstance(data.get("deployment"), int):
            return
        self.deployments.setdefault(data["deployment"], data)
        if kind == "deployment.requested" and data.get("run") is not None and sha:
            self.commit.setdefault(sha, _int(data.get("run")))
        if kind == "deployment.succeeded" and data.get("kind", "deploy") == "deploy":
            self.tiers.setdefault(sha, set()).add(str(data.get("tier")))
            if data.get("release"):
                self.installed[(str(data.get("tier")), str(data["release"]))] = data["deployment"]

    def is_late_deploy(self, number: Any) -> bool:
        """Whether ``number`` is a known deploy (not a rollback) to staging or production."""
        known = self.deployments.get(number) if isinstance(number, int) else None
        return (
            known is not None
            and known.get("kind", "deploy") == "deploy"
            and known.get("tier") in LATE_TIERS
        )

    def tier_and_sha(self, number: int) -> tuple[str, str]:
        known = self.deployments[number]
        return str(known.get("tier")), str(known.get("sha") or "")

    def earlier_pass(self, sha: str, tier: str) -> str | None:
        """The latest stage before ``tier`` that passed ``sha``, in words; None if none."""
        before = TIERS[: TIERS.index(tier)] if tier in TIERS else ()
        for earlier in reversed(before):
            if earlier in self.tiers.get(sha, set()):
                return earlier
        if sha in self.commit:
            run = self.commit[sha]
            return "the commit stage" + (f" (run #{run})" if run is not None else "")
        return None

    def failed(self, record: Record) -> tuple[int, str] | None:
        """The deploy this record shows failing in staging or production, and how."""
        data, kind = record.data, record.kind
        number = data.get("deployment")
        if kind in {"deployment.failed", "deployment.rolled_back"}:
            how = "rolled back" if kind.endswith("rolled_back") or data.get("rolled_back") else ""
            failure = (number, how or "failed") if isinstance(number, int) else None
        elif kind == "deployment.succeeded" and data.get("kind") == "rollback":
            replaced = self.installed.get(
                (str(data.get("tier")), str(data.get("previous_release") or ""))
            )
            failure = (replaced, "rolled back by hand") if replaced is not None else None
        elif kind == "incident.caused_by" and isinstance(number, int):
            failure = (number, f"caused incident {data.get('number')}")
        else:
            return None
        return failure if failure is not None and self.is_late_deploy(failure[0]) else None


def _defect_escaped(ordered: Sequence[Record], window: tuple[datetime, datetime]) -> Check:
    stages = _Stages()
    ended: set[int] = set()  # staging and production deploys that ended in the window
    failed: set[int] = set()
    escaped: list[dict[str, Any]] = []
    unvouched: list[int] = []
    caught: dict[int | None, None] = {}  # failed default-branch runs, in order, once each
    for record in ordered:
        stages.see(record)
        if not _within(window, record.at):
            continue
        data = record.data
        if (
            record.kind == "run.finished"
            and data.get("default_branch")
            and data.get("status") == "failed"
        ):
            caught[_int(data.get("number"))] = None
        if stages.is_late_deploy(data.get("deployment")) and record.kind in {
            "deployment.succeeded",
            "deployment.failed",
            "deployment.rolled_back",
        }:
            ended.add(data["deployment"])
        found = stages.failed(record)
        if found is None or found[0] in failed:
            continue
        number, how = found
        failed.add(number)
        ended.add(number)
        tier, sha = stages.tier_and_sha(number)
        earlier = stages.earlier_pass(sha, tier)
        if earlier is None:
            unvouched.append(number)
            continue
        escaped.append(
            {
                "what": "deployment",
                "id": number,
                "stage": tier,
                "sha": sha,
                "why": f"{how} in {tier} after {earlier} had passed it",
                "at": record.at.isoformat(),
            }
        )
    detail = {
        "deployments": len(ended),
        "escaped": len(escaped),
        "caught_in_commit_stage": list(caught),
        "failed_unvouched": unvouched,
    }
    title = "Did a defect pass to a later stage?"
    caught_words = (
        f"; the commit stage caught {len(caught)} failure{'s' * (len(caught) != 1)} itself"
        if caught
        else ""
    )
    if not ended:
        return Check(
            "defect_escaped",
            title,
            "no data",
            None,
            f"No staging or production deployment ended in this window{caught_words}.",
            detail=detail,
        )
    seen_tiers = {stages.tier_and_sha(number)[0] for number in ended}
    tiers = " and ".join(tier for tier in LATE_TIERS if tier in seen_tiers)
    count = f"{len(escaped)} of {len(ended)}" if escaped else f"None of the {len(ended)}"
    return Check(
        "defect_escaped",
        title,
        "fail" if escaped else "pass",
        float(len(escaped)),
        f"{count} {tiers} deployments failed after an earlier stage had passed them{caught_words}.",
        tuple(escaped),
        detail,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


# ---- is done defined? --------------------------------------------------------------------


def _done_defined(board: Board) -> Check:
    """Every column a card leaves says when it may leave: a checklist item or a gate. The
    done column(s) at the end of the board are where cards stay, so they need none."""
    title = "Is done defined for every column?"
    columns = list(board.columns)
    while columns and columns[-1].is_done:
        columns.pop()
    if not columns:
        return Check(
            "done_defined", title, "no data", None, "The board has no column a card leaves."
        )
    missing = [c.name for c in columns if not c.gates and not any(i.strip() for i in c.checklist)]
    detail = {"columns": len(columns), "missing": missing}
    if not missing:
        return Check(
            "done_defined",
            title,
            "pass",
            0.0,
            f"All {len(columns)} columns before done say when a card is done there.",
            detail=detail,
        )
    names = ", ".join(f'"{name}"' for name in missing)
    return Check(
        "done_defined",
        title,
        "fail",
        float(len(missing)),
        f"{len(missing)} of {len(columns)} columns {'has' if len(missing) == 1 else 'have'}"
        f" no checklist or gate: {names}.",
        tuple({"what": "column", "id": name} for name in missing),
        detail,
    )


# ---- is the deployment rhythm steady? -------------------------------------------------------


def _rhythm(ordered: Sequence[Record], window: tuple[datetime, datetime]) -> Check:
    """Coefficient of variation of the gaps between successful production deploys."""
    title = "Is the deployment rhythm steady?"
    done = [
        d
        for d in production_deployments(ordered)
        if d.kind == "deploy" and d.status == "succeeded" and _within(window, d.ended)
    ]
    if len(done) < 3:
        return Check(
            "rhythm",
            title,
            "no data",
            None,
            f"{len(done)} successful production deployment{'' if len(done) == 1 else 's'}"
            " in this window: a rhythm needs at least 3.",
            detail={"deployments": len(done)},
        )
    gaps = [(b.ended - a.ended).total_seconds() for a, b in pairwise(done)]
    mean = statistics.fmean(gaps)
    spread = statistics.pstdev(gaps)
    # Deployments all at one instant have no gap to vary: as steady as it gets.
    variation = spread / mean if mean > 0 else 0.0
    result: Result = "pass" if variation <= 1.0 else "warn" if variation <= 2.0 else "fail"
    how = {"pass": "a steady", "warn": "an uneven", "fail": "a bursty"}[result]
    return Check(
        "rhythm",
        title,
        result,
        variation,
        f"{len(done)} production deployments, one every {in_words(mean)} on average, "
        f"at {how} rhythm (variation {variation:.2f}).",
        tuple({"what": "deployment", "id": d.id, "at": d.ended.isoformat()} for d in done),
        {"mean_interval_s": mean, "stdev_s": spread, "deployments": len(done)},
    )


# ---- how much work is in progress, and who holds several items? ---------------------------


def work_columns(board: Board) -> list[BoardColumn]:
    """The columns whose cards are being worked on (see the module docstring)."""
    columns = list(board.columns)
    start = next((i for i, c in enumerate(columns) if c.starts_work), None)
    if start is None:
        return [c for i, c in enumerate(columns) if i > 0 and not c.is_done]
    end = next((i for i in range(start, len(columns)) if columns[i].is_done), len(columns))
    return columns[start:end]


def _work_cards(board: Board, columns: Sequence[BoardColumn]) -> list[BoardCard]:
    position = {c.name: i for i, c in enumerate(columns)}
    cards = [card for card in board.cards if card.column in position]
    return sorted(cards, key=lambda card: (position[card.column], card.key))


def _wip(board: Board) -> Check:
    """Cards in progress. Fails when a column (any column of the board) holds more than its
    WIP limit; warns when there are more than two cards per person assigned to them, and
    with nobody assigned counts the team as one person (more than two cards warn)."""
    title = "How much work is in progress?"
    columns = work_columns(board)
    if not columns:
        return Check(
            "wip",
            title,
            "no data",
            None,
            "The board has no column for work in progress: mark where work starts.",
        )
    cards = _work_cards(board, columns)
    people = {person for card in cards for person in card.assignees}
    held = {c.name: sum(1 for card in board.cards if card.column == c.name) for c in board.columns}
    over = [c for c in board.columns if c.wip_limit is not None and held[c.name] > c.wip_limit]
    detail = {
        "columns": {c.name: {"cards": held[c.name], "wip_limit": c.wip_limit} for c in columns},
        "people": len(people),
        "over_limit": [c.name for c in over],
    }
    evidence = tuple(
        {"what": "card", "id": card.key, "column": card.column, "assignees": list(card.assignees)}
        for card in cards
    )
    who = f"{len(people)} {'person' if len(people) == 1 else 'people'}"
    result: Result
    if over:
        result = "fail"
        limits = ", ".join(f'"{c.name}" holds {held[c.name]}/{c.wip_limit}' for c in over)
        summary = f"{len(cards)} items in progress and over the WIP limit: {limits}."
    elif len(cards) > WIP_PER_PERSON * max(len(people), 1):
        result = "warn"
        summary = (
            f"{len(cards)} items in progress for {who}: more than {WIP_PER_PERSON} each."
            if people
            else f"{len(cards)} items in progress and nobody assigned to them."
        )
    else:
        result = "pass"
        summary = f"{len(cards)} items in progress for {who}, within every WIP limit."
    return Check("wip", title, result, float(len(cards)), summary, evidence, detail)


def _multitasking(board: Board) -> Check:
    title = "Who holds more than one item?"
    columns = work_columns(board)
    holding: dict[str, list[str]] = {}
    for card in _work_cards(board, columns):
        for person in card.assignees:
            holding.setdefault(person, []).append(card.key)
    if not holding:
        return Check(
            "multitasking", title, "no data", None, "Nobody is assigned to a card in progress."
        )
    several = sorted(
        ((person, keys) for person, keys in holding.items() if len(keys) > 1),
        key=lambda item: (-len(item[1]), item[0]),
    )
    detail = {"people": len(holding), "holding": {p: len(k) for p, k in sorted(holding.items())}}
    if not several:
        return Check(
            "multitasking",
            title,
            "pass",
            0.0,
            f"Each of the {len(holding)} people with work in progress holds one item.",
            detail=detail,
        )
    names = ", ".join(f"{person} ({len(keys)})" for person, keys in several)
    return Check(
        "multitasking",
        title,
        "warn",
        float(len(several)),
        f"{len(several)} of {len(holding)} people hold more than one item: {names}.",
        tuple({"what": "person", "id": person, "cards": keys} for person, keys in several),
        detail,
    )
