"""``/metrics`` in the Prometheus text format: parsed with prometheus_client's own parser,
the gauges and counters carry the numbers of a known history and set-up; a scrape needs a
token (read scope is enough) or a session, else a 401 with one line."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from obeya.backlog import services as backlog
from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.core import services as core
from obeya.core.clock import SYSTEM_CLOCK
from obeya.core.models import User
from obeya.deploy import services as deploy
from obeya.deploy.models import Deployment
from obeya.metrics import services as metrics
from obeya.ops import services as ops
from obeya.pipelines import andon, runners
from obeya.pipelines.models import Job, Run, Runner
from tests.conftest import PASSWORD, SYSTEM, actor
from tests.metrics.recorded import history

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def _fresh_room() -> None:
    metrics.forget_cache()


@pytest.fixture
def token(alice: User) -> str:
    """A read-scope token of alice, service master of "shop" (and of "empty")."""
    catalog.create_service(actor(alice), "shop", "Shop")
    catalog.create_service(actor(alice), "empty", "Nothing measured")
    _, plaintext = core.create_token(SYSTEM, alice, name="prometheus", scope="read", days=30)
    return plaintext


def scrape(token: str | None = None, client: Client | None = None) -> tuple[int, str, str]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = (client or Client()).get("/metrics", **headers)
    return response.status_code, response["Content-Type"], response.content.decode()


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def shop_setup(alice: User) -> None:
    """The history, a card on the board, the andon pulled, an open incident, two ended
    deployments and one waiting, three runners and two queued jobs."""
    history()
    who = actor(alice)
    backlog.create_story(who, "shop", "user", "Pay by card")
    board.board("shop")
    board.configure_column(who, "shop", "Backlog", wip_limit=4)
    andon.pull_andon(who, "shop", "the build is red")
    ops.open_incident(who, "shop", "Checkout returns 500", "sev2")
    now = SYSTEM_CLOCK.now()
    production = deploy.create_environment(
        who, "shop", "production", tier="production", target={"kind": "local", "root": "/tmp/x"}
    )
    for status in ("succeeded", "succeeded", "rolled_back", "queued"):
        Deployment.objects.create(
            environment=production, service=production.service, status=status, requested_at=now
        )
    for name, paused, seen in (
        ("busy", False, now),
        ("asleep", True, now),
        ("gone", False, now - timedelta(days=1)),
    ):
        runner, _ = runners.register_runner(SYSTEM, name, [])
        Runner.objects.filter(pk=runner.pk).update(paused=paused, last_seen_at=seen)
    run = Run.objects.create(
        service=production.service,
        number=1,
        trigger="manual",
        ref="main",
        sha="a" * 40,
        created_at=now,
    )
    for position, status in enumerate(("queued", "queued", "running", "created")):
        Job.objects.create(
            run=run,
            name=f"job{position}",
            stage="test",
            stage_index=0,
            position=position,
            status=status,
            queued_at=now,
        )


def test_the_figures_of_a_known_history(alice: User, token: str) -> None:
    shop_setup(alice)
    status, content_type, text = scrape(token)
    assert status == 200, text
    assert content_type.startswith("text/plain; version=")
    found = samples(text)
    shop = (("service", "shop"),)

    assert found[("obeya_deployment_frequency_per_day", shop)] == pytest.approx(3 / 30)
    assert found[("obeya_change_lead_time_seconds", shop)] == 7200
    assert found[("obeya_change_fail_rate", shop)] == 0.5
    assert found[("obeya_recovery_time_seconds", shop)] == (60 + 1800) / 2
    assert found[("obeya_rework_rate", shop)] == 0.0
    assert found[("obeya_andon_pulled", shop)] == 1
    assert found[("obeya_open_incidents", shop)] == 1
    backlog_column = (("column", "Backlog"), ("service", "shop"))
    assert found[("obeya_wip", backlog_column)] == 1
    assert found[("obeya_wip_limit", backlog_column)] == 4
    ready = (("column", "Ready"), ("service", "shop"))
    assert found[("obeya_wip", ready)] == 0 and found[("obeya_wip_limit", ready)] == 5
    assert ("obeya_wip_limit", (("column", "Done"), ("service", "shop"))) not in found

    assert found[("obeya_job_queue_depth", ())] == 2
    runner_states = {
        state: found[("obeya_runners", (("state", state),))]
        for state in ("online", "paused", "offline")
    }
    assert runner_states == {"online": 1, "paused": 1, "offline": 1}
    ended = {
        labels: value
        for (name, labels), value in found.items()
        if name == "obeya_deployments_total"
    }
    where = (("environment", "production"), ("service", "shop"))
    assert ended == {
        (*where, ("status", "rolled_back")): 1,
        (*where, ("status", "succeeded")): 2,
    }


def test_a_service_with_nothing_measured_has_no_dora_samples(alice: User, token: str) -> None:
    status, _, text = scrape(token)
    assert status == 200
    found = samples(text)
    empty = (("service", "empty"),)
    assert found[("obeya_andon_pulled", empty)] == 0
    assert found[("obeya_open_incidents", empty)] == 0
    # no deployment is 0 a day; the other four are not measured, so there is no sample
    assert found[("obeya_deployment_frequency_per_day", empty)] == 0
    for name in (
        "obeya_change_lead_time_seconds",
        "obeya_change_fail_rate",
        "obeya_recovery_time_seconds",
        "obeya_rework_rate",
    ):
        assert (name, empty) not in found
    assert "# TYPE obeya_deployments_total counter" in text
    assert found[("obeya_job_queue_depth", ())] == 0


def test_a_signed_in_session_may_scrape(alice: User, token: str) -> None:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    status, _, text = scrape(client=client)
    assert status == 200 and "obeya_andon_pulled" in text


@pytest.mark.parametrize(
    ("secret", "words"),
    [(None, "Authorization: Bearer"), ("obeya_not-a-token", "not valid")],
)
def test_no_credentials_is_a_401_with_one_line(token: str, secret: str | None, words: str) -> None:
    status, content_type, text = scrape(secret)
    assert status == 401 and content_type.startswith("text/plain")
    assert text.endswith("\n") and text.count("\n") == 1 and words in text
    assert "obeya_" not in text.replace("obeya_not-a-token", "")


def test_a_revoked_token_is_refused(alice: User, token: str) -> None:
    made, secret = core.create_token(SYSTEM, alice, name="old", scope="read", days=30)
    assert scrape(secret)[0] == 200
    core.revoke_token(actor(alice), made.pk)
    status, _, text = scrape(secret)
    assert status == 401 and "revoked" in text
