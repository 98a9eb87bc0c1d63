"""Runners managed from the web UI and the API: register (token once), pause, resume."""

from __future__ import annotations

import re

from django.test import Client

from obeya.core.models import Event
from obeya.pipelines import runners
from obeya.pipelines.models import Runner
from tests.conftest import PASSWORD, SYSTEM


def signed_in(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_an_administrator_registers_a_runner_and_sees_its_token_once(admin):
    client = signed_in(admin)
    page = client.post("/runners/", {"action": "register", "name": "build-01", "labels": "linux"})

    assert page.status_code == 200
    token = re.search(r'data-testid="runner-token">(obeyar_[^<]+)<', page.content.decode())[1]
    assert page["Cache-Control"] == "no-store"
    runner = runners.authenticate_runner(token)
    assert (runner.name, runner.labels) == ("build-01", ["linux"])
    assert token not in client.get("/runners/").content.decode()


def test_a_refused_registration_is_shown_and_keeps_the_input(admin):
    runners.register_runner(SYSTEM, "taken", [])
    page = signed_in(admin).post("/runners/", {"action": "register", "name": "taken"})
    assert page.status_code == 409
    body = page.content.decode()
    assert "already exists" in body and 'value="taken"' in body
    assert 'data-testid="runner-token"' not in body


def test_pause_and_resume_from_the_page(admin):
    runner, _ = runners.register_runner(SYSTEM, "box", [])
    client = signed_in(admin)
    assert client.post("/runners/", {"action": "pause", "runner": runner.pk}).status_code == 302
    assert Runner.objects.get(pk=runner.pk).paused
    assert "Resume box" in client.get("/runners/").content.decode()
    client.post("/runners/", {"action": "resume", "runner": runner.pk})
    assert not Runner.objects.get(pk=runner.pk).paused
    kinds = list(Event.objects.filter(subject=f"runner:{runner.pk}").values_list("kind", flat=True))
    assert kinds == ["runner.registered", "runner.paused", "runner.resumed"]


def test_people_who_are_not_administrators_only_look(alice):
    runner, _ = runners.register_runner(SYSTEM, "box", [])
    client = signed_in(alice)
    page = client.get("/runners/").content.decode()
    assert "box" in page and 'data-testid="register-runner"' not in page and "Pause" not in page
    assert client.post("/runners/", {"action": "register", "name": "mine"}).status_code == 403
    assert client.post("/runners/", {"action": "pause", "runner": runner.pk}).status_code == 403
    assert not Runner.objects.filter(name="mine").exists()
    assert not Runner.objects.get(pk=runner.pk).paused


def test_odd_posts_are_refused_with_a_sentence(admin):
    client = signed_in(admin)
    assert client.post("/runners/", {"action": "pause", "runner": "x"}).status_code == 400
    assert client.post("/runners/", {"action": "pause", "runner": "999"}).status_code == 404
    assert client.post("/runners/", {"action": "explode"}).status_code == 400


def test_a_post_without_the_csrf_token_is_refused(admin):
    runner, _ = runners.register_runner(SYSTEM, "box", [])
    response = signed_in(admin, csrf=True).post(
        "/runners/", {"action": "pause", "runner": runner.pk}
    )
    assert response.status_code == 403
    assert not Runner.objects.get(pk=runner.pk).paused


def test_the_api_pauses_and_resumes_with_an_admin_token(admin, api_for):
    runner, _ = runners.register_runner(SYSTEM, "box", [])
    api = api_for(admin, scope="admin")
    paused = api.post(f"/runners/{runner.pk}/pause")
    assert paused.status_code == 200 and paused.body["paused"] is True
    resumed = api.post(f"/runners/{runner.pk}/resume")
    assert resumed.body["paused"] is False
    assert api.post("/runners/999/pause").status_code == 404


def test_the_api_refuses_pausing_without_admin_rights(admin, alice, api_for):
    runner, _ = runners.register_runner(SYSTEM, "box", [])
    assert api_for(admin, scope="write").post(f"/runners/{runner.pk}/pause").status_code == 403
    assert api_for(alice).post(f"/runners/{runner.pk}/pause").status_code == 403
    assert not Runner.objects.get(pk=runner.pk).paused
