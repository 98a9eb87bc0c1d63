"""Sessions and the signed-in user, read with plain statements (obeya.web.sessions,
obeya.core.backends): what Django's own store and backend answer, these answer too."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from obeya.core.backends import UserBackend
from tests.conftest import PASSWORD


def test_a_signed_in_session_is_read_back_and_ends_with_sign_out(alice):
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    assert client.get("/account/").status_code == 200
    client.post("/logout/")
    assert client.get("/account/").status_code == 302  # back to the sign-in page


def test_an_expired_session_signs_nobody_in(alice):
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    key = client.cookies["sessionid"].value
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    assert client.get("/account/").status_code == 302


def test_an_unknown_session_key_signs_nobody_in(alice):
    client = Client()
    client.cookies["sessionid"] = "x" * 32
    assert client.get("/account/").status_code == 302


def test_a_deactivated_user_is_signed_out_on_the_next_request(alice):
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert client.get("/account/").status_code == 302


def test_the_backend_finds_a_user_by_id_and_nothing_for_others(alice):
    backend = UserBackend()
    assert backend.get_user(alice.pk) == alice
    assert backend.get_user(str(alice.pk)) == alice
    assert backend.get_user(alice.pk + 1000) is None
    assert backend.get_user("not an id") is None
