"""Flow metrics: a hand-computed board pins the definitions; properties keep them honest."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obeya.backlog import services as backlog
from obeya.board import flow, flow_api, flow_queries, flow_store
from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.models import Event

COLUMNS = (
    flow.BoardColumn("Backlog"),
    flow.BoardColumn("Ready"),
    flow.BoardColumn("In progress", starts_work=True),
    flow.BoardColumn("Review"),
    flow.BoardColumn("Done", is_done=True),
)
FLAGS = {c.name: c for c in COLUMNS}
NAMES = [c.name for c in COLUMNS]


def t(day: int, hour: int) -> datetime:
    """A time in March 2026 (Monday 2 March starts ISO week 10), UTC."""
    return datetime(2026, 3, day, hour, tzinfo=UTC)


# The hand-computed board: four stories on the default columns, times in UTC.
#
#   story  when          event                       note
#   S-1    Mar 1 09:00   created (Backlog)           before the window
#          Mar 2 09:00   -> Ready
#          Mar 3 09:00   -> In progress              start
#          Mar 4 15:00   -> Review
#          Mar 5 09:00   -> Done                     done: lead 96 h, cycle 48 h
#   S-2    Mar 2 10:00   created
#          Mar 3 10:00   -> In progress              start
#          Mar 4 10:00   -> Done                     first done (week 10) ...
#          Mar 6 10:00   -> Review                   ... reopened
#          Mar 9 16:00   -> Done                     LAST done: lead 174 h, cycle 150 h
#   S-3    Mar 3 08:00   created
#          Mar 4 08:00   -> Ready
#          Mar 6 12:00   -> In progress              start
#          Mar 9 12:00   -> Ready                    moved back
#          Mar 10 08:00  -> In progress              not done: aging 120 h since start
#   S-4    Mar 8 12:00   created                     not started: aging 72 h since created
#
# now = Mar 11 12:00, days = 10: the window is Mar 2 00:00 .. now (weeks 10 and 11).
#
#   lead time   S-1 96, S-2 174       median (96+174)/2 = 135   p90 (rank ceil(1.8)=2) 174
#   cycle time  S-1 48, S-2 150       median 99                 p90 150
#   throughput  2026-W10: 1 (S-1)     2026-W11: 1 (S-2, its first done does not count)
#
#   end of day   WIP per column           CFD bands (column or beyond)
#                B  R  IP Rev D           B  R  IP Rev D
#   Mar 2        1  1  0  0   0           2  1  0  0   0
#   Mar 3        1  0  2  0   0           3  2  2  0   0
#   Mar 4        0  1  0  1   1           3  3  2  2   1
#   Mar 5        0  1  0  0   2           3  3  2  2   2
#   Mar 6        0  0  1  1   1           3  3  3  2   1
#   Mar 7        0  0  1  1   1           3  3  3  2   1
#   Mar 8        1  0  1  1   1           4  3  3  2   1
#   Mar 9        1  1  0  0   2           4  3  2  2   2
#   Mar 10       1  0  1  0   2           4  3  3  2   2
#   Mar 11       1  0  1  0   2           4  3  3  2   2
#
#   aging at now: S-3 In progress 120 h (started), S-4 Backlog 72 h (created)
HISTORY: list[tuple[datetime, str, str]] = [
    (t(1, 9), "S-1", ""),
    (t(2, 9), "S-1", "Ready"),
    (t(2, 10), "S-2", ""),
    (t(3, 8), "S-3", ""),
    (t(3, 9), "S-1", "In progress"),
    (t(3, 10), "S-2", "In progress"),
    (t(4, 8), "S-3", "Ready"),
    (t(4, 10), "S-2", "Done"),
    (t(4, 15), "S-1", "Review"),
    (t(5, 9), "S-1", "Done"),
    (t(6, 10), "S-2", "Review"),
    (t(6, 12), "S-3", "In progress"),
    (t(8, 12), "S-4", ""),
    (t(9, 12), "S-3", "Ready"),
    (t(9, 16), "S-2", "Done"),
    (t(10, 8), "S-3", "In progress"),
]
NOW = t(11, 12)
WIP_TABLE = {
    2: (1, 1, 0, 0, 0),
    3: (1, 0, 2, 0, 0),
    4: (0, 1, 0, 1, 1),
    5: (0, 1, 0, 0, 2),
    6: (0, 0, 1, 1, 1),
    7: (0, 0, 1, 1, 1),
    8: (1, 0, 1, 1, 1),
    9: (1, 1, 0, 0, 2),
    10: (1, 0, 1, 0, 2),
    11: (1, 0, 1, 0, 2),
}
CFD_TABLE = {
    2: (2, 1, 0, 0, 0),
    3: (3, 2, 2, 0, 0),
    4: (3, 3, 2, 2, 1),
    5: (3, 3, 2, 2, 2),
    6: (3, 3, 3, 2, 1),
    7: (3, 3, 3, 2, 1),
    8: (4, 3, 3, 2, 1),
    9: (4, 3, 2, 2, 2),
    10: (4, 3, 3, 2, 2),
    11: (4, 3, 3, 2, 2),
}


def record(at: datetime, seq: int, key: str, to: str) -> flow.StoryEvent:
    if not to:
        return flow.StoryEvent(at, seq, flow.CREATED, key)
    column = FLAGS[to]
    return flow.StoryEvent(at, seq, flow.MOVED, key, to, column.starts_work, column.is_done)


def fixture_events() -> list[flow.StoryEvent]:
    return [record(at, seq, key, to) for seq, (at, key, to) in enumerate(HISTORY, start=1)]


def assert_matches_the_hand_computed_board(metrics: flow.FlowMetrics) -> None:
    def per_story(times: flow.Times) -> list[tuple[str, float]]:
        return [(item.key, item.hours) for item in times.items]

    assert per_story(metrics.lead_time) == [("S-1", 96.0), ("S-2", 174.0)]
    assert (metrics.lead_time.median_h, metrics.lead_time.p90_h) == (135.0, 174.0)
    assert per_story(metrics.cycle_time) == [("S-1", 48.0), ("S-2", 150.0)]
    assert (metrics.cycle_time.median_h, metrics.cycle_time.p90_h) == (99.0, 150.0)
    assert metrics.throughput == [("2026-W10", 1), ("2026-W11", 1)]
    assert metrics.wip == [
        (date(2026, 3, day), dict(zip(NAMES, row, strict=True))) for day, row in WIP_TABLE.items()
    ]
    assert metrics.cfd == [
        (date(2026, 3, day), dict(zip(NAMES, row, strict=True))) for day, row in CFD_TABLE.items()
    ]
    assert metrics.aging == [
        flow.Aging("S-3", "In progress", 120.0, True),
        flow.Aging("S-4", "Backlog", 72.0, False),
    ]


def test_the_hand_computed_board():
    metrics = flow.flow_metrics(fixture_events(), COLUMNS, flow.Window(10, NOW))
    assert metrics.window.start == t(2, 0)
    assert_matches_the_hand_computed_board(metrics)


def test_a_shorter_window_keeps_only_what_was_done_in_it():
    metrics = flow.flow_metrics(fixture_events(), COLUMNS, flow.Window(5, NOW))  # Mar 7..11
    assert [item.key for item in metrics.lead_time.items] == ["S-2"]
    assert metrics.lead_time.median_h == metrics.lead_time.p90_h == 174.0
    assert metrics.throughput == [("2026-W10", 0), ("2026-W11", 1)]
    assert [day for day, _ in metrics.cfd] == [date(2026, 3, d) for d in range(7, 12)]


def test_events_after_now_are_not_seen_yet():
    earlier = flow.flow_metrics(fixture_events(), COLUMNS, flow.Window(3, t(5, 12)))  # Mar 3..5
    # On Mar 5 at noon S-2 has not been reopened yet: it counts, from its first done.
    assert [(i.key, i.hours) for i in earlier.lead_time.items] == [("S-2", 48.0), ("S-1", 96.0)]
    assert [card.key for card in earlier.aging] == ["S-3"]  # S-4 does not exist yet


def test_days_and_weeks_follow_the_window_time_zone():
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")  # UTC+9: S-1's move to Done at 09:00 UTC is 18:00 there
    metrics = flow.flow_metrics(fixture_events(), COLUMNS, flow.Window(10, NOW, tokyo))
    assert metrics.window.start == datetime(2026, 3, 2, tzinfo=tokyo)
    # S-4 was created at 21:00 on Mar 8 in Tokyo: still counted on the 8th.
    assert dict(metrics.wip)[date(2026, 3, 8)]["Backlog"] == 1
    # S-3 went back to Ready at 21:00 on Mar 9 in Tokyo; S-2 reached Done at 01:00 on Mar 10.
    assert dict(metrics.wip)[date(2026, 3, 9)] == dict(zip(NAMES, (1, 1, 0, 1, 1), strict=True))


def test_percentiles():
    assert flow.median([]) is None and flow.p90([]) is None
    assert flow.median([3.0, 1.0, 2.0]) == 2.0
    assert flow.p90([float(n) for n in range(1, 11)]) == 9.0  # rank ceil(9.0) = 9
    assert flow.p90([float(n) for n in range(1, 12)]) == 10.0  # rank ceil(9.9) = 10
    assert flow.p90([5.0]) == 5.0


def test_a_window_is_at_least_a_day():
    with pytest.raises(ValueError, match="at least one day"):
        flow.Window(0, NOW)


# ---- properties --------------------------------------------------------------------------

BASE = datetime(2026, 1, 5, tzinfo=UTC)


@st.composite
def histories(draw: st.DrawFn, max_stories: int = 6) -> list[flow.StoryEvent]:
    """Stories created at whole hours, each moved around the board; ties in time happen."""
    steps: list[tuple[int, int, int, str, str]] = []
    for number in range(1, draw(st.integers(1, max_stories)) + 1):
        key = f"S-{number}"
        hour = draw(st.integers(0, 24 * 30))
        steps.append((hour, number, 0, key, ""))
        column = 0
        moves = draw(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 4)), max_size=8))
        for index, (gap, target) in enumerate(moves, start=1):
            if target == column:
                continue
            hour, column = hour + gap, target
            steps.append((hour, number, index, key, NAMES[column]))
    steps.sort()
    return [
        record(BASE + timedelta(hours=hour), seq, key, to)
        for seq, (hour, _, _, key, to) in enumerate(steps, start=1)
    ]


windows = st.builds(
    flow.Window,
    days=st.integers(1, 60),
    now=st.integers(0, 24 * 60).map(lambda h: BASE + timedelta(hours=h)),
)


def done_in_window(events: list[flow.StoryEvent], window: flow.Window) -> set[str]:
    """A second, plainer reading of "done in the window": per story, its last becoming done."""
    done = set()
    for key in {e.key for e in events}:
        became_done, is_done = None, False
        for event in sorted(e for e in events if e.key == key and e.at <= window.now):
            if event.kind == flow.MOVED:
                if event.done and not is_done:
                    became_done = event.at
                is_done = event.done
        if is_done and became_done is not None and became_done >= window.start:
            done.add(key)
    return done


@given(histories(), windows)
def test_lead_time_is_at_least_cycle_time_and_neither_is_negative(events, window):
    metrics = flow.flow_metrics(events, COLUMNS, window)
    lead = {item.key: item.hours for item in metrics.lead_time.items}
    for item in metrics.cycle_time.items:
        assert lead[item.key] >= item.hours >= 0
    assert all(hours >= 0 for hours in lead.values())


@given(histories(), windows)
def test_throughput_adds_up_to_the_stories_done_in_the_window(events, window):
    metrics = flow.flow_metrics(events, COLUMNS, window)
    done = done_in_window(events, window)
    assert sum(count for _, count in metrics.throughput) == len(done)
    assert {item.key for item in metrics.lead_time.items} == done


@given(st.data(), histories(), windows)
def test_the_order_of_the_input_changes_nothing(data, events, window):
    shuffled = data.draw(st.permutations(events))
    assert flow.flow_metrics(shuffled, COLUMNS, window) == flow.flow_metrics(
        events, COLUMNS, window
    )


@given(histories(), windows)
def test_bands_are_stacked_wip_and_every_card_is_somewhere(events, window):
    metrics = flow.flow_metrics(events, COLUMNS, window)
    for (day, wip), (_, bands) in zip(metrics.wip, metrics.cfd, strict=True):
        for here, after in itertools.pairwise([*NAMES, None]):
            assert bands[here] - (bands[after] if after else 0) == wip[here]
        end_of_day = window.midnight(day + timedelta(days=1))
        created = {e.key for e in events if e.at < end_of_day and e.at <= window.now}
        assert sum(wip.values()) == len(created)
    not_done = {card.key for card in metrics.aging}
    assert not not_done & {item.key for item in metrics.lead_time.items}


# ---- from the event log ------------------------------------------------------------------

slugs = itertools.count(1)


def insert(slug: str, events: list[flow.StoryEvent]) -> None:
    """Bulk-write story events as the board would record them (seq is the insertion order)."""
    Event.objects.bulk_create(
        Event(
            at=e.at,
            actor_name="test",
            channel="system",
            kind=e.kind,
            subject=f"story:{slug}/{e.key}",
            service=slug,
            data={"key": e.key}
            if e.kind == flow.CREATED
            else {"key": e.key, "to": e.to, "starts_work": e.starts_work, "done": e.done},
        )
        for e in events
    )


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mine=histories(4), theirs=histories(4), window=windows)
def test_another_services_events_change_nothing(mine, theirs, window):
    n = next(slugs)
    slug, other = f"mine-{n}", f"theirs-{n}"
    insert(slug, mine)
    alone = flow.flow_metrics(flow_store.story_events(slug), COLUMNS, window)
    insert(other, theirs)  # the same keys S-1, S-2 … on another board
    insert(slug + "x", theirs)  # and a slug that starts like ours
    together = flow.flow_metrics(flow_store.story_events(slug), COLUMNS, window)
    assert together == alone == flow.flow_metrics(mine, COLUMNS, window)


@pytest.mark.django_db
def test_event_times_come_back_to_the_microsecond():
    moment = datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)
    insert("exact", [flow.StoryEvent(moment, 1, flow.CREATED, "S-1")])
    [event] = flow_store.story_events("exact")
    assert event.at == moment and event.at.utcoffset() == timedelta(0)


def at(user, when: datetime) -> Actor:
    return Actor(user=user, channel="web", clock=ManualClock(when))


@pytest.fixture
def pay(alice, settings):
    """The hand-computed board, played through the real board with a clock set per move."""
    settings.TIME_ZONE = "UTC"
    catalog.create_service(at(alice, t(1, 8)), "pay", "Pay")
    for column in NAMES:  # no checklists or gates: this is about time, not about rules
        board.configure_column(at(alice, t(1, 8)), "pay", column, done_checklist=[], gates=[])
    for when, key, to in HISTORY:
        if to:
            board.move_card(at(alice, when), "pay", key, to)
        else:
            backlog.create_story(at(alice, when), "pay", "user", f"story {key}")
    return "pay"


def test_the_hand_computed_board_from_the_event_log(pay):
    assert_matches_the_hand_computed_board(flow_queries.service_flow(pay, days=10, now=NOW))


def test_the_api_returns_every_metric(pay, alice, api_for):
    response = api_for(alice, "read").get(f"/services/{pay}/flow?days=3650")
    assert response.status_code == 200, response.body
    body = response.body
    assert set(body) == {
        "window",
        "columns",
        "lead_time",
        "cycle_time",
        "throughput",
        "wip",
        "aging",
        "cfd",
    }
    assert body["window"]["days"] == 3650 and body["window"]["time_zone"] == "UTC"
    assert [(i["key"], i["hours"]) for i in body["lead_time"]["items"]] == [
        ("S-1", 96.0),
        ("S-2", 174.0),
    ]
    assert body["lead_time"]["median_h"] == 135.0 and body["cycle_time"]["p90_h"] == 150.0
    assert {"week": "2026-W10", "done": 1} in body["throughput"]
    assert {"day": "2026-03-04", "columns": dict(zip(NAMES, WIP_TABLE[4], strict=True))} in body[
        "wip"
    ]
    assert {"day": "2026-03-09", "bands": dict(zip(NAMES, CFD_TABLE[9], strict=True))} in body[
        "cfd"
    ]
    assert [(c["key"], c["column"], c["started"]) for c in body["aging"]] == [
        ("S-3", "In progress", True),
        ("S-4", "Backlog", False),
    ]
    assert len(body["wip"]) == len(body["cfd"]) == 3650


def test_the_api_gives_the_same_numbers_as_csv(pay, alice, api_for):
    api = api_for(alice, "read")
    response = api.client.get(
        f"/api/services/{pay}/flow?days=3650&format=csv", HTTP_AUTHORIZATION=f"Bearer {api.token}"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="pay-flow-3650d.csv"' in response["Content-Disposition"]
    lines = response.content.decode().splitlines()
    assert lines[0] == "metric,period,key,column,value"
    assert "lead_time_h,2026-03-05,S-1,,96.0" in lines
    assert "cycle_time_h,2026-03-09,S-2,,150.0" in lines
    assert "throughput,2026-W11,,,1" in lines
    assert "wip,2026-03-06,,Review,1" in lines
    assert "cfd,2026-03-06,,Backlog,3" in lines


@pytest.mark.parametrize("days", ["0", "3651", "-5"])
def test_the_api_refuses_a_window_out_of_range(pay, alice, api_for, days):
    response = api_for(alice, "read").get(f"/services/{pay}/flow?days={days}")
    assert response.status_code == 400
    assert response.body["error"]["field"] == "days"
    assert "days must be from 1 to 3650" in response.body["error"]["message"]


def test_the_api_names_an_unknown_service_and_format(pay, alice, api_for):
    api = api_for(alice, "read")
    missing = api.get("/services/nope/flow")
    assert missing.status_code == 404 and 'no service "nope"' in missing.body["error"]["message"]
    wrong = api.get(f"/services/{pay}/flow?format=xml")
    assert wrong.status_code == 400 and wrong.body["error"]["field"] == "format"


def test_the_api_needs_a_signed_in_reader(pay):
    from django.test import Client

    assert Client().get(f"/api/services/{pay}/flow").status_code == 401


def test_the_charts_partial_points_at_the_api():
    from django.template.loader import render_to_string

    html = render_to_string(
        "board/_flow_charts.html", {"flow_url": "/api/services/pay/flow?days=90"}
    )
    assert 'data-flow-url="/api/services/pay/flow?days=90"' in html
    assert 'href="/api/services/pay/flow?days=90&amp;format=csv"' in html
    for chart in ("times", "throughput", "cfd", "wip"):
        assert f'data-flow-chart="{chart}"' in html and f'data-flow-table="{chart}"' in html
    assert html.count("<details>") == 4
    assert "web/vendor/chart-4.6.1.umd.min.js" in html and "web/flow-charts.js" in html


def test_the_api_body_is_what_the_schema_would_write(pay, alice, api_for):
    """The flow JSON skips the response schema's validation for speed: it must not differ."""
    import json

    from ninja.responses import NinjaJSONEncoder

    from obeya.board.flow_api import FlowOut

    metrics = flow_queries.service_flow(pay, days=3650)
    validated = FlowOut.model_validate(flow_api.flow_body(metrics)).model_dump()
    assert flow_api.flow_json(metrics) == json.dumps(validated, cls=NinjaJSONEncoder)
    served = api_for(alice, "read").get(f"/services/{pay}/flow?days=3650").body
    assert served["window"].pop("end") and validated["window"].pop("end")  # now, twice
    assert served == json.loads(json.dumps(validated, cls=NinjaJSONEncoder))
