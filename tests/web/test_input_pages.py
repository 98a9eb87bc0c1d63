"""Bad input on the pages gets a page that says why (413 or 422), never a 500, and writes
nothing; as the weakest role that reaches each page. On SQLite, and on PostgreSQL with
OBEYA_DATABASE_URL set (NUL characters are what PostgreSQL refuses)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from obeya.catalog.services import list_services
from obeya.core.models import ApiToken, Event, User
from obeya.core.services import create_token
from tests.conftest import PASSWORD, SYSTEM

BIG = 2**63


@pytest.fixture
def signed_in(alice: User) -> Client:
    """Alice, signed in, with no role on any service."""
    client = Client()
    client.force_login(alice)
    return client


def _refused_page(response: Any, status: int, words: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    assert words in response.content.decode()


@pytest.mark.parametrize("query", ["service=pay%00", "kind=%00user.", "subject=user:a%00"])
def test_a_nul_in_the_query_is_refused(signed_in: Client, query: str) -> None:
    _refused_page(signed_in.get(f"/audit/?{query}"), 422, "NUL character")


def test_a_nul_in_a_form_is_refused_and_creates_nothing(signed_in: Client) -> None:
    events = Event.objects.count()
    response = signed_in.post("/services/new/", {"slug": "pay", "name": "Pay\x00ments"})
    _refused_page(response, 422, "NUL character")
    assert not list_services().exists()
    assert Event.objects.count() == events


def test_a_nul_in_the_sign_in_form_is_refused(db: None) -> None:
    response = Client().post("/login/", {"username": "ali\x00ce", "password": PASSWORD})
    _refused_page(response, 422, "NUL character")


def test_an_id_past_64_bits_in_the_address_is_refused(signed_in: Client, alice: User) -> None:
    create_token(SYSTEM, alice, name="kept", days=30)
    response = signed_in.post(f"/account/tokens/{BIG}/revoke/")
    _refused_page(response, 422, "out of range")
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()


def test_a_form_over_the_limit_is_refused_with_413(signed_in: Client, settings: Any) -> None:
    events = Event.objects.count()
    name = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = signed_in.post("/services/new/", {"slug": "pay", "name": name})
    _refused_page(response, 413, f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes")
    assert not list_services().exists()
    assert Event.objects.count() == events


@pytest.mark.urls("tests.web.refusing_urls")
def test_a_number_the_database_refuses_gets_422(signed_in: Client) -> None:
    _refused_page(signed_in.post("/test-number/", {"number": str(2**70)}), 422, "out of range")
    assert signed_in.post("/test-number/", {"number": "7"}).content == b"stored"
