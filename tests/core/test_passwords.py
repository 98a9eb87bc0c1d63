"""Changing passwords: your own with the current one, anyone's as an admin; one event each."""

from __future__ import annotations

import pytest
from django.test import Client

from obeya.core import services
from obeya.core.errors import InvalidInput, PermissionDenied
from obeya.core.models import Event
from tests.conftest import PASSWORD, SYSTEM, actor

NEW = "a brand new passphrase 42"


def test_own_password_needs_the_current_one(alice):
    with pytest.raises(InvalidInput, match="current password is wrong"):
        services.set_password(actor(alice), alice, NEW, current_password="nope")
    services.set_password(actor(alice), alice, NEW, current_password=PASSWORD)
    alice.refresh_from_db()
    assert alice.check_password(NEW)
    assert Event.objects.filter(kind="user.password_changed").count() == 1


def test_weak_passwords_and_other_people(alice, bob, admin):
    with pytest.raises(InvalidInput, match="too short"):
        services.set_password(actor(alice), alice, "abc", current_password=PASSWORD)
    with pytest.raises(PermissionDenied):
        services.set_password(actor(bob), alice, NEW)
    services.set_password(actor(admin), alice, NEW)
    services.set_password(SYSTEM, alice, NEW + "!")


def test_account_page_changes_the_password_and_keeps_the_session(alice):
    browser = Client()
    browser.login(username="alice", password=PASSWORD)
    differ = browser.post(
        "/account/password/",
        {"current_password": PASSWORD, "new_password": NEW, "confirm_password": "x"},
    )
    assert differ.status_code == 400 and "differ" in differ.content.decode()
    done = browser.post(
        "/account/password/",
        {"current_password": PASSWORD, "new_password": NEW, "confirm_password": NEW},
    )
    assert done.status_code == 302
    assert browser.get("/account/").status_code == 200  # still signed in


def test_admin_lists_anyones_tokens_over_the_api(alice, admin, api_for):
    services.create_token(actor(alice), alice, name="hers")
    assert api_for(admin, "write").get("/tokens?username=alice").status_code == 403
    names = {t["name"] for t in api_for(admin, "admin").get("/tokens?username=alice").body["items"]}
    assert "hers" in names
    assert api_for(alice).get("/tokens?username=root").status_code == 403
