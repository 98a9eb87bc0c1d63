"""The pure rules of deployments: who wins an environment, what is kept, how a warm-up ends.

``choose_next`` is checked as a property (RELIABILITY B3): over any set of waiting
deployments and whatever runs already, rollbacks go first, the winner is never older than
a deployment it makes outdated nor than the commit already running, and none is lost.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from obeya.deploy import logic
from obeya.deploy.logic import Candidate

EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def commit_order(candidate: Candidate) -> tuple[float, int]:
    """Which commit is newer: the later commit time, then the later run of it."""
    stamp, run_number, _ = logic.newness(candidate)
    return stamp, run_number


@st.composite
def candidates(draw: st.DrawFn, size: int = 8) -> list[Candidate]:
    """Waiting deployments: few commit moments (ties happen, as in git's 1 s resolution)."""
    count = draw(st.integers(0, size))
    ids = draw(st.lists(st.integers(1, 500), min_size=count, max_size=count, unique=True))
    runs = draw(st.lists(st.integers(1, 12), min_size=count, max_size=count, unique=True))
    made = []
    for pk, run in zip(ids, runs, strict=True):
        second = draw(st.none() | st.integers(0, 2))
        made.append(
            Candidate(
                id=pk,
                kind=draw(st.sampled_from(["deploy", "deploy", "deploy", "rollback"])),
                committed_at=None if second is None else EPOCH + timedelta(seconds=second),
                run_number=run,
                sha=f"sha-of-run-{run}",
            )
        )
    return made


@st.composite
def running_now(draw: st.DrawFn) -> Candidate | None:
    if draw(st.booleans()):
        return None
    run = draw(st.integers(1, 12))
    return Candidate(
        id=1000 + run,
        kind=draw(st.sampled_from(["deploy", "deploy", "rollback"])),
        committed_at=EPOCH + timedelta(seconds=draw(st.integers(0, 2))),
        run_number=run,
        sha=f"sha-of-run-{run}",
    )


@settings(max_examples=400, deadline=None)
@given(waiting=candidates(), current=running_now())
def test_choose_next_rollbacks_first_newest_wins_and_nothing_is_lost(
    waiting: list[Candidate], current: Candidate | None
) -> None:
    winner, outdated = logic.choose_next(waiting, current)
    rollbacks = [c for c in waiting if c.kind == "rollback"]
    if rollbacks:
        # A rollback is a deliberate move back in time: first asked, first done; the rest wait.
        assert winner == min(rollbacks, key=lambda c: c.id)
        assert outdated == []
        return
    ids = [c.id for c in outdated] + ([winner.id] if winner else [])
    assert sorted(ids) == sorted(c.id for c in waiting), "each is chosen or outdated, once"
    if winner is None:
        return
    for older in outdated:
        assert commit_order(older) <= commit_order(winner), (older, winner)
    if current is not None and current.kind == "deploy" and winner.sha != current.sha:
        # Never an older commit after a newer one (GitLab's resource_group lesson).
        assert commit_order(winner) >= commit_order(current), (winner, current)


def test_a_commit_of_the_same_second_but_an_earlier_run_does_not_replace_a_later_one() -> None:
    moment = EPOCH
    running = Candidate(1, "deploy", moment, run_number=7, sha="b")
    late = Candidate(2, "deploy", moment, run_number=5, sha="a")
    assert logic.choose_next([late], running) == (None, [late])


def test_the_same_commit_may_be_deployed_again() -> None:
    running = Candidate(1, "deploy", EPOCH, run_number=7, sha="b")
    again = Candidate(2, "deploy", EPOCH, run_number=7, sha="b")
    assert logic.choose_next([again], running) == (again, [])


def test_release_names_sort_in_the_order_they_were_made_even_within_one_second() -> None:
    made = [logic.release_name(EPOCH + timedelta(microseconds=n * 300), 9 + n) for n in range(4)]
    assert sorted(made) == made, made
    assert len(set(made)) == len(made)


def test_to_archive_keeps_the_newest_and_the_protected_ones() -> None:
    names = [logic.release_name(EPOCH + timedelta(milliseconds=n), n) for n in range(1, 8)]
    moved = logic.to_archive(names, keep=3, protected=[names[0]])
    assert moved == names[1:4]
    assert logic.to_archive(names, keep=0, protected=[]) == names[:-1]  # always one kept


@settings(max_examples=200, deadline=None)
@given(checks=st.lists(st.booleans(), max_size=30), passes=st.integers(1, 5))
def test_a_warm_up_passes_exactly_when_enough_checks_in_a_row_passed(
    checks: list[bool], passes: int
) -> None:
    judge = logic.WarmUp(passes=passes, window_s=10, started=0.0)
    streak = 0
    for healthy in checks:
        judge.record(healthy, "" if healthy else "HTTP 500")
        streak = streak + 1 if healthy else 0
        assert judge.passed == (streak >= passes)
    assert judge.expired(10.0) and not judge.expired(9.99)
