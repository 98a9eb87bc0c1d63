"""The value stream map on a hand-built history with known answers for every stage, the
edge cases each stage's definition names, and properties that hold for any history."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obeya.metrics.dora import Record
from obeya.metrics.valuestream import STAGES, Stage, ValueStream, value_stream

WINDOW = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC))
MIN = 60.0
HOUR = 3600.0


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


class History:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def add(self, when: datetime, event: str, /, **data: Any) -> None:
        self.records.append(Record(len(self.records) + 1, when, event, "shop", data))

    def story(self, key: str, created: datetime | None, *moves: tuple[datetime, str]) -> None:
        """Moves name their target column; the board's flags follow the default board."""
        if created is not None:
            self.add(created, "story.created", key=key, kind="user", title=key)
        columns = ["Backlog"]
        for when, to in moves:
            self.add(
                when,
                "story.moved",
                key=key,
                to=to,
                starts_work=to in {"In progress"},
                done=to == "Done",
                **{"from": columns[-1]},
            )
            columns.append(to)

    def run(
        self,
        number: int,
        committed: datetime,
        created: datetime,
        finished: datetime | None,
        *,
        status: str = "succeeded",
        default: bool = True,
        jobs: tuple[tuple[datetime, float], ...] = (),
    ) -> None:
        common = {"number": number, "sha": f"sha{number}", "default_branch": default}
        self.add(
            created,
            "run.created",
            branch="main" if default else "topic",
            committed_at=committed.isoformat(),
            commits=[],
            **common,
        )
        for end, seconds in jobs:
            self.add(end, "job.finished", run=number, status="succeeded", duration_s=seconds)
        if finished is not None:
            self.add(finished, "run.finished", status=status, duration_s=0.0, **common)

    def deployment(
        self, number: int, tier: str, run: int | None, *steps: tuple[datetime, str], **extra: Any
    ) -> None:
        """Steps are (time, event): requested, requested/approval, queued, started, ..."""
        for when, step in steps:
            status = None
            if step.startswith("requested/"):
                step, status = step.split("/")
            data = {"deployment": number, "environment": tier, "tier": tier, "run": run}
            data.update({"kind": "deploy", "sha": f"sha{run}", **extra})
            if status:
                data["status"] = status
            self.add(when, f"deployment.{step}", **data)


def example() -> History:
    h = History()
    # S-1: 24 h in the backlog (Ready is not work); 4 h + 1 h in progress; 2 h + 1 h review
    h.story(
        "S-1",
        at(5, 9),
        (at(5, 10), "Ready"),
        (at(6, 9), "In progress"),
        (at(6, 13), "Review"),
        (at(6, 15), "In progress"),
        (at(6, 16), "Code review"),
        (at(6, 17), "Done"),
    )
    # S-2: 2 h backlog; 1 h work, 2 h blocked, 1 h work; never reviewed
    h.story(
        "S-2",
        at(5, 9),
        (at(5, 11), "In progress"),
        (at(5, 12), "Blocked"),
        (at(5, 14), "In progress"),
        (at(5, 15), "Done"),
    )
    # S-3: 6 h backlog, still in progress
    h.story("S-3", at(5, 9), (at(5, 15), "In progress"))
    # S-4: all of it before the window
    h.story("S-4", at(1, 10), (at(2, 10), "In progress"), (at(2, 12), "Done"))
    # S-5: 48 h backlog; done, reopened a day later, done again: 1 h + 1 h of work
    h.story(
        "S-5",
        at(5, 9),
        (at(7, 9), "In progress"),
        (at(7, 10), "Done"),
        (at(8, 10), "In progress"),
        (at(8, 11), "Done"),
    )
    # S-6: moved without its creation in the log: no backlog sample, but work counted
    h.story("S-6", None, (at(9, 9), "In progress"), (at(9, 12), "Done"))

    # Run 1: 10 min before the run; build and test until 09:18, staging asked at 09:20
    h.run(1, at(9, 9), at(9, 9, 10), at(9, 10, 53), jobs=((at(9, 9, 14), 240), (at(9, 9, 18), 240)))
    h.deployment(
        1,
        "staging",
        1,
        (at(9, 9, 20), "requested/queued"),
        (at(9, 9, 21), "started"),
        (at(9, 9, 24), "succeeded"),
    )
    h.add(at(9, 9, 34), "job.finished", run=1, status="succeeded", duration_s=300)  # smoke tests
    h.deployment(2, "production", 1, (at(9, 9, 40), "requested/waiting_approval"))
    h.add(at(9, 10, 40), "deployment.approved", environment="production", comment="go")
    h.deployment(
        2,
        "production",
        1,
        (at(9, 10, 40), "queued"),
        (at(9, 10, 42), "started"),
        (at(9, 10, 52), "succeeded"),
    )
    # Run 2: no deployment, no job events: the whole run is the commit stage
    h.run(2, at(12, 10), at(12, 10, 30), at(12, 10, 42))
    # Run 3 failed, run 4 is not the default branch: neither counts
    h.run(3, at(13, 9), at(13, 9, 1), at(13, 9, 5), status="failed")
    h.run(4, at(13, 9), at(13, 9, 2), at(13, 9, 9), default=False)
    # Run 5: production needs no approval and the deployment is rolled back
    h.run(5, at(14, 8), at(14, 8, 5), at(14, 8, 31), jobs=((at(14, 8, 11), 360),))
    h.deployment(
        3,
        "staging",
        5,
        (at(14, 8, 12), "requested/queued"),
        (at(14, 8, 12), "started"),
        (at(14, 8, 16), "succeeded"),
    )
    h.deployment(
        4,
        "production",
        5,
        (at(14, 8, 17), "requested/queued"),
        (at(14, 8, 20), "started"),
        (at(14, 8, 28), "failed"),
        (at(14, 8, 30), "rolled_back"),
        rolled_back=True,
    )
    # Not on the map: a rejected request, a rollback, a failed staging deployment,
    # a deployment after the window
    h.deployment(
        5, "production", 5, (at(15, 9), "requested/waiting_approval"), (at(15, 10), "rejected")
    )
    h.deployment(
        6,
        "production",
        None,
        (at(16, 9), "requested/queued"),
        (at(16, 9), "started"),
        (at(16, 9, 1), "succeeded"),
        kind="rollback",
    )
    h.deployment(
        7,
        "staging",
        2,
        (at(16, 10), "requested/queued"),
        (at(16, 10), "started"),
        (at(16, 10, 5), "failed"),
    )
    h.deployment(
        8,
        "production",
        2,
        (at(20, 9), "requested/queued"),
        (at(20, 9), "started"),
        (at(20, 9, 9), "succeeded"),
    )
    return h


def by_name(stream: ValueStream) -> dict[str, Stage]:
    return {s.name: s for s in stream.stages}


def test_the_stages_come_in_order_from_idea_to_production() -> None:
    stream = value_stream(example().records, WINDOW)
    assert (
        [s.name for s in stream.stages]
        == list(STAGES)
        == [
            "backlog",
            "in progress",
            "review",
            "commit stage",
            "acceptance",
            "approval wait",
            "deployment",
        ]
    )


@pytest.mark.parametrize(
    ("name", "process", "wait", "samples", "ids"),
    [
        # 2 h, 6 h, 24 h, 48 h (S-4 started before the window, S-6 was never created)
        ("backlog", None, 15 * HOUR, 4, ["S-2", "S-3", "S-1", "S-5"]),
        # S-2 (2 h work, 2 h blocked), S-1 (5 h, 0), S-5 (2 h, 0), S-6 (3 h, 0)
        ("in progress", 2.5 * HOUR, 0.0, 4, ["S-2", "S-1", "S-5", "S-6"]),
        ("review", None, 3 * HOUR, 1, ["S-1"]),
        # runs 1 (8 min, waited 10), 2 (12, 30), 5 (6, 5)
        ("commit stage", 8 * MIN, 10 * MIN, 3, [1, 2, 5]),
        # staging 1: 3 min deploy + 5 min smoke tests; 3 min to start + 11 idle before prod
        # staging 3: 4 min deploy; 1 min to start + 1 min before prod
        ("acceptance", 6 * MIN, 8 * MIN, 2, [1, 3]),
        # deployment 2 waited an hour for approval, 4 needed none
        ("approval wait", None, 30 * MIN, 2, [2, 4]),
        # 2: 2 min queued, 10 min deploying; 4: 3 min queued, 10 min until rolled back
        ("deployment", 10 * MIN, 2.5 * MIN, 2, [2, 4]),
    ],
)
def test_every_stage_has_its_known_medians(
    name: str, process: float | None, wait: float | None, samples: int, ids: list[Any]
) -> None:
    found = by_name(value_stream(example().records, WINDOW))[name]
    assert (found.process_s, found.wait_s, found.samples) == (process, wait, samples)
    assert [e["id"] for e in found.evidence] == ids
    assert len(found.evidence) == found.samples


def test_totals_efficiency_and_biggest_wait() -> None:
    stream = value_stream(example().records, WINDOW)
    process = 2.5 * HOUR + 8 * MIN + 6 * MIN + 10 * MIN
    wait = 15 * HOUR + 0 + 3 * HOUR + 10 * MIN + 8 * MIN + 30 * MIN + 2.5 * MIN
    assert stream.process_s == pytest.approx(process)
    assert stream.wait_s == pytest.approx(wait)
    assert stream.lead_s == pytest.approx(process + wait)
    assert stream.flow_efficiency == pytest.approx(process / (process + wait))
    assert stream.flow_efficiency == pytest.approx(174 / 1304.5)  # 13 %: mostly waiting
    assert stream.biggest_wait == "backlog"
    assert stream.window == WINDOW


def test_evidence_says_what_each_item_took() -> None:
    acceptance = by_name(value_stream(example().records, WINDOW))["acceptance"]
    first = acceptance.evidence[0]
    assert first["what"] == "deployment"
    assert (first["process_s"], first["wait_s"], first["seconds"]) == (8 * MIN, 14 * MIN, 22 * MIN)
    assert first["at"] == at(9, 9, 40).isoformat()  # it ends when production is asked for


def test_nothing_measured_gives_no_numbers() -> None:
    stream = value_stream([], WINDOW)
    assert all(s.samples == 0 and s.process_s is None and s.wait_s is None for s in stream.stages)
    assert (stream.process_s, stream.wait_s, stream.lead_s) == (None, None, None)
    assert (stream.flow_efficiency, stream.biggest_wait) == (None, None)


def test_a_window_after_the_history_sees_nothing_of_it() -> None:
    later = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert all(s.samples == 0 for s in value_stream(example().records, later).stages)


def test_the_window_counts_a_sample_by_its_end() -> None:
    h = History()
    h.story("S-1", at(4, 9), (at(5, 0), "In progress"), (at(19, 0), "Done"))
    stages = by_name(value_stream(h.records, WINDOW))
    assert stages["backlog"].samples == 1  # started on 5 Jan, the window's first instant
    assert stages["in progress"].samples == 0  # done on 19 Jan: the window is half-open


def test_the_commit_stage_ends_before_the_run_waits_for_a_manual_deployment() -> None:
    h = History()
    h.run(1, at(6, 9), at(6, 9), at(6, 18), jobs=((at(6, 9, 7), 400),))
    h.deployment(1, "staging", 1, (at(6, 17), "requested/queued"), (at(6, 17), "started"))
    h.deployment(1, "staging", 1, (at(6, 17, 5), "succeeded"))
    stages = by_name(value_stream(h.records, WINDOW))
    assert stages["commit stage"].process_s == 7 * MIN  # not the 9 h until run.finished
    assert stages["commit stage"].wait_s == 0.0
    assert stages["acceptance"].wait_s == 7 * HOUR + 53 * MIN  # someone had to press deploy
    assert stages["acceptance"].process_s == 5 * MIN  # no production yet: no gap


def test_a_run_without_job_events_ends_its_commit_stage_at_its_first_request() -> None:
    h = History()
    h.run(1, at(6, 9), at(6, 9), at(6, 12))
    h.deployment(1, "staging", 1, (at(6, 9, 20), "requested/queued"))
    assert by_name(value_stream(h.records, WINDOW))["commit stage"].process_s == 20 * MIN


def test_the_latest_staging_deployment_owns_the_time_before_production() -> None:
    h = History()
    h.run(1, at(6, 9), at(6, 9), None, jobs=((at(6, 9, 10), 600),))
    h.deployment(1, "staging", 1, (at(6, 9, 10), "requested/queued"), (at(6, 9, 10), "started"))
    h.deployment(1, "staging", 1, (at(6, 9, 15), "succeeded"))
    h.deployment(2, "staging", 1, (at(6, 10), "requested/queued"), (at(6, 10), "started"))
    h.deployment(2, "staging", 1, (at(6, 10, 5), "succeeded"))
    h.deployment(3, "production", 1, (at(6, 11, 5), "requested/queued"))
    acceptance = by_name(value_stream(h.records, WINDOW))["acceptance"]
    evidence = {e["id"]: e for e in acceptance.evidence}
    assert (evidence[1]["process_s"], evidence[1]["wait_s"]) == (5 * MIN, 0.0)
    assert (evidence[2]["process_s"], evidence[2]["wait_s"]) == (5 * MIN, 50 * MIN + 60 * MIN)


def test_a_staging_deployment_waits_for_the_next_production_request_only() -> None:
    h = History()
    h.deployment(1, "staging", 1, (at(6, 9), "requested/queued"), (at(6, 9), "started"))
    h.deployment(1, "staging", 1, (at(6, 9, 15), "succeeded"))
    h.deployment(2, "production", 1, (at(6, 10), "requested/queued"))
    h.deployment(3, "staging", 1, (at(6, 11), "requested/queued"), (at(6, 11), "started"))
    h.deployment(3, "staging", 1, (at(6, 11, 5), "succeeded"))
    h.deployment(4, "production", 1, (at(6, 11, 30), "requested/queued"))
    acceptance = by_name(value_stream(h.records, WINDOW))["acceptance"]
    evidence = {e["id"]: e for e in acceptance.evidence}
    assert evidence[1]["wait_s"] == 45 * MIN  # 09:15 → 10:00, nothing ran
    assert evidence[3]["wait_s"] == 25 * MIN  # 11:05 → the next request, 11:30


def test_jobs_running_side_by_side_count_once_as_process() -> None:
    h = History()
    h.deployment(1, "staging", 1, (at(6, 9), "requested/queued"), (at(6, 9), "started"))
    h.deployment(1, "staging", 1, (at(6, 10), "succeeded"))
    h.add(at(6, 10, 10), "job.finished", run=1, duration_s=600)  # 10:00 → 10:10
    h.add(at(6, 10, 15), "job.finished", run=1, duration_s=600)  # 10:05 → 10:15
    h.add(at(6, 10, 40), "job.finished", run=2, duration_s=600)  # another run's job
    h.run(1, at(6, 8), at(6, 8, 30), None)
    h.deployment(2, "production", 1, (at(6, 11), "requested/queued"))
    (sample,) = by_name(value_stream(h.records, WINDOW))["acceptance"].evidence
    assert (sample["process_s"], sample["wait_s"]) == (60 * MIN + 15 * MIN, 45 * MIN)


def test_an_approval_still_awaited_is_no_sample_yet() -> None:
    h = History()
    h.deployment(1, "production", None, (at(6, 9), "requested/waiting_approval"))
    assert by_name(value_stream(h.records, WINDOW))["approval wait"].samples == 0


def test_clock_skew_never_makes_a_negative_time() -> None:
    h = History()
    h.run(1, at(6, 9, 30), at(6, 9), at(6, 9, 10))  # committed "after" the run was created
    stage = by_name(value_stream(h.records, WINDOW))["commit stage"]
    assert (stage.process_s, stage.wait_s) == (10 * MIN, 0.0)


def test_the_order_of_the_input_does_not_matter() -> None:
    records = example().records
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    assert value_stream(shuffled, WINDOW) == value_stream(records, WINDOW)


# ---- properties ---------------------------------------------------------------------------

BASE = datetime(2026, 1, 3, tzinfo=UTC)
KINDS = [
    "story.created",
    "story.moved",
    "run.created",
    "run.finished",
    "job.finished",
    "deployment.requested",
    "deployment.queued",
    "deployment.started",
    "deployment.succeeded",
    "deployment.rolled_back",
    "deployment.failed",
]
minutes = st.integers(min_value=0, max_value=20 * 24 * 60)
event_data = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["S-1", "S-2", "S-3"]),
        "to": st.sampled_from(["Ready", "In progress", "Review", "Done", "Blocked"]),
        "starts_work": st.booleans(),
        "done": st.booleans(),
        "number": st.integers(1, 3),
        "run": st.integers(1, 3),
        "default_branch": st.booleans(),
        "status": st.sampled_from(["succeeded", "failed", "queued", "waiting_approval"]),
        "committed_at": minutes.map(lambda m: (BASE + timedelta(minutes=m)).isoformat()),
        "duration_s": st.floats(min_value=0, max_value=5000),
        "deployment": st.integers(1, 4),
        "tier": st.sampled_from(["staging", "production", "testing"]),
        "kind": st.sampled_from(["deploy", "deploy", "rollback"]),
        "rolled_back": st.booleans(),
    }
)
events = st.lists(st.tuples(st.sampled_from(KINDS), minutes, event_data), max_size=40)


def records_of(drawn: list[tuple[str, int, dict[str, Any]]]) -> list[Record]:
    return [
        Record(i + 1, BASE + timedelta(minutes=m), kind, "shop", data)
        for i, (kind, m, data) in enumerate(drawn)
    ]


@settings(max_examples=200, deadline=None)
@given(events, st.randoms(use_true_random=False))
def test_any_history_gives_a_sane_map(
    drawn: list[tuple[str, int, dict[str, Any]]], rng: random.Random
) -> None:
    records = records_of(drawn)
    stream = value_stream(records, WINDOW)
    for stage in stream.stages:
        assert stage.process_s is None or stage.process_s >= 0
        assert stage.wait_s is None or stage.wait_s >= 0
        assert stage.samples == len(stage.evidence)
        for item in stage.evidence:
            assert item["seconds"] >= 0
            assert WINDOW[0].isoformat() <= item["at"] < WINDOW[1].isoformat()
    if stream.flow_efficiency is not None:
        assert 0.0 <= stream.flow_efficiency <= 1.0
    if stream.lead_s is not None:
        assert stream.lead_s == pytest.approx((stream.process_s or 0) + (stream.wait_s or 0))
    if stream.biggest_wait is not None:
        biggest = by_name(stream)[stream.biggest_wait].wait_s
        assert biggest == max(s.wait_s or 0.0 for s in stream.stages) > 0
    rng.shuffle(records)
    assert value_stream(records, WINDOW) == stream
