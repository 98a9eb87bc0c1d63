"""Catalog pages: refusals show a message and keep what was typed."""

from __future__ import annotations

import pytest
from django.test import Client

from obeya.catalog import services as catalog
from tests.conftest import PASSWORD, actor


@pytest.fixture
def browser(alice) -> Client:
    client = Client()
    client.login(username="alice", password=PASSWORD)
    return client


def test_pages_need_sign_in(db, client):
    response = client.get("/services/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_bad_slug_keeps_the_typed_values(browser):
    response = browser.post(
        "/services/new/", {"slug": "Bad Slug", "name": "My Name", "vision": "Typed vision"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "is not valid" in page
    assert 'value="Bad Slug"' in page and "Typed vision" in page


def test_create_then_page_shows_charter_team_and_timeline(browser):
    response = browser.post(
        "/services/new/", {"slug": "pay", "name": "Pay", "vision": "V1"}, follow=True
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "V1" in page and "service_master" in page and "created the service" in page


def test_illegal_stage_move_shows_message(browser, alice):
    catalog.create_service(actor(alice), "pay", "Pay")
    response = browser.post("/services/pay/stage/", {"to": "operation", "reason": "hurry"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "cannot move" in page and 'value="hurry"' in page


def test_unknown_user_keeps_the_typed_name(browser, alice):
    catalog.create_service(actor(alice), "pay", "Pay")
    response = browser.post("/services/pay/members/", {"username": "nobdy", "role": "developer"})
    assert response.status_code == 404
    assert 'value="nobdy"' in response.content.decode()


def test_missing_service_page_is_404(browser):
    assert browser.get("/services/ghost/").status_code == 404


def test_charter_edit_refused_for_a_developer(alice, bob):
    catalog.create_service(actor(alice), "pay", "Pay")
    catalog.add_member(actor(alice), "pay", "bob", "developer")
    client = Client()
    client.login(username="bob", password=PASSWORD)
    response = client.post("/services/pay/edit/", {"name": "Mine", "vision": "typed"})
    assert response.status_code == 403
    assert "may not" in response.content.decode()


def test_audit_and_account_pages(browser, alice):
    catalog.create_service(actor(alice), "pay", "Pay")
    audit = browser.get("/audit/?service=pay").content.decode()
    assert "created the service" in audit
    created = browser.post("/account/tokens/", {"name": "laptop", "scope": "read", "days": "7"})
    assert created.status_code == 200
    assert "obeya_" in created.content.decode()
    too_long = browser.post("/account/tokens/", {"name": "x", "scope": "read", "days": "999"})
    assert too_long.status_code == 400 and "1 to 365" in too_long.content.decode()
