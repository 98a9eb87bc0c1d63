"""Sign-in is throttled per account and per address: past the limit, even the right
password is refused with a clear message and 429, until the window has passed."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import F
from django.test import Client

from obeya.core import signin
from obeya.core.errors import Throttled
from obeya.core.models import Event, SignInAttempt, User
from tests.conftest import PASSWORD


def _sign_in(username: str, password: str, ip: str = "192.0.2.10") -> Any:
    return Client(REMOTE_ADDR=ip).post("/login/", {"username": username, "password": password})


def _signed_in(response: Any) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def _fail(username: str, times: int, ip: str = "192.0.2.10") -> None:
    for _ in range(times):
        response = _sign_in(username, "wrong password", ip)
        assert response.status_code == 200
        assert "Wrong username or password" in response.content.decode()


def _time_passes() -> None:
    """Every counted attempt becomes a whole window older (no waiting in tests)."""
    SignInAttempt.objects.update(at=F("at") - signin.WINDOW)


def test_after_five_failures_the_right_password_is_refused(alice: User) -> None:
    _fail("alice", signin.ACCOUNT_LIMIT)
    refused = _sign_in("alice", PASSWORD, ip="198.51.100.7")  # from anywhere
    assert refused.status_code == 429
    assert not _signed_in(refused)
    text = refused.content.decode()
    assert "Too many failed sign-ins for this account: try again in 15 minutes." in text
    assert int(refused["Retry-After"]) == signin.WINDOW.total_seconds()
    assert Event.objects.filter(kind="user.login_throttled").count() == 1
    assert not Event.objects.filter(kind="user.logged_in").exists()

    _time_passes()
    assert _signed_in(_sign_in("alice", PASSWORD))


def test_the_account_is_counted_whatever_case_it_is_typed_in(alice: User) -> None:
    _fail("ALICE", 3)
    _fail("Alice", 2)
    assert _sign_in("alice", PASSWORD).status_code == 429


def test_a_right_password_clears_the_account_but_not_the_address(alice: User, bob: User) -> None:
    _fail("alice", signin.ACCOUNT_LIMIT - 1)
    assert _signed_in(_sign_in("alice", PASSWORD))
    _fail("alice", signin.ACCOUNT_LIMIT - 1)
    assert _signed_in(_sign_in("alice", PASSWORD))
    assert SignInAttempt.objects.count() == 0


def test_after_twenty_failures_from_one_address_everyone_there_is_refused(bob: User) -> None:
    for number in range(signin.ADDRESS_LIMIT):
        _fail(f"guess{number % 10}", 1, ip="203.0.113.9")
    refused = _sign_in("bob", PASSWORD, ip="203.0.113.9")
    assert refused.status_code == 429
    assert "for this address: try again in" in refused.content.decode()
    assert _signed_in(_sign_in("bob", PASSWORD, ip="203.0.113.10"))  # elsewhere: fine


def test_refused_attempts_are_not_counted_so_waiting_always_ends_it(alice: User) -> None:
    _fail("alice", signin.ACCOUNT_LIMIT)
    for _ in range(10):
        assert _sign_in("alice", "wrong password").status_code == 429
    assert SignInAttempt.objects.filter(username="alice").count() == signin.ACCOUNT_LIMIT
    _time_passes()
    assert _signed_in(_sign_in("alice", PASSWORD))


def test_attempts_under_way_count_so_a_burst_gets_no_more_guesses(db: None) -> None:
    # Five attempts begun and not yet answered, as parallel requests would be.
    for _ in range(signin.ACCOUNT_LIMIT):
        signin.begin("carol", "192.0.2.1")
    with pytest.raises(Throttled, match="this account"):
        signin.begin("carol", "192.0.2.2")
