"""SLOs and error budgets, blameless postmortems, problems."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from obeya.backlog import services as backlog
from obeya.catalog import services as catalog
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.errors import Conflict, InvalidInput, NotFound
from obeya.ops import logic, reviews
from obeya.ops import services as ops
from tests.conftest import actor


@pytest.fixture
def rita(make_user):
    user = make_user("rita")
    catalog.create_service(actor(user), "shop", "Shop")
    catalog.add_member(actor(user), "shop", "rita", "reliability_engineer")
    return user


def _resolved_incident(user) -> int:
    incident = ops.open_incident(actor(user), "shop", "Checkout down", "sev1")
    ops.move_incident(actor(user), "shop", incident.number, "resolved", "config restored")
    return incident.number


@pytest.mark.parametrize(
    "blame",
    ["Human error", "operator error during the deploy", "The engineer's mistake", "user errors"],
)
def test_a_postmortem_refuses_a_person_as_a_cause(rita, blame):
    number = _resolved_incident(rita)
    with pytest.raises(InvalidInput, match="what made the error possible") as refused:
        reviews.write_postmortem(
            actor(rita),
            "shop",
            number,
            summary="s",
            impact="i",
            factors=[blame, "no review of config changes"],
        )
    assert refused.value.field == "factors"
    assert reviews.postmortem_of(ops.get_incident("shop", number)) is None


def test_a_postmortem_needs_more_than_one_factor_and_a_restored_service(rita):
    number = _resolved_incident(rita)
    with pytest.raises(InvalidInput, match="more than one"):
        reviews.write_postmortem(
            actor(rita), "shop", number, summary="s", impact="i", factors=["no alarm"]
        )
    open_one = ops.open_incident(actor(rita), "shop", "Still down")
    with pytest.raises(Conflict, match="once the service is restored"):
        reviews.write_postmortem(
            actor(rita), "shop", open_one.number, summary="s", impact="i", factors=["a", "b"]
        )


def test_follow_ups_become_change_requests_once(rita):
    number = _resolved_incident(rita)
    kwargs = {
        "summary": "Checkout returned 500 for 20 minutes after a config change.",
        "impact": "About 300 customers could not pay.",
        "factors": ["The config format was not validated", "No canary for config changes"],
        "actions": ["Validate config in the pipeline", "Canary config changes"],
    }
    written = reviews.write_postmortem(actor(rita), "shop", number, **kwargs)
    assert "opened (sev1, from manual): Checkout down" in written.timeline
    again = reviews.write_postmortem(actor(rita), "shop", number, **kwargs)
    keys = [action.story_key for action in again.actions.all()]
    assert len(keys) == 2
    stories = [backlog.get_story("shop", key) for key in keys]
    assert {story.kind for story in stories} == {"change_request"}
    assert stories[0].details == {"source": "postmortem", "reference": f"INC-{number}"}


def test_problems_group_incidents_and_link_change_requests(rita):
    first, second = _resolved_incident(rita), _resolved_incident(rita)
    problem = reviews.open_problem(actor(rita), "shop", "Config drift", [first, second])
    assert problem.key == "PRB-1" and problem.incidents.count() == 2
    story = backlog.create_story(actor(rita), "shop", "change_request", "Config as code")
    changed = reviews.update_problem(
        actor(rita),
        "shop",
        1,
        status="known_error",
        workaround="restart",
        change_requests=[story.key],
    )
    assert changed.change_requests == [story.key]
    with pytest.raises(NotFound):
        reviews.update_problem(actor(rita), "shop", 1, change_requests=["S-999"])
    with pytest.raises(InvalidInput, match="unknown status"):
        reviews.update_problem(actor(rita), "shop", 1, status="closed")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "availability", "objective_percent": 100}, "objective_percent"),
        ({"kind": "availability", "objective_percent": 0}, "objective_percent"),
        ({"kind": "availability", "objective_percent": 99.9, "window_days": 0}, "window_days"),
        ({"kind": "latency", "objective_percent": 99}, "latency_threshold_ms"),
        ({"kind": "uptime", "objective_percent": 99}, "kind"),
    ],
)
def test_bad_slos_are_refused(rita, fields, field):
    ops.create_monitor(actor(rita), "shop", "web", kind="command", command="true")
    with pytest.raises(InvalidInput) as refused:
        reviews.create_slo(actor(rita), "shop", "x", monitor="web", **fields)
    assert refused.value.field == field


def test_the_error_budget_comes_from_real_check_results(rita):
    clock = ManualClock(timezone.now() - timedelta(days=2))
    me = Actor(user=rita, channel="web", clock=clock)
    monitor = ops.create_monitor(me, "shop", "web", kind="command", command="true")
    slo = reviews.create_slo(
        me, "shop", "avail", kind="availability", objective_percent=99.0, monitor="web"
    )
    for minute in range(1000):  # 1000 checks, 5 failed: half the 1 % budget is spent
        clock.advance(timedelta(minutes=1))
        ops.record_result(me, monitor.pk, minute % 200 != 0, 10.0, "", 0.0)
    view = reviews.slo_view(slo, clock.now())
    assert (view.status.good, view.status.total) == (995, 1000)
    assert view.status.budget_remaining_percent == pytest.approx(50.0)
    assert view.status.alert == ""
    for _ in range(30):  # half an hour of failures burns fast
        clock.advance(timedelta(minutes=1))
        ops.record_result(me, monitor.pk, False, 10.0, "down", 0.0)
    burning = reviews.slo_view(slo, clock.now())
    assert burning.status.alert == "fast burn"
    assert burning.status.budget_remaining_percent == 0.0


def test_slo_status_on_known_numbers():
    status = logic.slo_status(99.9, (9990, 10000), (60, 60), (5, 5), (360, 360), (30, 30))
    assert status.achieved_percent == pytest.approx(99.9)
    assert status.budget_remaining_percent == pytest.approx(0.0, abs=1e-9)
    assert logic.burn_rate(1, 100, 99.0) == pytest.approx(1.0)


@given(
    st.floats(min_value=50, max_value=99.99),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
)
def test_the_budget_left_is_a_percentage_and_burn_is_never_negative(objective, good, bad):
    counts = (good, good + bad)
    status = logic.slo_status(objective, counts, counts, counts, counts, counts)
    if status.total:
        assert status.budget_remaining_percent is not None
        assert 0.0 <= status.budget_remaining_percent <= 100.0
        assert status.achieved_percent is not None and 0 <= status.achieved_percent <= 100
    assert status.fast_burn >= 0 and status.slow_burn >= 0
