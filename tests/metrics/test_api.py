"""The metrics API through the real URLs with a real token: a service's report, the room and
DORA across services give the numbers ``metrics.services`` gives for a hand-made history;
a bad window is a 400 naming ``window``, an unknown service a 404, no credentials a 401."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from obeya.backlog import services as backlog
from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.core.models import User
from obeya.metrics import services as metrics
from tests.conftest import Api, actor
from tests.metrics.recorded import history

FIVE = list(metrics.HIGHER_IS_BETTER)


@pytest.fixture(autouse=True)
def _fresh_room() -> None:
    metrics.forget_cache()


@pytest.fixture
def reader(alice: User, api_for: Callable[..., Api]) -> Api:
    """A read-scope token of the service master of "shop"."""
    catalog.create_service(actor(alice), "shop", "Shop")
    return api_for(alice, scope="read")


def numbers(dora: dict[str, Any]) -> dict[str, tuple[Any, str, list[Any]]]:
    return {name: (n["value"], n["band"], n["evidence"]) for name, n in dora.items()}


def test_a_service_report_gives_what_the_services_give(reader: Api) -> None:
    history()
    response = reader.get("/services/shop/metrics?window=30d")
    assert response.status_code == 200, response.body
    body = response.body
    expected = metrics.report_dict(metrics.report("shop", 30))
    assert numbers(body["dora"]) == numbers(expected["dora"])
    assert numbers(body["previous"]) == numbers(expected["previous"])
    assert body["trends"] == expected["trends"]
    assert [c["id"] for c in body["flow"]] == [c["id"] for c in expected["flow"]]
    assert [c["result"] for c in body["ci"]] == [c["result"] for c in expected["ci"]]
    assert [a["level"] for a in body["maturity"]] == [a["level"] for a in expected["maturity"]]
    stages = [s["name"] for s in body["value_stream"]["stages"]]
    assert stages == [s["name"] for s in expected["value_stream"]["stages"]]
    assert (body["service"], body["name"], body["days"]) == ("shop", "Shop", 30)

    dora = body["dora"]  # the history's own answers
    assert dora["deployment_frequency"]["value"] == pytest.approx(3 / 30)
    assert sorted(dora["deployment_frequency"]["evidence"]) == [1, 2, 4]
    assert dora["change_lead_time"]["value"] == 7200 and dora["change_lead_time"]["band"] == "elite"
    assert dora["change_fail_rate"]["value"] == 0.5
    assert sorted(dora["change_fail_rate"]["evidence"]) == [3, 4]
    assert dora["recovery_time"]["value"] == (60 + 1800) / 2
    assert dora["rework_rate"]["value"] == 0.0
    frequency = body["trends"]["deployment_frequency"]  # none in the 30 days before
    assert (frequency["direction"], frequency["better"]) == ("up", True)


def test_a_window_in_weeks_and_the_default(reader: Api) -> None:
    history()
    week = reader.get("/services/shop/metrics?window=1w").body
    assert week["days"] == 7
    assert sorted(week["dora"]["deployment_frequency"]["evidence"]) == [4]
    assert reader.get("/services/shop/metrics").body["days"] == 30


def test_the_room_lists_every_live_service_with_its_tile(reader: Api, alice: User) -> None:
    history()
    backlog.create_story(actor(alice), "shop", "user", "Pay by card")
    board.board("shop")  # someone opens the board: its columns and the card appear
    response = reader.get("/room")
    assert response.status_code == 200, response.body
    [tile] = response.body["services"]
    assert tile["slug"] == "shop" and tile["andon_pulled"] is False
    assert set(tile["dora"]) == set(FIVE)
    expected = metrics.tiles_dict(metrics.room())[0]["dora"]
    for name in FIVE:
        assert tile["dora"][name]["value"] == expected[name]["value"]
        assert tile["dora"][name]["band"] == expected[name]["band"]
    assert tile["dora"]["change_fail_rate"]["value"] == 0.5
    columns = {c["name"]: (c["cards"], c["limit"], c["over"]) for c in tile["columns"]}
    assert columns["Backlog"] == (1, None, False) and columns["Ready"] == (0, 5, False)


def test_dora_across_services_counts_every_service(reader: Api) -> None:
    history()
    response = reader.get("/metrics/dora?window=30d")
    assert response.status_code == 200, response.body
    body = response.body
    assert body["days"] == 30 and body["start"] < body["end"]
    _, measured = metrics.dora_across(30)
    assert numbers(body["dora"]) == numbers(metrics.plain(measured))
    assert body["dora"]["change_fail_rate"]["value"] == 0.5
    assert body["dora"]["change_fail_rate"]["band"] == "low"


@pytest.mark.parametrize(
    "path",
    ["/services/shop/metrics?window={}", "/metrics/dora?window={}"],
)
@pytest.mark.parametrize("window", ["soon", "0d", "999d", "3y"])
def test_a_bad_window_is_a_400_naming_it(reader: Api, path: str, window: str) -> None:
    response = reader.get(path.format(window))
    assert response.status_code == 400
    error = response.body["error"]
    assert error["code"] == "invalid" and error["field"] == "window"
    assert "window" in error["message"]


def test_an_unknown_service_is_a_404(reader: Api) -> None:
    response = reader.get("/services/ghost/metrics")
    assert response.status_code == 404
    assert response.body["error"]["code"] == "not_found"
    assert "ghost" in response.body["error"]["message"]


@pytest.mark.parametrize("path", ["/services/shop/metrics", "/room", "/metrics/dora"])
def test_every_route_needs_credentials(reader: Api, path: str) -> None:
    for token in (None, "obeya_not-a-real-token"):
        response = Api(token).get(path)
        assert response.status_code == 401
        assert response.body["error"]["code"] == "unauthenticated"
