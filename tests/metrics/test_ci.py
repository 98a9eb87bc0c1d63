"""CI health (§3.1.4 to 3.1.6) on hand-built histories with known answers, and properties
that must hold for any history. Pure: no database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obeya.metrics import ci
from obeya.metrics.dora import Record
from obeya.metrics.model import Check

# Monday 5 January to Monday 19 January 2026: two whole working weeks, 10 working days.
WINDOW = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC))
IDS = ["ci.commits_per_developer", "ci.commit_stage", "ci.red_share", "ci.time_to_fix"]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


class History:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.runs = 0

    def add(self, when: datetime, event: str, **data: object) -> None:
        self.records.append(Record(len(self.records) + 1, when, event, "shop", data))

    def landed(
        self, when: datetime, commits: list[tuple[str, str, datetime]], *, default: bool = True
    ) -> None:
        """A run that is the first to see ``commits`` (sha, author, committed at)."""
        self.runs += 1
        listed = [{"sha": s, "author": a, "committed_at": t.isoformat()} for s, a, t in commits]
        self.add(when, "run.created", number=self.runs, default_branch=default, commits=listed)

    def run(
        self,
        start: datetime,
        minutes: float,
        status: str = "succeeded",
        *,
        default: bool = True,
        deploy_after: float | None = None,
    ) -> int:
        self.runs += 1
        number = self.runs
        self.add(start, "run.created", number=number, default_branch=default, commits=[])
        if deploy_after is not None:
            self.add(
                start + timedelta(minutes=deploy_after),
                "deployment.requested",
                deployment=number,
                run=number,
                tier="staging",
            )
        self.add(
            start + timedelta(minutes=minutes),
            "run.finished",
            number=number,
            status=status,
            default_branch=default,
        )
        return number

    def red(self, pulled: datetime, released: datetime | None, run: int | None = None) -> None:
        self.add(pulled, "andon.pulled", reason="red", run=run)
        if released is not None:
            self.add(released, "andon.released", reason="green", run=run)


def check(
    records: list[Record], check_id: str, window: tuple[datetime, datetime] = WINDOW
) -> Check:
    return {c.id: c for c in ci.health(records, window)}[check_id]


def test_the_checks_come_in_the_documented_order_with_no_data_for_nothing() -> None:
    result = ci.health([], WINDOW)
    assert [c.id for c in result] == IDS
    assert {c.result for c in result} == {"no data"}
    assert all(c.value is None for c in result)


# ---- commits per developer ----------------------------------------------------------------


def commits(author: str, count: int, day: int = 6) -> list[tuple[str, str, datetime]]:
    return [(f"{author}{i}", author, at(day, 9) + timedelta(minutes=i)) for i in range(count)]


def test_commits_per_developer_per_working_day_is_the_median_developer() -> None:
    h = History()
    h.landed(at(6, 18), commits("ana", 25) + commits("bo", 15))
    h.landed(at(7, 18), commits("bo", 15) + commits("cy", 30))  # bo's are the same shas
    h.landed(at(7, 19), commits("dan", 9), default=False)  # a branch: not yet integrated
    h.landed(at(5, 1), commits("eve", 3, day=4))  # committed before the window
    h.add(  # an event from before runs listed their commits: its head commit counts
        at(8, 9),
        "run.created",
        number=99,
        default_branch=True,
        sha="old",
        author="fay",
        committed_at=at(8, 8).isoformat(),
    )
    result = check(h.records, "ci.commits_per_developer")
    assert (result.result, result.value) == ("pass", 2.0)  # between bo's 1.5 and ana's 2.5
    assert result.evidence == (
        {"what": "person", "id": "ana", "commits": 25, "per_day": 2.5},
        {"what": "person", "id": "bo", "commits": 15, "per_day": 1.5},
        {"what": "person", "id": "cy", "commits": 30, "per_day": 3.0},
        {"what": "person", "id": "fay", "commits": 1, "per_day": 0.1},
    )
    assert result.detail == {"working_days": 10.0, "commits": 71, "developers": 4}
    assert result.summary == (
        "The median developer commits to the default branch 2.0 times a working day "
        "(4 developers, 10 working days; at least 2 is the aim)."
    )


@pytest.mark.parametrize(
    ("count", "expected"), [(20, "pass"), (19, "warn"), (10, "warn"), (9, "fail")]
)
def test_commits_per_developer_bands(count: int, expected: str) -> None:
    h = History()
    h.landed(at(6, 18), commits("ana", count))
    result = check(h.records, "ci.commits_per_developer")
    assert result.result == expected
    assert result.value == pytest.approx(count / 10)


def test_no_commit_or_no_working_day_is_no_data() -> None:
    h = History()
    h.landed(at(10, 12), commits("ana", 4, day=10))  # Saturday
    weekend = (at(10, 0), at(12, 0))
    result = check(h.records, "ci.commits_per_developer", weekend)
    assert (result.result, result.summary) == ("no data", "No working day in this window.")
    empty = check([], "ci.commits_per_developer")
    assert empty.summary == "No commit to the default branch in this window."


@pytest.mark.parametrize(
    ("window", "days"),
    [
        (WINDOW, 10.0),
        ((at(5, 12), at(6, 12)), 1.0),  # Monday noon to Tuesday noon
        ((at(9, 12), at(12, 12)), 1.0),  # Friday noon to Monday noon: the weekend is off
        ((at(10, 0), at(12, 0)), 0.0),
        ((at(5, 0), at(5, 6)), 0.25),
    ],
)
def test_working_days(window: tuple[datetime, datetime], days: float) -> None:
    assert ci.working_days(window) == pytest.approx(days)


def test_working_days_follow_the_time_zone_of_the_window() -> None:
    tokyo = timezone(timedelta(hours=9))
    # Saturday 00:00 to Monday 00:00 in Tokyo is Friday 15:00 to Sunday 15:00 in UTC
    start = datetime(2026, 1, 10, tzinfo=tokyo)
    assert ci.working_days((start, start + timedelta(days=2))) == 0.0


# ---- commit stage ---------------------------------------------------------------------------


def test_the_commit_stage_ends_at_the_run_end_or_its_first_deployment_request() -> None:
    h = History()
    h.run(at(6, 9), 5)  # 300 s
    h.run(at(6, 10), 40, deploy_after=8)  # 480 s: the deploy job waited for a green build
    h.run(at(6, 11), 2, "canceled")  # no verdict
    h.run(at(6, 12), 30, default=False)  # another branch
    h.run(at(6, 13), 12, "failed")  # 720 s: the commit stage gave its answer late
    h.run(at(18, 23, 55), 10)  # ends after the window
    h.add(at(7, 9), "run.created", number=50, default_branch=True)  # still running
    result = check(h.records, "ci.commit_stage")
    assert (result.result, result.value) == ("warn", 720.0)
    assert [(e["id"], e["seconds"], e["ended_by"]) for e in result.evidence] == [
        (1, 300.0, "run.finished"),
        (2, 480.0, "deployment.requested"),
        (5, 720.0, "run.finished"),
    ]
    assert result.detail["median_s"] == 480.0 and result.detail["over_limit"] == 1
    assert result.summary == (
        "9 in 10 of 3 default-branch commit stages took 12 min or less; "
        "1 ran over the 10-minute limit."
    )


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [([5, 10], "pass"), ([5, 10.5], "warn"), ([9, 15], "warn"), ([15.5], "fail")],
)
def test_commit_stage_bands_on_the_p90(minutes: list[float], expected: str) -> None:
    h = History()
    for hour, length in enumerate(minutes, start=9):
        h.run(at(6, hour), length)
    assert check(h.records, "ci.commit_stage").result == expected


def test_a_retried_run_counts_its_first_answer() -> None:
    h = History()
    number = h.run(at(6, 9), 4, "failed")
    h.add(at(6, 11), "run.finished", number=number, status="succeeded", default_branch=True)
    result = check(h.records, "ci.commit_stage")
    assert [e["seconds"] for e in result.evidence] == [240.0]


# ---- red share and time to fix ------------------------------------------------------------


def test_red_share_counts_a_cord_pulled_before_the_window_from_its_start() -> None:
    h = History()
    h.red(at(1, 12), at(2, 12))  # before the window: not counted
    h.red(at(4, 12), at(5, 12), run=3)  # 12 h inside
    h.red(at(10, 10), at(10, 10, 30), run=7)  # 30 min
    result = check(h.records, "ci.red_share")
    assert result.result == "pass"
    assert result.value == pytest.approx(12.5 / (14 * 24))
    assert result.detail == {
        "red_s": 45000.0,
        "window_s": 14 * 86400.0,
        "pulls": 2,
        "red_now": False,
    }
    assert result.evidence[0] == {
        "what": "andon",
        "id": 3,
        "pulled_at": at(4, 12).isoformat(),
        "released_at": at(5, 12).isoformat(),
        "run": 3,
        "seconds": 86400.0,
    }
    assert result.summary == "The default branch was red 3.7% of this window (12.5 h)."


def test_red_share_bands_and_a_cord_still_pulled_at_the_end() -> None:
    h = History()
    h.red(at(4, 12), at(5, 12))
    h.red(at(10, 10), at(10, 10, 30))
    h.red(at(18, 12), None)  # 12 h to the window's end, and still red
    result = check(h.records, "ci.red_share")
    assert (result.result, result.detail["red_now"]) == ("warn", True)
    assert result.value == pytest.approx(24.5 / (14 * 24))
    assert (
        result.summary == "The default branch was red 7.3% of this window (24.5 h), and is red now."
    )
    h.red(at(18, 13), None)  # already pulled: a second pull changes nothing
    assert check(h.records, "ci.red_share").value == result.value
    stopped = History()
    stopped.red(at(12, 0), at(20, 0))  # released after the window: red to its end
    fail = check(stopped.records, "ci.red_share")
    assert (fail.result, fail.value) == ("fail", 0.5)


def test_green_runs_without_a_pull_are_never_red() -> None:
    h = History()
    h.run(at(6, 9), 5)
    h.red(at(1, 12), at(2, 12))
    result = check(h.records, "ci.red_share")
    assert (result.result, result.value, result.evidence) == ("pass", 0.0, ())
    assert result.summary == "The default branch was never red in this window."


def test_time_to_fix_is_the_median_of_the_fixes_ending_in_the_window() -> None:
    h = History()
    h.red(at(4, 23, 55), at(5, 0, 5), run=1)  # 600 s, fixed in the window
    h.red(at(6, 10), at(6, 10, 5), run=2)  # 300 s
    h.red(at(7, 10), at(7, 10, 20), run=3)  # 1200 s
    h.red(at(1, 10), at(1, 11))  # fixed before the window
    result = check(h.records, "ci.time_to_fix")
    assert (result.result, result.value) == ("pass", 600.0)
    assert [(e["run"], e["seconds"]) for e in result.evidence] == [(1, 600), (2, 300), (3, 1200)]
    assert result.summary == "A red default branch was fixed in 10 min (median of 3)."
    h.red(at(8, 10), at(8, 12), run=4)  # 7200 s
    warn = check(h.records, "ci.time_to_fix")
    assert (warn.result, warn.value) == ("warn", 900.0)


def test_a_cord_still_pulled_counts_as_a_fix_at_least_as_long_as_it_has_been_red() -> None:
    h = History()
    h.red(at(6, 10), at(6, 12))
    h.red(at(18, 23, 30), None, run=9)
    result = check(h.records, "ci.time_to_fix")
    assert (result.result, result.value) == ("fail", 4500.0)
    assert result.evidence[1]["released_at"] is None
    assert result.detail == {"fixes": 1, "red_now": True, "p90_s": 7200.0}
    assert result.summary == (
        "A red default branch was fixed in 75 min (median of 2); it has been red for 30 min now."
    )


def test_no_red_is_no_data_for_time_to_fix() -> None:
    h = History()
    h.run(at(6, 9), 5)
    result = check(h.records, "ci.time_to_fix")
    assert (result.result, result.value) == ("no data", None)


# ---- properties --------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[Record]:
    h = History()
    minute = st.integers(-4000, 24000)
    for _ in range(draw(st.integers(0, 8))):
        start = WINDOW[0] + timedelta(minutes=draw(minute))
        deploy = draw(st.none() | st.floats(0, 30))
        h.run(
            start,
            draw(st.floats(0, 30)),
            draw(st.sampled_from(["succeeded", "failed", "canceled"])),
            default=draw(st.booleans()),
            deploy_after=deploy,
        )
        author = draw(st.sampled_from(["ana", "bo"]))
        shas = draw(st.lists(st.sampled_from("abcdefgh"), max_size=4))
        h.landed(start, [(s, author, start - timedelta(minutes=draw(minute))) for s in shas])
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["andon.pulled", "andon.released"]))
        h.add(WINDOW[0] + timedelta(minutes=draw(minute)), kind, run=draw(st.integers(1, 9)))
    return h.records


@settings(max_examples=80, deadline=None)
@given(histories(), st.randoms(use_true_random=False), st.integers(1, 13))
def test_properties_of_any_history(records: list[Record], rng: random.Random, split: int) -> None:
    result = ci.health(records, WINDOW)
    assert [c.id for c in result] == IDS
    commits, stage, red, fix = result
    for c in result:
        assert (c.value is None) == (c.result == "no data")
        assert c.summary.endswith(".") and "\n" not in c.summary
    assert red.value is None or 0.0 <= red.value <= 1.0
    for c in (stage, fix):
        assert c.value is None or c.value >= 0
        assert all(e["seconds"] >= 0 for e in c.evidence)
    assert commits.value is None or commits.value > 0
    shuffled = records[:]
    rng.shuffle(shuffled)
    assert ci.health(shuffled, WINDOW) == result
    # Red time adds up: the window's red is the red of its two halves.
    middle = WINDOW[0] + timedelta(days=split)
    halves = [check(records, "ci.red_share", w) for w in ((WINDOW[0], middle), (middle, WINDOW[1]))]
    if red.value is not None:
        total = sum(half.detail.get("red_s", 0.0) for half in halves)
        assert red.detail["red_s"] == pytest.approx(total)
