"""Board rules: WIP limits and the definition of done that guards leaving a column. Pure."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_COLUMNS: tuple[tuple[str, int | None, bool, bool, bool, list[str], list[str]], ...] = (
    # name, WIP limit, starts work, is done, receives first commit, done checklist, gates
    ("Backlog", None, False, False, False, [], []),
    ("Ready", 5, False, False, False, ["Acceptance criteria agreed", "Estimated"], []),
    ("In progress", 3, True, False, True, ["Code reviewed"], []),
    ("Review", 2, False, False, False, ["Demonstrated to the service master"], ["scenarios_pass"]),
    ("Done", None, False, True, False, [], []),
)
GATES = {
    "scenarios_pass": "its scenarios pass on the latest default-branch run",
}


@dataclass(frozen=True)
class MovePlan:
    """What a move needs: a WIP override, and why the gates refuse it (if they do)."""

    wip_full: bool
    wip_text: str
    gate_problems: tuple[str, ...]


def wip_text(count: int, limit: int | None) -> str:
    return f"{count}/{limit}" if limit is not None else f"{count}"


def wip_message(column: str, count: int, limit: int) -> str:
    return (
        f'WIP limit reached in "{column}" ({count}/{limit}): finish or move a card '
        "first, or override with a reason."
    )


def plan_move(
    *,
    target: str,
    count_in_target: int,
    limit: int | None,
    forward: bool,
    checklist: list[str],
    checked: list[str],
    gate_results: dict[str, str | None],
) -> MovePlan:
    """``gate_results`` maps each gate of the column being left to its problem (or None).

    Only moving forward has to meet the definition of done of the column left behind;
    moving a card back never does.
    """
    full = limit is not None and count_in_target >= limit
    problems: list[str] = []
    if forward:
        unticked = [item for item in checklist if item not in checked]
        if unticked:
            problems.append(f"definition of done not met: {', '.join(unticked)}")
        problems.extend(problem for problem in gate_results.values() if problem)
    return MovePlan(full, wip_text(count_in_target + 1, limit), tuple(problems))
