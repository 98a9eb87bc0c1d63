"""The flow checks (§3.4) on hand-built histories and boards with known answers, and
properties that must hold for any of them. Pure: no database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obeya.metrics import flow
from obeya.metrics.dora import Record
from obeya.metrics.model import Board, BoardCard, BoardColumn, Check

WINDOW = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC))
EMPTY = Board((), ())
IDS = ["defect_escaped", "done_defined", "rhythm", "wip", "multitasking"]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


class History:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def add(self, when: datetime, event: str, **data: object) -> None:
        self.records.append(Record(len(self.records) + 1, when, event, "shop", data))

    def run(self, number: int, sha: str, end: datetime, status: str = "succeeded") -> None:
        self.add(
            end - timedelta(minutes=5), "run.created", number=number, sha=sha, default_branch=True
        )
        self.add(end, "run.finished", number=number, sha=sha, status=status, default_branch=True)

    def deploy(
        self,
        number: int,
        end: datetime,
        *,
        tier: str = "production",
        sha: str = "a",
        run: int | None = None,
        outcome: str = "succeeded",
        kind: str = "deploy",
        release: str = "",
        previous: str = "",
    ) -> None:
        common = {
            "deployment": number,
            "tier": tier,
            "kind": kind,
            "sha": sha,
            "run": run,
            "release": release or f"r{number}",
            "previous_release": previous,
        }
        self.add(end - timedelta(minutes=10), "deployment.requested", **common)
        self.add(end - timedelta(minutes=9), "deployment.started", **common)
        if outcome == "rolled_back":
            self.add(end - timedelta(minutes=1), "deployment.failed", rolled_back=True, **common)
        self.add(end, f"deployment.{outcome}", **common)


def check(records: list[Record], board: Board, check_id: str) -> Check:
    found = {c.id: c for c in flow.checks(records, board, WINDOW)}
    return found[check_id]


def test_the_checks_come_in_the_documented_order() -> None:
    assert [c.id for c in flow.checks([], EMPTY, WINDOW)] == IDS


# ---- defect_escaped ----------------------------------------------------------------------


def escapes() -> History:
    h = History()
    h.run(1, "a", at(5, 9))
    h.deploy(10, at(5, 9, 30), tier="testing", sha="a", run=1)  # staging is the later pass
    h.deploy(1, at(5, 10), tier="staging", sha="a", run=1)
    h.deploy(2, at(5, 11), sha="a", run=1, outcome="rolled_back")  # failed then rolled back
    h.run(2, "b", at(6, 9), status="failed")  # caught where it should be
    h.deploy(3, at(7, 10), tier="staging", sha="c", run=3, outcome="failed")
    h.deploy(4, at(8, 10), sha="d")  # by hand, no stage ever passed d
    h.add(at(8, 11), "incident.caused_by", number=7, deployment=4)
    h.deploy(5, at(9, 10), sha="a", run=1, release="r5")
    h.deploy(6, at(9, 12), sha="a", kind="rollback", release="r1", previous="r5")
    h.run(5, "e", at(12, 9))
    h.deploy(7, at(12, 10), sha="e", run=5)
    h.add(at(12, 11), "incident.caused_by", number=8, deployment=7)
    h.deploy(8, at(13, 10), tier="testing", sha="f", run=6, outcome="failed")  # too early
    h.deploy(9, at(2, 10), sha="a", run=1, outcome="failed")  # before the window
    return h


def test_escaped_defects_are_counted_once_each_with_the_stage_that_passed_them() -> None:
    result = check(escapes().records, EMPTY, "defect_escaped")
    assert result.result == "fail"
    assert result.value == 4
    why = {e["id"]: e["why"] for e in result.evidence}
    assert why == {
        2: "rolled back in production after staging had passed it",
        3: "failed in staging after the commit stage (run #3) had passed it",
        5: "rolled back by hand in production after staging had passed it",
        7: "caused incident 8 in production after the commit stage (run #5) had passed it",
    }
    assert result.evidence[0] == {
        "what": "deployment",
        "id": 2,
        "stage": "production",
        "sha": "a",
        "why": why[2],
        "at": at(5, 10, 59).isoformat(),
    }
    assert result.detail["deployments"] == 6  # 1, 2, 3, 4, 5, 7: no rollback, no testing
    assert result.detail["failed_unvouched"] == [4]
    assert result.detail["caught_in_commit_stage"] == [2]
    assert result.summary == (
        "4 of 6 staging and production deployments failed after an earlier stage had passed "
        "them; the commit stage caught 1 failure itself."
    )


def test_no_escape_passes_and_counts_the_deployments() -> None:
    h = History()
    h.run(1, "a", at(5, 9))
    h.run(2, "b", at(5, 10), status="failed")
    h.run(2, "b", at(5, 11), status="failed")  # retried: the same run, counted once
    h.deploy(1, at(5, 10), tier="staging", run=1)
    h.deploy(2, at(5, 11), run=1)
    result = check(h.records, EMPTY, "defect_escaped")
    assert (result.result, result.value, result.evidence) == ("pass", 0, ())
    assert result.summary == (
        "None of the 2 staging and production deployments failed after an earlier stage had "
        "passed them; the commit stage caught 1 failure itself."
    )


def test_a_failure_no_stage_vouched_for_is_not_an_escape() -> None:
    h = History()
    h.deploy(1, at(6, 10), sha="x", outcome="failed")
    result = check(h.records, EMPTY, "defect_escaped")
    assert (result.result, result.value) == ("pass", 0)
    assert result.detail["failed_unvouched"] == [1]
    assert result.summary.startswith("None of the 1 production deployments")


def test_an_incident_found_in_the_window_counts_for_a_deployment_before_it() -> None:
    h = History()
    h.run(1, "a", at(2, 9))
    h.deploy(1, at(2, 10), run=1)
    h.add(at(6, 8), "incident.caused_by", number=1, deployment=1)
    result = check(h.records, EMPTY, "defect_escaped")
    assert (result.result, result.value, result.detail["deployments"]) == ("fail", 1, 1)
    assert result.summary.startswith("1 of 1 production deployments failed")


def test_no_staging_or_production_deployment_is_no_data() -> None:
    h = History()
    h.run(1, "a", at(6, 9), status="failed")
    h.deploy(1, at(6, 10), tier="testing", run=1, outcome="failed")
    result = check(h.records, EMPTY, "defect_escaped")
    assert (result.result, result.value) == ("no data", None)
    assert result.summary == (
        "No staging or production deployment ended in this window; "
        "the commit stage caught 1 failure itself."
    )


# ---- done_defined ------------------------------------------------------------------------


def column(
    name: str,
    *,
    limit: int | None = None,
    checklist: tuple[str, ...] = (),
    gates: tuple[str, ...] = (),
    starts: bool = False,
    done: bool = False,
) -> BoardColumn:
    return BoardColumn(name, limit, checklist, gates, starts, done)


def test_columns_without_checklist_or_gate_fail_done_defined() -> None:
    board = Board(
        (
            column("Backlog", checklist=("  ",)),  # a blank item defines nothing
            column("Ready", checklist=("estimated",)),
            column("Doing", gates=("tests green",), starts=True),
            column("Review"),
            column("Done", done=True),
        ),
        (),
    )
    result = check([], board, "done_defined")
    assert (result.result, result.value) == ("fail", 2)
    assert result.evidence == (
        {"what": "column", "id": "Backlog"},
        {"what": "column", "id": "Review"},
    )
    assert result.summary == '2 of 4 columns have no checklist or gate: "Backlog", "Review".'


def test_only_the_done_columns_at_the_end_need_no_definition() -> None:
    board = Board(
        (
            column("Doing", checklist=("reviewed",)),
            column("Built", done=True),  # cards leave it for Deployed: it needs one
            column("Deployed", gates=("smoke test",)),
            column("Done", done=True),
            column("Archived", done=True),
        ),
        (),
    )
    result = check([], board, "done_defined")
    assert (result.result, result.value, result.detail["missing"]) == ("fail", 1, ["Built"])
    defined = Board(tuple(c for c in board.columns if c.name != "Built"), ())
    passed = check([], defined, "done_defined")
    assert (passed.result, passed.value) == ("pass", 0)
    assert passed.summary == "All 2 columns before done say when a card is done there."


@pytest.mark.parametrize("columns", [(), (column("Done", done=True),)])
def test_a_board_without_columns_to_leave_has_no_data_on_done(
    columns: tuple[BoardColumn, ...],
) -> None:
    result = check([], Board(columns, ()), "done_defined")
    assert (result.result, result.value) == ("no data", None)


# ---- rhythm ------------------------------------------------------------------------------


def deployed_after(gaps_h: list[float]) -> History:
    h = History()
    when = at(5, 0)
    h.deploy(1, when)
    for number, gap in enumerate(gaps_h, start=2):
        when += timedelta(hours=gap)
        h.deploy(number, when)
    return h


def test_evenly_spaced_deployments_have_a_steady_rhythm() -> None:
    h = deployed_after([24, 24, 24])
    h.deploy(10, at(6, 12), tier="staging")  # neither staging,
    h.deploy(11, at(6, 13), outcome="rolled_back")  # nor a failure,
    h.deploy(12, at(6, 14), kind="rollback")  # nor a rollback,
    h.deploy(13, at(20, 14))  # nor after the window changes the rhythm
    result = check(h.records, EMPTY, "rhythm")
    assert (result.result, result.value) == ("pass", 0.0)
    assert result.detail == {"mean_interval_s": 86400.0, "stdev_s": 0.0, "deployments": 4}
    assert [e["id"] for e in result.evidence] == [1, 2, 3, 4]
    assert result.summary == (
        "4 production deployments, one every 24 h on average, at a steady rhythm (variation 0.00)."
    )


@pytest.mark.parametrize(
    ("gaps", "expected", "variation"),
    [
        ([10, 14, 12], "pass", 0.136),
        ([0, 2], "pass", 1.0),  # the limits belong to the better band
        ([0, 0, 3], "warn", 2**0.5),
        ([0, 0, 0, 0, 5], "warn", 2.0),
        ([0, 0, 0, 0, 0, 6], "fail", 5**0.5),
        ([1, 1, 1, 49], "warn", 432**0.5 / 13),  # mean 13 h, population stdev √432 h
        ([1] * 9 + [100], "fail", 882.09**0.5 / 10.9),
    ],
)
def test_the_rhythm_grades_the_coefficient_of_variation(
    gaps: list[float], expected: str, variation: float
) -> None:
    result = check(deployed_after(gaps).records, EMPTY, "rhythm")
    assert result.result == expected
    assert result.value == pytest.approx(variation, abs=1e-3)


def test_fewer_than_three_deployments_give_no_rhythm() -> None:
    result = check(deployed_after([24]).records, EMPTY, "rhythm")
    assert (result.result, result.value) == ("no data", None)
    assert result.summary.startswith("2 successful production deployments in this window")


# ---- wip and multitasking ----------------------------------------------------------------


def card(key: str, where: str, *people: str) -> BoardCard:
    return BoardCard(key, key, where, people, at(5, 9))


def team_board(*cards: BoardCard, doing_limit: int | None = 3) -> Board:
    columns = (
        column("Backlog"),
        column("Ready"),
        column("Doing", limit=doing_limit, starts=True),
        column("Review", limit=3),
        column("Done", done=True),
        column("Archive"),  # after done: not in progress
    )
    backlog = tuple(card(f"B{i}", "Backlog", "ana") for i in range(4))
    return Board(columns, backlog + cards + (card("Z", "Done", "ana"), card("Y", "Archive")))


def test_wip_counts_the_cards_between_starting_work_and_done() -> None:
    board = team_board(card("A", "Doing", "ana"), card("B", "Doing", "bo"), card("C", "Review"))
    result = check([], board, "wip")
    assert (result.result, result.value) == ("pass", 3)
    assert [(e["id"], e["column"]) for e in result.evidence] == [
        ("A", "Doing"),
        ("B", "Doing"),
        ("C", "Review"),
    ]
    assert result.detail["columns"] == {
        "Doing": {"cards": 2, "wip_limit": 3},
        "Review": {"cards": 1, "wip_limit": 3},
    }
    assert result.summary == "3 items in progress for 2 people, within every WIP limit."


def test_wip_over_a_column_limit_fails() -> None:
    board = team_board(*(card(k, "Doing", k.lower()) for k in "ABCD"))
    result = check([], board, "wip")
    assert (result.result, result.value, result.detail["over_limit"]) == ("fail", 4, ["Doing"])
    assert result.summary == '4 items in progress and over the WIP limit: "Doing" holds 4/3.'


def test_more_than_two_items_per_person_warns() -> None:
    board = team_board(
        *(card(k, "Doing", "ana") for k in "ABCD"), card("E", "Review", "bo"), doing_limit=None
    )
    result = check([], board, "wip")
    assert (result.result, result.value) == ("warn", 5)
    assert result.summary == "5 items in progress for 2 people: more than 2 each."
    fewer = team_board(*(card(k, "Doing", "ana") for k in "AB"), card("E", "Review", "bo"))
    assert check([], fewer, "wip").result == "pass"


def test_unassigned_work_counts_as_one_persons() -> None:
    three = team_board(card("A", "Doing"), card("B", "Doing"), card("C", "Review"))
    result = check([], three, "wip")
    assert (result.result, result.summary) == (
        "warn",
        "3 items in progress and nobody assigned to them.",
    )
    two = team_board(card("A", "Doing"), card("B", "Doing"))
    assert check([], two, "wip").result == "pass"


def test_without_a_starts_work_column_every_middle_column_is_in_progress() -> None:
    columns = (column("Todo"), column("Doing"), column("Review"), column("Done", done=True))
    cards = (card("A", "Todo", "ana"), card("B", "Doing", "ana"), card("C", "Review", "bo"))
    result = check([], Board(columns, cards), "wip")
    assert [e["id"] for e in result.evidence] == ["B", "C"]
    no_middle = Board((column("Todo"), column("Done", done=True)), cards)
    for check_id in ("wip", "multitasking"):
        assert check([], no_middle, check_id).result == "no data"


def test_people_holding_several_items_are_named() -> None:
    board = team_board(
        card("A", "Doing", "bo"),
        card("B", "Doing", "bo", "ana"),
        card("C", "Review", "ana"),
        card("D", "Review", "cy"),
        card("E", "Review", "bo"),
    )
    result = check([], board, "multitasking")
    assert (result.result, result.value) == ("warn", 2)
    assert result.evidence == (
        {"what": "person", "id": "bo", "cards": ["A", "B", "E"]},
        {"what": "person", "id": "ana", "cards": ["B", "C"]},
    )
    assert result.summary == "2 of 3 people hold more than one item: bo (3), ana (2)."


def test_one_item_each_passes_multitasking_and_nobody_assigned_is_no_data() -> None:
    board = team_board(card("A", "Doing", "ana"), card("B", "Review", "bo"))
    result = check([], board, "multitasking")
    assert (result.result, result.value) == ("pass", 0)
    unassigned = check([], team_board(card("A", "Doing")), "multitasking")
    assert (unassigned.result, unassigned.value) == ("no data", None)


def test_durations_in_words() -> None:
    assert [flow.in_words(s) for s in (45, 720, 3 * 3600, 12600, 2 * 86400)] == [
        "45 s",
        "12 min",
        "3 h",
        "3.5 h",
        "2 days",
    ]


# ---- properties --------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[Record]:
    h = History()
    for number in range(1, draw(st.integers(0, 10)) + 1):
        end = WINDOW[0] + timedelta(minutes=draw(st.integers(-3000, 21000)))
        sha = draw(st.sampled_from("abc"))
        if draw(st.booleans()):
            h.run(
                number,
                sha,
                end - timedelta(hours=1),
                draw(st.sampled_from(["succeeded", "failed"])),
            )
        h.deploy(
            number,
            end,
            tier=draw(st.sampled_from(["testing", "staging", "production"])),
            sha=sha,
            run=draw(st.sampled_from([None, number])),
            outcome=draw(st.sampled_from(["succeeded", "failed", "rolled_back"])),
            kind=draw(st.sampled_from(["deploy", "deploy", "rollback"])),
            previous=f"r{draw(st.integers(1, number))}",
        )
        if draw(st.booleans()):
            h.add(
                end + timedelta(minutes=draw(st.integers(1, 900))),
                "incident.caused_by",
                number=number,
                deployment=draw(st.integers(1, number)),
            )
    return h.records


@st.composite
def boards(draw: st.DrawFn) -> Board:
    names = [f"c{i}" for i in range(draw(st.integers(0, 6)))]
    columns = tuple(
        column(
            name,
            limit=draw(st.none() | st.integers(0, 4)),
            checklist=draw(st.sampled_from([(), ("",), ("ok",)])),
            gates=draw(st.sampled_from([(), ("green",)])),
            starts=draw(st.booleans()),
            done=draw(st.booleans()),
        )
        for name in names
    )
    people = st.lists(st.sampled_from(["ana", "bo", "cy"]), max_size=2, unique=True)
    cards = tuple(
        card(f"K{i}", draw(st.sampled_from(names)), *draw(people))
        for i in range(draw(st.integers(0, 10) if names else st.just(0)))
    )
    return Board(columns, cards)


@settings(max_examples=80, deadline=None)
@given(histories(), boards(), st.randoms(use_true_random=False))
def test_properties_of_any_history_and_board(
    records: list[Record], board: Board, rng: random.Random
) -> None:
    result = flow.checks(records, board, WINDOW)
    assert [c.id for c in result] == IDS
    for c in result:
        assert c.result in {"pass", "warn", "fail", "no data"}
        assert (c.value is None) == (c.result == "no data")
        assert c.value is None or c.value >= 0
        assert c.summary.endswith(".") and "\n" not in c.summary
    escaped, _, _, wip, _ = result
    if escaped.value is not None:
        assert escaped.value == len(escaped.evidence) <= escaped.detail["deployments"]
    if wip.value is not None:
        assert wip.value == len(wip.evidence) <= len(board.cards)
    shuffled = records[:]
    rng.shuffle(shuffled)
    cards = list(board.cards)
    rng.shuffle(cards)
    assert flow.checks(shuffled, Board(board.columns, tuple(cards)), WINDOW) == result
