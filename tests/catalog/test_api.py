"""The catalog over HTTP: status codes, the error body, pagination, CSRF."""

from __future__ import annotations

import json

from django.test import Client

from obeya.core.models import Event
from tests.conftest import PASSWORD


def test_error_body_and_statuses(alice, api_for):
    api = api_for(alice)
    bad = api.post("/services", {"slug": "Bad Slug", "name": "x"})
    assert bad.status_code == 400
    assert bad.body["error"]["field"] == "slug"
    assert "not valid" in bad.body["error"]["message"]

    missing_name = api.post("/services", {"slug": "ok-slug"})
    assert missing_name.status_code == 400
    assert missing_name.body["error"]["field"] == "name"

    assert api.post("/services", {"slug": "pay", "name": "Pay"}).status_code == 201
    dup = api.post("/services", {"slug": "pay", "name": "Pay"})
    assert dup.status_code == 409 and dup.body["error"]["code"] == "conflict"

    assert api.get("/services/ghost").status_code == 404
    illegal = api.post("/services/pay/transitions", {"to": "operation"})
    assert illegal.status_code == 409
    unknown = api.post("/services/pay/transitions", {"to": "flying"})
    assert unknown.status_code == 400 and unknown.body["error"]["field"] == "stage"
    role = api.post("/services/pay/members", {"username": "alice", "role": "boss"})
    assert role.status_code == 400 and role.body["error"]["field"] == "role"


def test_malformed_json_is_a_400(alice, api_for):
    api = api_for(alice)
    response = api.client.post(
        "/api/services",
        data="{nope",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )
    assert response.status_code == 400
    assert "error" in response.json()


def test_pagination(alice, api_for):
    api = api_for(alice)
    for slug in ("aa", "bb", "cc"):
        api.post("/services", {"slug": slug, "name": slug.upper()})
    page = api.get("/services?limit=2").body
    assert page["count"] == 3 and [s["slug"] for s in page["items"]] == ["aa", "bb"]
    rest = api.get("/services?limit=2&offset=2").body
    assert [s["slug"] for s in rest["items"]] == ["cc"]


def test_full_round_trip_over_the_api(alice, bob, api_for):
    api = api_for(alice)
    api.post("/services", {"slug": "pay", "name": "Pay", "owner_team": "Heron"})
    assert api.patch("/services/pay", {"vision": "Fast"}).body["vision"] == "Fast"
    assert (
        api.post("/services/pay/members", {"username": "bob", "role": "developer"}).status_code
        == 201
    )
    members = api.get("/services/pay/members").body["items"]
    assert {(m["username"], m["role"]) for m in members} == {
        ("alice", "service_master"),
        ("bob", "developer"),
    }
    moved = api.post("/services/pay/transitions", {"to": "marketing", "reason": "go"})
    assert moved.status_code == 201 and moved.body["stage"] == "marketing"
    transitions = api.get("/services/pay/transitions").body
    assert {t["to"] for t in transitions} == {"planning", "strategy"}
    assert api.delete("/services/pay/members/bob/roles/developer").status_code == 204
    timeline = api.get("/services/pay/events?order=asc").body["items"]
    assert [e["kind"] for e in timeline] == [
        "service.created",
        "member.added",
        "service.charter_changed",
        "member.added",
        "service.stage_changed",
        "member.removed",
    ]


def test_developer_token_gets_403_with_the_reason(alice, bob, api_for):
    api_for(alice).post("/services", {"slug": "pay", "name": "Pay"})
    response = api_for(bob).post("/services/pay/transitions", {"to": "marketing"})
    assert response.status_code == 403
    assert "service_master" in response.body["error"]["message"]


def test_session_api_post_without_csrf_is_403(alice):
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="alice", password=PASSWORD)
    response = browser.post(
        "/api/services",
        data=json.dumps({"slug": "pay", "name": "Pay"}),
        content_type="application/json",
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert not Event.objects.filter(kind="service.created").exists()


def test_session_api_post_with_csrf_works(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/login/")
    token = browser.cookies["csrftoken"].value
    browser.post(
        "/login/", {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        "/api/services",
        data=json.dumps({"slug": "pay", "name": "Pay"}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 201, response.content


def test_web_form_post_without_csrf_is_403(alice):
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="alice", password=PASSWORD)
    response = browser.post("/services/new/", {"slug": "pay", "name": "Pay"})
    assert response.status_code == 403
    assert not Event.objects.filter(kind="service.created").exists()


def test_openapi_is_served(db, client):
    schema = client.get("/api/openapi.json").json()
    assert "/api/services/{slug}/members" in schema["paths"]
