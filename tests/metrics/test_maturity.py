"""The maturity model: a service that shows everything reaches level 5 in every area; each
missing piece of evidence stops its area at the level below, and says what to do next."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obeya.metrics.dora import Dora, Number
from obeya.metrics.maturity import Area, assess, duration
from obeya.metrics.model import Check, Facts, Result
from obeya.metrics.valuestream import ValueStream

NOW = datetime(2026, 1, 19, tzinfo=UTC)
WINDOW = (NOW - timedelta(days=14), NOW)
CHECK_IDS = (
    "defect_escaped",
    "done_defined",
    "rhythm",
    "wip",
    "multitasking",
    "ci.commits_per_developer",
    "ci.commit_stage",
    "ci.red_share",
    "ci.time_to_fix",
)


def check(check_id: str, result: Result = "pass") -> Check:
    return Check(check_id, f"Question {check_id}?", result, None, f"{check_id} says {result}")


def passing() -> list[Check]:
    return [check(i) for i in CHECK_IDS]


def dora(
    frequency: str = "elite",
    lead_time: str = "elite",
    fail_rate: float | None = 0.04,
    recovery_s: float | None = 1800.0,
) -> Dora:
    return Dora(
        deployment_frequency=Number(1.5, frequency, (1, 2, 3)),
        change_lead_time=Number(3600.0, lead_time),
        change_fail_rate=Number(
            fail_rate,
            "no data" if fail_rate is None else "elite",
            (),
            {"deployments": 25},
        ),
        recovery_time=Number(
            recovery_s,
            "no data" if recovery_s is None else ("elite" if recovery_s <= 3600 else "high"),
            ("deployment 7",) if recovery_s is not None else (),
        ),
        rework_rate=Number(0.0, "no band (new in 2024)"),
    )


def never_deployed() -> Dora:
    return dataclasses.replace(dora(), deployment_frequency=Number(0.0, "no data"))


def stream(efficiency: float | None = 0.3) -> ValueStream:
    if efficiency is None:
        return ValueStream((), None, None, None, None, None, WINDOW)
    lead = 10 * 3600.0
    return ValueStream(
        (), lead * efficiency, lead * (1 - efficiency), lead, efficiency, "review", WINDOW
    )


def facts(**changes: Any) -> Facts:
    full = Facts(
        has_repository=True,
        pipeline_as_code=True,
        environments=("staging", "production"),
        protected_production=True,
        health_checked=("staging", "production"),
        drifted=(),
        secrets=2,
        monitors=3,
        slos=1,
        slo_budget_left=0.4,
        rpo_s=86400.0,
        rto_s=3600.0,
        last_backup_at=NOW - timedelta(hours=3),
        last_drill_at=NOW - timedelta(days=30),
        last_drill_passed=True,
        last_drill_s=1200.0,
        operation_stories=2,
        test_stories=5,
        user_stories=12,
    )
    return dataclasses.replace(full, **changes)


def levels(areas: list[Area]) -> dict[str, int]:
    return {a.id: a.level for a in areas}


def one(areas: list[Area], area_id: str) -> Area:
    return next(a for a in areas if a.id == area_id)


def step(areas: list[Area], area_id: str) -> str:
    found = one(areas, area_id).next_step
    assert found is not None
    return found


def test_five_areas_in_order_with_their_names() -> None:
    areas = assess(dora(), passing(), stream(), facts())
    assert [(a.id, a.name) for a in areas] == [
        ("flow", "Flow & collaboration"),
        ("ci", "Continuous integration"),
        ("cd", "Continuous delivery"),
        ("operations", "Operations & continuity"),
        ("data", "Data & configuration"),
    ]


def test_a_service_showing_everything_reaches_level_5_everywhere() -> None:
    areas = assess(dora(), passing(), stream(), facts())
    assert levels(areas) == {"flow": 5, "ci": 5, "cd": 5, "operations": 5, "data": 5}
    assert all(a.next_step is None for a in areas)
    assert all(c.met for a in areas for c in a.criteria)
    assert all({c.level for c in a.criteria} == {1, 2, 3, 4, 5} for a in areas)


def test_nothing_measured_is_level_1_with_the_first_step_named() -> None:
    empty = Dora(*(Number(None, "no data") for _ in range(5)))
    areas = assess(empty, [], ValueStream((), None, None, None, None, None), Facts())
    assert levels(areas) == {"flow": 1, "ci": 1, "cd": 1, "operations": 1, "data": 1}
    assert step(areas, "flow").startswith("Define done on the board")
    assert step(areas, "ci").startswith("Keep the pipeline as code")
    assert step(areas, "cd").startswith("Define the environments")
    assert step(areas, "operations") == "Monitor the service"
    assert step(areas, "data").startswith("Version code and configuration")
    first = one(areas, "flow").criteria[0]
    assert (first.level, first.text, first.met) == (1, "Starting point: nothing measured yet", True)


def without(check_id: str, result: Result | None = None) -> list[Check]:
    """The passing checks with one missing (None) or giving another result."""
    kept = [c for c in passing() if c.id != check_id]
    return kept if result is None else [*kept, check(check_id, result)]


@pytest.mark.parametrize(
    ("area_id", "checks", "kwargs", "level", "next_step"),
    [
        # flow
        ("flow", without("done_defined"), {}, 1, "Define done on the board"),
        ("flow", without("wip", "warn"), {}, 2, "Keep work in progress within the limits"),
        ("flow", without("multitasking", "fail"), {}, 2, "Work on one thing at a time"),
        ("flow", passing(), {"stream": stream(0.14)}, 3, "Cut waiting"),
        ("flow", passing(), {"stream": stream(None)}, 3, "Cut waiting"),
        ("flow", without("defect_escaped", "no data"), {}, 4, "Build quality in"),
        ("flow", without("rhythm"), {}, 4, "Keep a steady rhythm"),
        # ci
        ("ci", passing(), {"facts": facts(pipeline_as_code=False)}, 1, "Keep the pipeline"),
        ("ci", passing(), {"facts": facts(has_repository=False)}, 1, "Keep the pipeline"),
        ("ci", without("ci.commit_stage", "fail"), {}, 2, "Get feedback within 10 minutes"),
        ("ci", without("ci.red_share", "warn"), {}, 3, "Keep the default branch green"),
        ("ci", without("ci.time_to_fix"), {}, 3, "Fix a broken build within 10 minutes"),
        ("ci", without("ci.commits_per_developer", "fail"), {}, 4, "Integrate often"),
        # cd
        ("cd", passing(), {"facts": facts(environments=("staging",))}, 1, "Define the env"),
        ("cd", passing(), {"facts": facts(protected_production=False)}, 2, "Protect production"),
        ("cd", passing(), {"facts": facts(health_checked=("staging",))}, 2, "Health-check"),
        ("cd", passing(), {"facts": facts(environments=("production",))}, 2, "Build once"),
        ("cd", passing(), {"dora": never_deployed()}, 2, "Build once, promote"),
        ("cd", passing(), {"dora": dora(frequency="medium")}, 3, "Deploy to production at"),
        ("cd", passing(), {"dora": dora(lead_time="medium")}, 3, "Bring a commit"),
        ("cd", passing(), {"dora": dora(fail_rate=0.15)}, 4, "Changes rarely fail"),
        ("cd", passing(), {"dora": dora(fail_rate=None)}, 4, "Changes rarely fail"),
        ("cd", passing(), {"dora": dora(recovery_s=7200.0)}, 4, "Recover from a failed"),
        # operations
        ("operations", passing(), {"facts": facts(monitors=0)}, 1, "Monitor the service"),
        ("operations", passing(), {"facts": facts(slos=0)}, 2, "Set service level objectives"),
        ("operations", passing(), {"facts": facts(slo_budget_left=0.0)}, 2, "Set service level"),
        ("operations", passing(), {"facts": facts(rpo_s=None)}, 3, "Back up within"),
        (
            "operations",
            passing(),
            {"facts": facts(last_backup_at=NOW - timedelta(days=2))},
            3,
            "Back up within",
        ),
        ("operations", passing(), {"facts": facts(last_drill_passed=False)}, 3, "Rehearse"),
        (
            "operations",
            passing(),
            {"facts": facts(last_drill_at=NOW - timedelta(days=91))},
            3,
            "Rehearse recovery",
        ),
        ("operations", passing(), {"facts": facts(last_drill_s=4000.0)}, 4, "Recover within"),
        ("operations", passing(), {"facts": facts(rto_s=None)}, 4, "Recover within"),
        ("operations", passing(), {"dora": dora(recovery_s=7200.0)}, 4, "Recover from a"),
        # data
        ("data", passing(), {"facts": facts(has_repository=False)}, 1, "Version code"),
        ("data", passing(), {"facts": facts(drifted=("production",))}, 2, "Keep environments"),
        ("data", passing(), {"facts": facts(environments=())}, 2, "Keep environments"),
        ("data", passing(), {"facts": facts(operation_stories=0)}, 3, "Write service-level"),
        ("data", passing(), {"facts": facts(test_stories=0)}, 3, "Write acceptance scenarios"),
        ("data", passing(), {"facts": facts(last_drill_at=None)}, 4, "Prove the data"),
        (
            "data",
            passing(),
            {"facts": facts(last_backup_at=NOW - timedelta(days=2))},
            4,
            "Back up within",
        ),
    ],
)
def test_each_missing_piece_stops_its_area_below_its_level(
    area_id: str, checks: list[Check], kwargs: dict[str, Any], level: int, next_step: str
) -> None:
    given_in = {"dora": dora(), "stream": stream(), "facts": facts(), **kwargs}
    areas = assess(given_in["dora"], checks, given_in["stream"], given_in["facts"])
    found = one(areas, area_id)
    assert found.level == level
    assert found.next_step is not None and found.next_step.startswith(next_step)


def test_a_lower_level_unmet_holds_back_everything_above_it() -> None:
    areas = assess(dora(), without("done_defined", "fail"), stream(), facts())
    flow = one(areas, "flow")
    assert flow.level == 1
    assert [c.met for c in flow.criteria if c.level > 2] == [True] * 5  # met, yet not reached


def test_a_missing_check_is_not_met_and_says_so() -> None:
    areas = assess(dora(), without("wip"), stream(), facts())
    (wip,) = [c for c in one(areas, "flow").criteria if "within the limits" in c.text]
    assert (wip.met, wip.evidence) == (False, 'not measured: no "wip" check yet')


def test_evidence_quotes_the_check_and_the_numbers() -> None:
    areas = assess(dora(), passing(), stream(0.3), facts())
    flow = one(areas, "flow").criteria
    assert flow[1].evidence == "Question done_defined? pass: done_defined says pass"
    assert flow[4].evidence == (
        "flow efficiency 30%: 3 h of work in a lead time of 10 h; biggest wait: review"
    )
    operations = {c.text.split(":")[0]: c.evidence for c in one(areas, "operations").criteria}
    assert operations["Back up within the recovery point objective"] == (
        "last backup 3 h old, RPO 1 d"
    )


def test_no_failure_to_recover_from_does_not_hold_a_stable_service_back() -> None:
    areas = assess(dora(fail_rate=0.0, recovery_s=None), passing(), stream(), facts())
    assert levels(areas)["cd"] == 5 and levels(areas)["operations"] == 5
    (recovery,) = [c for c in one(areas, "cd").criteria if c.text.startswith("Recover from")]
    assert "nothing to recover from" in recovery.evidence


def test_failures_without_a_measured_recovery_are_not_elite() -> None:
    areas = assess(dora(fail_rate=0.08, recovery_s=None), passing(), stream(), facts())
    assert levels(areas)["cd"] == 4 and levels(areas)["operations"] == 4


def test_backups_and_drills_are_judged_at_the_end_of_the_window() -> None:
    later = (NOW + timedelta(days=86), NOW + timedelta(days=100))
    areas = assess(dora(), passing(), dataclasses.replace(stream(), window=later), facts())
    operations = one(areas, "operations")
    assert operations.level == 3  # the backup is 100 days old then, the drill 130
    assert [c.met for c in operations.criteria if c.level == 4] == [False, False]
    assert step(areas, "operations").startswith("Back up within")
    no_window = dataclasses.replace(stream(), window=None)
    assert levels(assess(dora(), passing(), no_window, facts()))["operations"] == 3


def test_secrets_on_the_server_or_none_needed_both_pass() -> None:
    for secrets in (0, 4):
        areas = assess(dora(), passing(), stream(), facts(secrets=secrets))
        assert levels(areas)["data"] == 5


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(12, "12 s"), (600, "10 min"), (3600, "1 h"), (12000, "3 h 20 min"), (187200, "2 d 4 h")],
)
def test_durations_read_as_people_say_them(seconds: float, said: str) -> None:
    assert duration(seconds) == said


# ---- properties ---------------------------------------------------------------------------

results: st.SearchStrategy[Result | None] = st.sampled_from(
    ["pass", "warn", "fail", "no data", None]
)
bands = st.sampled_from(["elite", "high", "medium", "low", "no data"])
maybe_seconds = st.none() | st.floats(min_value=0, max_value=10 * 86400)
drawn_facts = st.builds(
    Facts,
    has_repository=st.booleans(),
    pipeline_as_code=st.booleans(),
    environments=st.sampled_from([(), ("production",), ("staging", "production"), ("staging",)]),
    protected_production=st.booleans(),
    health_checked=st.sampled_from([(), ("production",)]),
    drifted=st.sampled_from([(), ("staging",)]),
    secrets=st.integers(0, 3),
    monitors=st.integers(0, 3),
    slos=st.integers(0, 3),
    slo_budget_left=st.none() | st.floats(min_value=0, max_value=1),
    rpo_s=maybe_seconds,
    rto_s=maybe_seconds,
    last_backup_at=st.none() | st.integers(0, 200).map(lambda h: NOW - timedelta(hours=h)),
    last_drill_at=st.none() | st.integers(0, 120).map(lambda d: NOW - timedelta(days=d)),
    last_drill_passed=st.none() | st.booleans(),
    last_drill_s=maybe_seconds,
    operation_stories=st.integers(0, 2),
    test_stories=st.integers(0, 2),
)
drawn_dora = st.builds(
    lambda f, lt, cfr, rec: Dora(
        Number(1.0, f, (1,)),
        Number(3600.0, lt),
        Number(cfr, "no data" if cfr is None else "elite", (), {"deployments": 10}),
        Number(rec, "no data" if rec is None else ("elite" if rec <= 3600 else "low")),
        Number(None, "no band (new in 2024)"),
    ),
    bands,
    bands,
    st.none() | st.floats(min_value=0, max_value=1),
    maybe_seconds,
)


def checks_of(drawn: list[Result | None]) -> list[Check]:
    return [check(i, r) for i, r in zip(CHECK_IDS, drawn, strict=True) if r is not None]


@settings(max_examples=200, deadline=None)
@given(
    drawn_dora,
    st.lists(results, min_size=len(CHECK_IDS), max_size=len(CHECK_IDS)),
    st.none() | st.floats(min_value=0, max_value=1),
    drawn_facts,
)
def test_levels_follow_their_criteria_for_any_evidence(
    dora_: Dora, drawn: list[Result | None], efficiency: float | None, facts_: Facts
) -> None:
    areas = assess(dora_, checks_of(drawn), stream(efficiency), facts_)
    assert [a.id for a in areas] == ["flow", "ci", "cd", "operations", "data"]
    for area in areas:
        assert 1 <= area.level <= 5
        assert all(c.met for c in area.criteria if c.level <= area.level)
        if area.level == 5:
            assert area.next_step is None
        else:
            unmet = [c for c in area.criteria if c.level == area.level + 1 and not c.met]
            assert unmet and area.next_step == unmet[0].text
    # Passing one more check never lowers a level.
    for position, result in enumerate(drawn):
        if result != "pass":
            better: list[Result | None] = [*drawn[:position], "pass", *drawn[position + 1 :]]
            raised = assess(dora_, checks_of(better), stream(efficiency), facts_)
            assert all(b.level >= a.level for a, b in zip(areas, raised, strict=True))
