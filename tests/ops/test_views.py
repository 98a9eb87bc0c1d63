"""Operations pages: the tab (monitors, SLOs, open incidents, problems, continuity), one
monitor, one incident with its causes and timeline, its postmortem, one problem. Actions go
through forms; refusals show beside their form, with what was typed kept and the refusal's
own status."""

from __future__ import annotations

import html as markup
import json
import re
from collections.abc import Callable, Iterator

import pytest
from django.test import Client

from obeya.backlog import services as backlog
from obeya.catalog import services as catalog
from obeya.core.actors import system_actor
from obeya.core.models import User
from obeya.deploy.models import Deployment
from obeya.ops import reviews, views
from obeya.ops import services as ops
from tests.conftest import PASSWORD, actor
from tests.deploy.conftest import Shop
from tests.deploy.test_views import in_staging

BASE = "/services/shop/operations/"


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def text(response) -> str:
    return markup.unescape(response.content.decode())


def section(page: str, anchor: str) -> str:
    """The markup of the page's section with id ``anchor``, up to the next section."""
    rest = page[page.index(f'id="{anchor}"') :]
    end = rest.find("<section", 1)
    return rest if end < 0 else rest[:end]


def person(make_user: Callable[..., User], name: str, role: str) -> User:
    user = make_user(name)
    catalog.add_member(actor(User.objects.get(username="olga")), "shop", name, role)
    return user


@pytest.fixture
def web(shop: Shop) -> Client:
    """olga, the service's devops_engineer: she may configure, operate and write."""
    return signed_in(shop.owner)


@pytest.fixture
def dev(shop: Shop, make_user: Callable[..., User]) -> User:
    return person(make_user, "dave", "developer")


@pytest.fixture
def panels() -> Iterator[list]:
    saved = list(views.PANELS)
    yield views.PANELS
    views.PANELS[:] = saved


def fail(monitor: str, detail: str = "HTTP 500") -> None:
    ops.record_result(system_actor(), ops.get_monitor("shop", monitor).pk, False, 12.0, detail, 0)


def passed(monitor: str, latency_ms: float = 8.0) -> None:
    ops.record_result(system_actor(), ops.get_monitor("shop", monitor).pk, True, latency_ms, "", 0)


def resolved_incident(shop: Shop, title: str = "Checkout down") -> int:
    incident = ops.open_incident(actor(shop.owner), "shop", title, "sev2")
    ops.move_incident(actor(shop.owner), "shop", incident.number, "resolved", "restarted")
    return incident.number


# ---- the tab -----------------------------------------------------------------------------


def test_the_operations_tab_follows_environments_and_starts_empty(web: Client) -> None:
    response = web.get(BASE)
    assert response.status_code == 200
    page = text(response)
    tabs = page[page.index('class="service-tabs"') :]
    assert tabs.index(">Environments<") < tabs.index(">Operations<")
    assert 'href="/services/shop/operations/" class="active"' in tabs
    assert "✓ No open incident." in page
    assert "No monitors yet." in page and "No SLOs yet." in page
    for form in ("Open an incident", "New monitor", "Open a problem"):
        assert f'aria-label="{form}"' in page
    assert "No backup jobs." in page and "No restore drill yet." in page  # continuity's panel


def test_someone_outside_the_team_sees_the_tab_without_the_forms(shop: Shop, alice: User) -> None:
    ops.create_monitor(actor(shop.owner), "shop", "web", kind="command", command="true")
    page = text(signed_in(alice).get(BASE))
    assert 'data-monitor="web"' in page
    for form in ("Open an incident", "New monitor", "Open a problem", "New SLO"):
        assert f'aria-label="{form}"' not in page


def test_an_unknown_service_is_a_404_page(web: Client) -> None:
    response = web.get("/services/nope/operations/")
    assert response.status_code == 404
    assert '"nope"' in text(response)


def test_the_continuity_panel_shows_what_continuity_gives(web: Client, panels: list) -> None:
    panels.append(lambda actor, service: {"continuity": {"service": service.slug}})
    assert 'id="continuity"' in text(web.get(BASE))


# ---- monitors ----------------------------------------------------------------------------


def test_a_monitor_made_through_the_form_shows_its_status_in_words_and_a_sparkline(
    web: Client,
) -> None:
    response = web.post(
        BASE + "monitors/new/",
        {
            "name": "web",
            "kind": "command",
            "environment": "production",
            "command": "curl -fsS http://127.0.0.1:8080/health",
            "interval_s": "15",
            "timeout_s": "2.5",
            "failure_threshold": "2",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == BASE + "#monitor-web"
    monitor = ops.get_monitor("shop", "web")
    assert (monitor.interval_s, monitor.timeout_s, monitor.failure_threshold) == (15, 2.5, 2)
    row = section(text(web.get(BASE)), "monitor-web")
    assert "not checked yet" in row and "status-unknown" in row and "never" in row

    passed("web", 20)
    fail("web", "exit status 7: connection refused")
    row = text(web.get(BASE))
    row = row[row.index('id="monitor-web"') : row.index("</tr>", row.index('id="monitor-web"'))]
    assert "status-failing" in row and "failing (1/2)" in row
    assert "exit status 7: connection refused" in row
    assert "1 of the last 2 checks passed" in row
    assert row.count('class="spark-ok"') == 1 and row.count('class="spark-fail"') == 1


def test_a_refused_monitor_keeps_what_was_typed(web: Client) -> None:
    typed = {"name": "web", "kind": "http", "url": "ftp://example", "interval_s": "30"}
    response = web.post(BASE + "monitors/new/", typed)
    assert response.status_code == 400
    page = text(response)
    assert "url: an http:// or https:// address" in page
    assert 'value="ftp://example"' in page and 'value="web"' in page
    assert 'name="url" value="ftp://example" placeholder="http://127.0.0.1:8080/health" ' in page
    assert "aria-invalid" in page[page.index('name="url"') : page.index('name="url"') + 200]

    response = web.post(BASE + "monitors/new/", {**typed, "url": "http://x/", "interval_s": "soon"})
    assert response.status_code == 400
    assert "Interval (s): a whole number, not 'soon'" in text(response)

    ops.create_monitor(
        actor(User.objects.get(username="olga")), "shop", "db", kind="command", command="true"
    )
    response = web.post(BASE + "monitors/new/", {"name": "db", "kind": "command", "command": "x"})
    assert response.status_code == 409
    assert '"shop" already has a monitor "db"' in text(response)


def test_a_monitor_page_edits_and_deletes_it(web: Client, shop: Shop) -> None:
    ops.create_monitor(actor(shop.owner), "shop", "web", kind="command", command="true")
    for _ in range(3):
        passed("web")
    page = text(web.get(BASE + "monitors/web/"))
    assert "Monitor web" in page and page.count("✓ passed") == 3

    response = web.post(
        BASE + "monitors/web/",
        {"kind": "command", "command": "true", "interval_s": "3", "enabled": "on"},
    )
    assert response.status_code == 400
    page = text(response)
    assert "interval_s: a whole number from 5 to 86400" in page and 'value="3"' in page

    response = web.post(
        BASE + "monitors/web/", {"kind": "command", "command": "false", "interval_s": "60"}
    )
    assert response.status_code == 302
    monitor = ops.get_monitor("shop", "web")
    assert (monitor.command, monitor.interval_s, monitor.enabled) == ("false", 60, False)
    assert "status-paused" in text(web.get(BASE))

    reviews.create_slo(
        actor(shop.owner), "shop", "avail", kind="availability", objective_percent=99, monitor="web"
    )
    response = web.post(BASE + "monitors/web/delete/")
    assert response.status_code == 409
    assert 'monitor "web" measures the SLO avail: remove the SLO first' in text(response)
    assert web.post(BASE + "slos/avail/delete/").status_code == 302
    assert web.post(BASE + "monitors/web/delete/").status_code == 302
    assert not ops.list_monitors("shop").exists()
    assert web.get(BASE + "monitors/web/").status_code == 404


def test_a_developer_may_not_change_monitors(shop: Shop, dev: User) -> None:
    ops.create_monitor(actor(shop.owner), "shop", "web", kind="command", command="true")
    client = signed_in(dev)
    response = client.post(BASE + "monitors/web/", {"kind": "command", "command": "rm -rf /"})
    assert response.status_code == 403
    assert "needs the role" in text(response)
    assert ops.get_monitor("shop", "web").command == "true"
    assert client.post(BASE + "monitors/web/delete/").status_code == 403


# ---- SLOs --------------------------------------------------------------------------------


def test_an_slo_shows_its_figures_chart_and_numbers(web: Client, shop: Shop) -> None:
    ops.create_monitor(actor(shop.owner), "shop", "web", kind="command", command="true")
    response = web.post(
        BASE + "slos/new/",
        {
            "name": "availability",
            "monitor": "web",
            "kind": "availability",
            "objective_percent": "99.5",
            "window_days": "7",
        },
    )
    assert response.status_code == 302
    for _ in range(3):
        passed("web")
    page = text(web.get(BASE))
    slo = page[page.index('id="slo-availability"') : page.index("</article>")]
    assert "objective <strong>99.5 %</strong> over 7 days" in slo
    assert "100.000 %" in slo and "3 of 3 checks good" in slo
    assert 'data-slo-chart="slo-data-availability"' in slo
    data = re.search(
        r'<script id="slo-data-availability" type="application/json">(.*?)</script>', slo, re.S
    )
    assert data is not None
    series = json.loads(data.group(1))
    assert series["objective"] == 99.5 and len(series["days"]) == 7
    assert series["achieved"][-1] == 100.0
    assert "✓ met" in slo  # the table behind the chart
    assert 'data-testid="burn-alert"' not in slo


def test_a_fast_burn_is_shown_as_an_alert_in_words(web: Client, shop: Shop) -> None:
    ops.create_monitor(actor(shop.owner), "shop", "web", kind="command", command="true")
    reviews.create_slo(
        actor(shop.owner),
        "shop",
        "avail",
        kind="availability",
        objective_percent=99.9,
        monitor="web",
    )
    passed("web")
    fail("web")
    page = text(web.get(BASE))
    assert 'data-testid="burn-alert"' in page and "Fast burn:" in page
    assert "✗ missed" in page


def test_a_refused_slo_keeps_what_was_typed(web: Client, shop: Shop) -> None:
    ops.create_monitor(actor(shop.owner), "shop", "web", kind="command", command="true")
    response = web.post(
        BASE + "slos/new/",
        {
            "name": "avail",
            "monitor": "web",
            "kind": "availability",
            "objective_percent": "100",
            "window_days": "30",
        },
    )
    assert response.status_code == 400
    page = text(response)
    assert "objective: a percentage above 0 and below 100" in page
    assert 'name="objective_percent" inputmode="decimal" value="100"' in page
    response = web.post(
        BASE + "slos/new/",
        {"name": "avail", "monitor": "web", "kind": "availability", "objective_percent": "high"},
    )
    assert response.status_code == 400
    assert "Objective (%): a number, not 'high'" in text(response)


def test_slos_come_from_the_operation_stories(web: Client, shop: Shop) -> None:
    ops.create_monitor(actor(shop.owner), "shop", "web", kind="command", command="true")
    story = backlog.create_story(
        actor(shop.owner),
        "shop",
        "operation",
        "Checkout stays up",
        details={"availability_target": 99.5},
    )
    response = web.post(BASE + "slos/new/", {"from_stories": "1", "monitor": "web"})
    assert response.status_code == 302
    page = text(web.get(BASE))
    assert f'href="/services/shop/backlog/{story.key}/">{story.key}</a>' in page


# ---- incidents ---------------------------------------------------------------------------


def test_an_incident_opened_by_hand_is_acknowledged_and_resolved_with_notes(web: Client) -> None:
    response = web.post(
        BASE + "incidents/new/", {"title": "Checkout returns 500", "severity": "sev2"}
    )
    assert response.status_code == 302
    assert response["Location"] == BASE + "incidents/1/"
    page = text(web.get(BASE))
    assert 'data-incident="1"' in section(page, "incidents")

    page = text(web.get(BASE + "incidents/1/"))
    assert "INC-1: Checkout returns 500" in page and "SEV2" in page
    assert 'id="incident-status"' in page and ">open</span>" in page
    for verb in ("Acknowledge", "Mitigate", "Resolve"):
        assert f">{verb}</button>" in page
    assert "Written once the service is restored" in page

    response = web.post(BASE + "incidents/1/move/", {"status": "acknowledged", "note": "on it"})
    assert response.status_code == 302
    page = text(web.get(BASE + "incidents/1/"))
    assert ">acknowledged</span>" in page and ">Acknowledge</button>" not in page
    assert 'data-testid="commander">olga' in page
    assert "on it" in section(page, "timeline")
    assert (
        web.post(BASE + "incidents/1/notes/", {"text": "errors back to normal"}).status_code == 302
    )
    assert web.post(BASE + "incidents/1/move/", {"status": "resolved"}).status_code == 302
    page = text(web.get(BASE + "incidents/1/"))
    timeline = section(page, "timeline")
    assert timeline.index("opened (sev2, from manual)") < timeline.index("acknowledged: on it")
    assert timeline.index("errors back to normal") < timeline.index("resolved")
    assert "Write the postmortem" in page
    assert 'data-testid="time-to-restore">—' not in page
    assert "✓ No open incident." in text(web.get(BASE))


def test_incident_refusals_show_beside_their_form(web: Client, shop: Shop, dev: User) -> None:
    response = web.post(BASE + "incidents/new/", {"title": "  ", "severity": "sev2"})
    assert response.status_code == 400
    assert "an incident needs a title" in text(response)
    response = web.post(BASE + "incidents/new/", {"title": "Down", "severity": "sev9"})
    assert response.status_code == 400
    page = text(response)
    assert "unknown severity 'sev9'" in page and 'value="Down"' in page

    ops.open_incident(actor(shop.owner), "shop", "Login loops")
    developer = signed_in(dev)
    response = developer.post(
        BASE + "incidents/1/move/", {"status": "resolved", "note": "I think it is fine"}
    )
    assert response.status_code == 403
    page = text(response)
    assert "needs the role" in page and ">I think it is fine</textarea>" in page
    assert ops.get_incident("shop", 1).status == "open"
    # Anyone on the team may add to the timeline; an empty note is refused.
    assert developer.post(BASE + "incidents/1/notes/", {"text": "seen at 10:02"}).status_code == 302
    response = developer.post(BASE + "incidents/1/notes/", {"text": "  "})
    assert response.status_code == 400 and "the note is empty" in text(response)

    web.post(BASE + "incidents/1/move/", {"status": "resolved"})
    response = web.post(BASE + "incidents/1/move/", {"status": "acknowledged", "note": "again"})
    assert response.status_code == 409
    assert "it can only move forward" in text(response)
    assert web.get(BASE + "incidents/99/").status_code == 404


def test_an_incident_is_linked_to_the_deployment_that_caused_it_and_unlinked(
    web: Client, shop: Shop
) -> None:
    deployment = in_staging(shop)
    ops.open_incident(actor(shop.owner), "shop", "Slow checkout", "sev3")
    page = text(web.get(BASE + "incidents/1/"))
    link_form = section(page, "causes")
    assert f'<option value="{deployment.pk}"' in link_form and "staging" in link_form

    response = web.post(BASE + "incidents/1/causes/", {"deployment": str(deployment.pk)})
    assert response.status_code == 302
    causes = section(text(web.get(BASE + "incidents/1/")), "causes")
    assert f'data-cause="{deployment.pk}"' in causes and "linked by olga" in causes
    assert f'href="/services/shop/deployments/{deployment.pk}/"' in causes
    assert ops.causes_of(ops.get_incident("shop", 1)) == [deployment.pk]

    response = web.post(BASE + "incidents/1/causes/", {"deployment": str(deployment.pk)})
    assert response.status_code == 409
    assert f"already linked to deployment {deployment.pk}" in text(response)
    response = web.post(BASE + "incidents/1/causes/", {"deployment": "the last one"})
    assert response.status_code == 400
    assert "a deployment number, not 'the last one'" in text(response)
    missing = Deployment.objects.order_by("-id").first().pk + 100
    response = web.post(BASE + "incidents/1/causes/", {"deployment": str(missing)})
    assert response.status_code == 404 and "INC-1" in text(response)

    response = web.post(BASE + f"incidents/1/causes/{deployment.pk}/delete/")
    assert response.status_code == 302
    assert ops.causes_of(ops.get_incident("shop", 1)) == []
    response = web.post(BASE + f"incidents/1/causes/{deployment.pk}/delete/")
    assert response.status_code == 404
    assert f"INC-1 is not linked to deployment {deployment.pk}" in text(response)


def test_an_incident_opened_with_its_deployment_is_linked_at_once(web: Client, shop: Shop) -> None:
    deployment = in_staging(shop)
    page = text(web.get(BASE))
    assert f'<option value="{deployment.pk}"' in section(page, "incidents")
    web.post(
        BASE + "incidents/new/",
        {"title": "Bad release", "severity": "sev2", "deployment": str(deployment.pk)},
    )
    assert ops.causes_of(ops.get_incident("shop", 1)) == [deployment.pk]


# ---- postmortems -------------------------------------------------------------------------


POSTMORTEM = {
    "summary": "Checkout returned 500 for 20 minutes after a config change.",
    "impact": "About 300 customers could not pay.",
    "timeline": "10:00 config changed\n10:20 rolled back",
    "went_well": "The rollback took two minutes.",
    "actions": "Validate config in the pipeline\n- Canary config changes",
}


def test_a_postmortem_refuses_human_error_and_keeps_everything_typed(
    web: Client, shop: Shop
) -> None:
    number = resolved_incident(shop)
    page = text(web.get(BASE + f"incidents/{number}/postmortem/"))
    assert "opened (sev2, from manual): Checkout down" in page  # the timeline, pre-filled
    typed = {**POSTMORTEM, "factors": "Human error\nNo review of config changes"}
    response = web.post(BASE + f"incidents/{number}/postmortem/", typed)
    assert response.status_code == 400
    page = text(response)
    assert '"Human error" names a person, not a cause' in page
    assert "what made the error possible" in page
    for value in typed.values():
        assert value in page
    assert reviews.postmortem_of(ops.get_incident("shop", number)) is None

    response = web.post(
        BASE + f"incidents/{number}/postmortem/", {**POSTMORTEM, "factors": "No canary"}
    )
    assert response.status_code == 400
    assert "name more than one contributing factor" in text(response)


def test_a_saved_postmortem_lists_its_follow_ups_as_backlog_stories(
    web: Client, shop: Shop
) -> None:
    number = resolved_incident(shop)
    factors = "The config format was not validated\nNo canary for config changes"
    response = web.post(
        BASE + f"incidents/{number}/postmortem/", {**POSTMORTEM, "factors": factors}
    )
    assert response.status_code == 302
    assert response["Location"] == BASE + f"incidents/{number}/postmortem/"
    postmortem = reviews.postmortem_of(ops.get_incident("shop", number))
    assert postmortem is not None
    assert postmortem.factors == factors.splitlines()
    assert postmortem.timeline == POSTMORTEM["timeline"]
    keys = [action.story_key for action in postmortem.actions.all()]
    titles = [backlog.get_story("shop", key).title for key in keys]
    assert titles == ["Validate config in the pipeline", "Canary config changes"]

    page = text(web.get(BASE + f"incidents/{number}/postmortem/"))
    follow_ups = section(page, "follow-ups")
    for key in keys:
        assert f'href="/services/shop/backlog/{key}/">{key}</a>' in follow_ups
    assert "The config format was not validated" in page  # the form shows what was saved
    incident_page = section(text(web.get(BASE + f"incidents/{number}/")), "postmortem")
    assert "Edit the postmortem" in incident_page and keys[0] in incident_page

    # Saving again makes no second story for the same action.
    web.post(BASE + f"incidents/{number}/postmortem/", {**POSTMORTEM, "factors": factors})
    assert backlog.list_stories("shop", kind="change_request").count() == 2


def test_a_postmortem_waits_for_the_service_to_be_restored(web: Client, shop: Shop) -> None:
    ops.open_incident(actor(shop.owner), "shop", "Still down")
    response = web.post(BASE + "incidents/1/postmortem/", {**POSTMORTEM, "factors": "a\nb"})
    assert response.status_code == 409
    page = text(response)
    assert "once the service is restored" in page and POSTMORTEM["impact"] in page


# ---- problems ----------------------------------------------------------------------------


def test_a_problem_groups_incidents_and_links_change_requests(web: Client, shop: Shop) -> None:
    first, second = resolved_incident(shop, "Config broke"), resolved_incident(shop, "Again")
    response = web.post(
        BASE + "problems/new/", {"title": "Config is not validated", "incidents": [first, second]}
    )
    assert response.status_code == 302 and response["Location"] == BASE + "problems/1/"
    listed = section(text(web.get(BASE)), "problems")
    assert "PRB-1" in listed and "INC-1" in listed and "INC-2" in listed

    story = backlog.create_story(actor(shop.owner), "shop", "change_request", "Config as code")
    response = web.post(
        BASE + "problems/1/",
        {
            "title": "Config is not validated",
            "status": "known_error",
            "known_error": "no schema for config",
            "workaround": "roll back",
            "analysis": "several conditions",
            "incidents": [first],
            "change_requests": [story.key],
        },
    )
    assert response.status_code == 302
    problem = reviews.get_problem("shop", 1)
    assert (problem.status, problem.workaround) == ("known_error", "roll back")
    assert list(problem.incidents.values_list("number", flat=True)) == [first]
    page = text(web.get(BASE + "problems/1/"))
    assert f'href="/services/shop/backlog/{story.key}/">{story.key}</a> Config as code' in page
    assert "known error" in page and 'data-incident="1"' in page

    response = web.post(
        BASE + "problems/1/", {"title": "x", "status": "closed", "analysis": "typed notes"}
    )
    assert response.status_code == 400
    page = text(response)
    assert "unknown status 'closed'" in page and "typed notes" in page
    assert web.get(BASE + "problems/7/").status_code == 404


def test_a_problem_needs_a_title(web: Client) -> None:
    response = web.post(BASE + "problems/new/", {"title": ""})
    assert response.status_code == 400
    assert "a problem needs a title" in text(response)


def test_the_service_timeline_tells_operations_events_in_sentences(web: Client, shop: Shop) -> None:
    number = resolved_incident(shop)
    page = text(web.get("/services/shop/"))
    assert f"opened INC-{number} (sev2, from manual): Checkout down" in page
    assert f"resolved INC-{number}: “restarted”" in page
