"""A runner says what its jobs run in; the runners page, API and CLI show it (#13)."""

from __future__ import annotations

from django.test import Client

from obeya.core.models import Event
from obeya.pipelines import runners
from obeya.pipelines.models import Runner
from tests.conftest import PASSWORD, SYSTEM


def _claim(token: str, **body: object) -> object:
    client = Client(headers={"Authorization": f"Bearer {token}"})
    return client.post(
        "/api/runner/jobs/claim", {"wait": 0, **body}, content_type="application/json"
    )


def test_a_runner_without_the_sandbox_is_shown_and_recorded_once(db, alice):
    made, token = runners.register_runner(SYSTEM, "builder", [])
    assert _claim(token, sandbox="bwrap").status_code == 204
    assert _claim(token, sandbox="off").status_code == 204
    assert _claim(token, sandbox="off").status_code == 204
    assert Runner.objects.get(pk=made.pk).sandbox == "off"
    changes = Event.objects.filter(kind="runner.sandbox_changed", subject=f"runner:{made.pk}")
    assert [(e.data["from"], e.data["to"]) for e in changes.order_by("id")] == [
        ("", "bwrap"),
        ("bwrap", "off"),
    ]
    page = Client()
    assert page.login(username=alice.username, password=PASSWORD)
    html = page.get("/runners/").content.decode()
    assert "no sandbox" in html and "OBEYA_SANDBOX=off" in html


def test_a_sandbox_the_server_does_not_know_is_refused_with_a_4xx(db):
    made, token = runners.register_runner(SYSTEM, "odd", [])
    answer = _claim(token, sandbox="chroot")
    assert answer.status_code == 400  # type: ignore[attr-defined]
    error = answer.json()["error"]  # type: ignore[attr-defined]
    assert error["field"] == "sandbox" and "sandbox must be one of" in error["message"]
    assert Runner.objects.get(pk=made.pk).sandbox == ""


def test_the_runners_api_says_what_jobs_run_in(db, api_for, alice):
    _, token = runners.register_runner(SYSTEM, "api-runner", [])
    _claim(token, sandbox="bwrap")
    listed = api_for(alice).get("/runners").body
    assert [r["sandbox"] for r in listed if r["name"] == "api-runner"] == ["bwrap"]
