"""metrics.services on a real database: the window, what is read from the event log, the
report of a service, the room's tiles and when its cache is reused or computed again."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import transaction

from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events
from obeya.core.clock import SYSTEM_CLOCK
from obeya.core.errors import InvalidInput
from obeya.core.models import User
from obeya.metrics import services as metrics
from obeya.pipelines import andon
from tests.conftest import SYSTEM, actor
from tests.metrics.recorded import history


@pytest.fixture(autouse=True)
def _fresh_room() -> None:
    metrics.forget_cache()


@pytest.fixture
def shop(alice: User) -> str:
    catalog.create_service(actor(alice), "shop", "Shop")
    return "shop"


@pytest.mark.parametrize(
    ("text", "days"), [("30d", 30), ("12w", 84), ("90", 90), (" 7D ", 7), (None, 30), (14, 14)]
)
def test_a_window_is_days_or_weeks(text: str | int | None, days: int) -> None:
    assert metrics.parse_window(text) == days


@pytest.mark.parametrize("text", ["", "month", "0d", "400d", "-3d", "3m"])
def test_a_bad_window_names_itself_and_the_way_out(text: str) -> None:
    if text == "":
        assert metrics.parse_window(text) == 30  # empty = the default
        return
    with pytest.raises(InvalidInput) as refused:
        metrics.parse_window(text)
    assert refused.value.field == "window"
    assert "30d" in refused.value.message or "1 to 365" in refused.value.message


def test_records_are_the_services_metric_events_in_the_window_only(shop: str) -> None:
    now = SYSTEM_CLOCK.now()
    history(now)
    with transaction.atomic():  # another service, and a kind the formulas never read
        events.record(SYSTEM, "deployment.started", "deployment:99", {"deployment": 99})
        events.record(SYSTEM, "service.updated", "service:shop", {}, service="shop")
    found = metrics.records("shop", now - timedelta(days=13), now)
    assert {r.service for r in found} == {"shop"}
    assert "service.updated" not in {r.kind for r in found}
    assert {r.data.get("deployment") for r in found if r.kind.startswith("deployment.")} == {
        2,
        3,
        4,
    }
    assert [r.at for r in found] == sorted(r.at for r in found)


def test_a_report_measures_the_window_and_the_one_before(shop: str) -> None:
    now = SYSTEM_CLOCK.now()
    history(now)
    found = metrics.report("shop", 30, now)
    assert (found.start, found.end) == (now - timedelta(days=30), now)
    assert found.dora.change_fail_rate.value == 0.5
    assert found.previous.deployment_frequency.value == 0  # nothing the month before
    assert sum(week.deployments for week in found.weeks) == 4
    assert sum(week.failed for week in found.weeks) == 2
    body = metrics.report_dict(found)
    assert body["trends"]["deployment_frequency"]["direction"] == "up"
    assert body["trends"]["deployment_frequency"]["better"] is True
    assert [area["id"] for area in body["maturity"]] == ["flow", "ci", "cd", "operations", "data"]


def test_a_service_with_nothing_recorded_reports_no_data(shop: str) -> None:
    found = metrics.report("shop", 7)
    assert found.dora.change_lead_time.band == "no data"
    assert {check.result for check in found.ci} == {"no data"}
    assert all(area.level >= 1 for area in found.maturity)


def test_the_room_shows_andon_wip_and_dora_of_each_live_service(shop: str, alice: User) -> None:
    history()
    board.columns_of("shop")  # the default board
    andon.pull_andon(actor(alice), "shop", "main is red: unit tests fail")
    (tile,) = metrics.room()
    assert (tile.slug, tile.andon_pulled, tile.andon_reason) == (
        "shop",
        True,
        "main is red: unit tests fail",
    )
    assert tile.dora["change_fail_rate"]["value"] == 0.5
    assert tile.dora["deployment_frequency"]["trend"]["direction"] == "up"
    assert [c.name for c in tile.columns][:2] == ["Backlog", "Ready"]
    (body,) = metrics.tiles_dict([tile])
    assert body["columns"][0]["over"] is False


def test_the_room_reuses_a_tile_until_the_service_records_an_event(shop: str, alice: User) -> None:
    (first,) = metrics.room()
    (again,) = metrics.room()
    assert again is first  # nothing new: the cached tile
    andon.pull_andon(actor(alice), "shop", "stop the line")
    (after,) = metrics.room()
    assert after is not first and after.andon_pulled
    (forced,) = metrics.room(fresh=True)
    assert forced is not after


def test_a_retired_service_leaves_the_room(shop: str, alice: User) -> None:
    catalog.create_service(actor(alice), "old", "Old")
    Service.objects.filter(slug="old").update(stage="retired")
    assert [tile.slug for tile in metrics.room()] == ["shop"]


def test_dora_across_services_counts_every_live_service(shop: str, alice: User) -> None:
    history()
    window, measured = metrics.dora_across(30)
    assert window[1] - window[0] == timedelta(days=30)
    assert sorted(measured.deployment_frequency.evidence) == [1, 2, 4]


def test_a_report_is_reused_until_the_service_records_an_event(shop: str, alice: User) -> None:
    history()
    first = metrics.report("shop", 30)
    assert metrics.report("shop", 30) is first
    assert metrics.report("shop", 7) is not first  # another window, another report
    andon.pull_andon(actor(alice), "shop", "stop the line")
    after = metrics.report("shop", 30)
    assert after is not first
    assert metrics.report("shop", 30, fresh=True) is not after


@pytest.mark.django_db(transaction=True)
def test_an_old_tile_is_shown_while_a_background_thread_computes_it_again(
    monkeypatch: pytest.MonkeyPatch, alice: User
) -> None:
    catalog.create_service(actor(alice), "shop", "Shop")
    (first,) = metrics.room()
    monkeypatch.setattr(metrics, "ROOM_TTL_S", 0.0)
    (shown,) = metrics.room()
    assert shown is first  # old, but shown at once: no request waits for it
    deadline = time.monotonic() + 10
    while metrics.room()[0] is first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metrics.room()[0] is not first, "the background refresh never replaced the tile"
    monkeypatch.setattr(metrics, "ROOM_TTL_S", 60.0)
    assert metrics._refreshing.acquire(timeout=10)  # the last refresh is over (its
    metrics._refreshing.release()  # connection closed) before the database is flushed
