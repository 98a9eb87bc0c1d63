"""The Obeya room and a service's Metrics tab, through the real URLs on a real database: the
numbers come from events recorded as the services record them, the downloads have one row
per thing, a bad window is refused on the page, and the room's live stream answers at once."""

from __future__ import annotations

import csv
import html as markup
import io
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.test import AsyncClient, Client

from obeya.catalog import services as catalog
from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.clock import SYSTEM_CLOCK, ManualClock
from obeya.core.models import User
from obeya.metrics import services as metrics
from obeya.ops import services as ops
from obeya.pipelines import andon
from tests.conftest import PASSWORD, actor

TAB = "/services/shop/metrics/"


@pytest.fixture(autouse=True)
def _fresh_room() -> None:
    metrics.forget_cache()


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    """The service master of "shop", a service with nothing measured yet."""
    user = make_user("alice")
    catalog.create_service(actor(user), "shop", "Shop")
    return user


@pytest.fixture
def client(alice: User) -> Client:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    return client


def page_of(response) -> str:
    return markup.unescape(response.content.decode())


def deploy(
    number: int,
    ended: datetime,
    *,
    commits_before: timedelta = timedelta(hours=2),
    outcome: str = "succeeded",
) -> None:
    """A production deployment of shop that reached users, told by its events."""
    clock = ManualClock(ended - timedelta(minutes=5))
    system = Actor(user=None, channel="cli", clock=clock)
    data = {
        "deployment": number,
        "environment": "production",
        "tier": "production",
        "kind": "deploy",
        "release": f"r{number}",
        "previous_release": f"r{number - 1}" if number > 1 else "",
        "sha": f"{number:040x}",
    }
    with transaction.atomic():
        events.record(system, "deployment.started", f"deployment:{number}", data, service="shop")
        clock.advance(timedelta(minutes=4))
        if outcome == "rolled_back":
            failed = {**data, "rolled_back": True}
            events.record(
                system, "deployment.failed", f"deployment:{number}", failed, service="shop"
            )
        clock.advance(timedelta(minutes=1))
        commit = {"sha": f"{number:040x}", "committed_at": (ended - commits_before).isoformat()}
        events.record(
            system,
            f"deployment.{outcome}",
            f"deployment:{number}",
            {**data, "commits": [commit] if outcome == "succeeded" else []},
            service="shop",
        )


@pytest.fixture
def history(alice: User) -> None:
    """Four production deployments in the last 30 days; the third rolled back by itself."""
    now = SYSTEM_CLOCK.now()
    deploy(1, now - timedelta(days=20))
    deploy(2, now - timedelta(days=12))
    deploy(3, now - timedelta(days=5), outcome="rolled_back")
    deploy(4, now - timedelta(days=4))


def rows(response) -> list[dict[str, str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


# ---- the Metrics tab ------------------------------------------------------------------------


def test_a_service_with_nothing_measured_says_no_data_everywhere(client: Client) -> None:
    response = client.get(TAB)
    assert response.status_code == 200
    page = page_of(response)
    assert page.count("no data") >= 5
    assert "Nothing in this window: no data." in page
    assert 'href="/services/shop/metrics/"' in page  # the tab
    for name in ("weeks", "dora", "checks", "value-stream", "maturity"):
        assert client.get(f"{TAB}{name}.csv").status_code == 200
        assert client.get(f"{TAB}{name}.json").status_code == 200
    assert client.get("/room/").status_code == 200


def test_the_tab_shows_each_number_with_its_band_trend_and_evidence(
    client: Client, history: None
) -> None:
    response = client.get(TAB + "?window=30d")
    assert response.status_code == 200
    page = page_of(response)
    # three successful deployments in 30 days: 0.7 a week; commits 2 h old; 1 of 4 failed
    frequency = page[page.index('data-metric="deployment_frequency"') :]
    assert "0.7 a week" in frequency[:600]
    assert "Band: <strong>medium</strong>" in frequency[:600]
    lead = page[page.index('data-metric="change_lead_time"') :]
    assert "2 h" in lead[:600] and "elite" in lead[:600]
    fail = page[page.index('data-metric="change_fail_rate"') :]
    assert "25 %" in fail[:600]
    assert "↑ better" in page or "no earlier data" in page
    evidence = page[page.index('id="evidence-change_fail_rate"') :]
    evidence = evidence[: evidence.index("</details>")]
    assert 'href="/services/shop/deployments/3/"' in evidence
    assert "rolled back automatically" in evidence
    listed = page[page.index('id="evidence-deployment_frequency"') :]
    listed = listed[: listed.index("</details>")]
    for number in (1, 2, 4):
        assert f'href="/services/shop/deployments/{number}/"' in listed
    assert 'href="/services/shop/deployments/3/"' not in listed
    assert 'id="metrics-weeks"' in page and "data-metrics-chart" in page
    assert "<svg" in page and "data-value-stream" in page
    assert page.count('class="maturity-area"') == 5


def test_the_csv_downloads_have_one_row_per_thing(client: Client, history: None) -> None:
    dora = rows(client.get(TAB + "dora.csv?window=30d"))
    assert [row["metric"] for row in dora] == list(metrics.HIGHER_IS_BETTER)
    by_metric = {row["metric"]: row for row in dora}
    assert by_metric["change_fail_rate"]["value"] == "0.25"
    assert by_metric["deployment_frequency"]["evidence"] == "3"
    assert by_metric["change_lead_time"]["band"] == "elite"

    weeks = rows(client.get(TAB + "weeks.csv?window=30d"))
    assert 5 <= len(weeks) <= 6
    assert sum(int(row["deployments"]) for row in weeks) == 4
    assert sum(int(row["failed"]) for row in weeks) == 1

    report = metrics.report("shop", 30)
    checks = rows(client.get(TAB + "checks.csv"))
    assert len(checks) == len(report.flow) + len(report.ci)
    assert {row["group"] for row in checks} == {"flow", "ci"}
    stages = rows(client.get(TAB + "value-stream.csv"))
    assert [row["stage"] for row in stages] == [s.name for s in report.value_stream.stages]
    maturity = rows(client.get(TAB + "maturity.csv"))
    assert len(maturity) == sum(len(area.criteria) for area in report.maturity)
    assert len({row["area"] for row in maturity}) == 5

    body = client.get(TAB + "dora.json?window=7d").json()
    assert body["window"]["days"] == 7 and len(body["dora"]) == 5
    download = client.get(TAB + "weeks.csv?window=30d")
    assert 'filename="shop-weeks-30d.csv"' in download["Content-Disposition"]


@pytest.mark.parametrize("window", ["soon", "0d", "999d"])
def test_a_bad_window_is_refused_on_the_page_with_what_was_typed(
    client: Client, window: str
) -> None:
    response = client.get(TAB, {"window": window})
    assert response.status_code == 400
    page = page_of(response)
    assert 'role="alert"' in page and "window" in page
    assert f'value="{window}"' in page and 'aria-invalid="true"' in page
    assert "the last 30 days" in page  # the page still shows the default window
    refused = client.get(TAB + "dora.csv", {"window": window})
    assert refused.status_code == 400 and b"window" in refused.content


def test_an_unknown_service_is_not_found(client: Client) -> None:
    assert client.get("/services/nope/metrics/").status_code == 404
    assert client.get("/services/nope/metrics/dora.csv").status_code == 404


def test_the_pages_need_a_sign_in(alice: User) -> None:
    anonymous = Client()
    for path in ("/room/", "/room/events", TAB, TAB + "dora.csv"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login/" in response["Location"], path


# ---- the room -------------------------------------------------------------------------------


def test_the_room_shows_every_live_service_in_words(client: Client, alice: User) -> None:
    catalog.create_service(actor(alice), "pay", "Payments")
    andon.pull_andon(actor(alice), "pay", "main is red since run 12")
    incident = ops.open_incident(actor(alice), "pay", "Checkout returns 500", "sev1")
    deploy(1, SYSTEM_CLOCK.now() - timedelta(days=2))

    page = page_of(client.get("/room/"))
    assert page.count('<section class="panel') == 2
    # in the order of their names: Payments, then Shop
    pay = page[page.index('data-service="pay"') : page.index('data-service="shop"')]
    assert "ANDON PULLED" in pay and "main is red since run 12" in pay
    assert f"INC-{incident.number}" in pay and "SEV1" in pay and "Checkout returns 500" in pay
    shop = page[page.index('data-service="shop"') :]
    assert "Line running" in shop and "No open incident" in shop
    assert 'data-deployments="1"' in shop and "1 in production" in shop
    assert "no SLO set" in shop
    assert 'href="/room/"' in page  # in the top navigation

    partial = client.get("/room/?partial=1").content.decode()
    assert "<html" not in partial and 'data-service="pay"' in partial
    assert "data-version=" in partial
    body = client.get("/room/?format=json").json()
    assert {tile["slug"] for tile in body["services"]} == {"shop", "pay"}


def test_the_room_marks_a_column_over_its_wip_limit(client: Client, alice: User) -> None:
    from obeya.backlog import services as backlog
    from obeya.board import services as board

    me = actor(alice)
    for title in ("One", "Two", "Three"):
        backlog.create_story(me, "shop", "user", title)
    board.configure_column(me, "shop", "Backlog", wip_limit=2)
    board.board("shop")  # the board places the stories' cards
    page = page_of(client.get("/room/"))
    shop = page[page.index('data-service="shop"') :]
    assert 'Backlog <strong>3/2</strong> <span class="wip-tag">⚠ OVER</span>' in shop
    assert "In progress <strong>0/3</strong>" in shop


def test_the_live_stream_says_the_version_at_once(alice: User, history: None) -> None:
    async def first_events() -> tuple[str, str]:
        stream = AsyncClient()
        await stream.aforce_login(alice)
        response = await stream.get("/room/events")
        chunks = []
        iterator = response.streaming_content.__aiter__()
        while not any("event: version" in c for c in chunks):
            chunk = await iterator.__anext__()
            chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        await iterator.aclose()
        return response["Content-Type"], "".join(chunks)

    content_type, text = async_to_sync(first_events)()
    assert content_type.startswith("text/event-stream")
    data = text[text.index("event: version") :].split("data: ", 1)[1].split("\n", 1)[0]
    assert json.loads(data) == {"version": metrics.room_version()}
