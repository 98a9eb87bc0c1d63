"""Bad input on the API gets 413 or 422 with the standard error body, never a 500, and
writes nothing: whole numbers past 64 bits, bodies past 2.5 MB, lone surrogates and NUL
characters (which PostgreSQL refuses). Each request comes from the weakest role that
reaches the route. Runs on SQLite, and on PostgreSQL with OBEYA_DATABASE_URL set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from obeya.catalog import services as catalog
from obeya.core.models import ApiToken, Event
from tests.conftest import Api, actor

BIG = 2**63
TOO_LOW = -(2**63) - 1


@pytest.fixture
def reader(alice: Any, api_for: Callable[..., Api]) -> Api:
    """A person with no role anywhere, holding a read-only token."""
    return api_for(alice, "read")


@pytest.fixture
def writer(alice: Any, api_for: Callable[..., Api]) -> Api:
    return api_for(alice, "write")


@pytest.fixture
def developer(alice: Any, bob: Any, api_for: Callable[..., Api]) -> Api:
    """Bob, a developer on alice's service "pay": the least role that opens an incident."""
    catalog.create_service(actor(alice), "pay", "Payments")
    catalog.add_member(actor(alice), "pay", "bob", "developer")
    return api_for(bob, "write")


def _refused(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.body
    error = response.body["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["code"] == {413: "too_large", 422: "unprocessable"}[status]
    assert error["message"]
    if field is not None:
        assert error["field"] == field
    return error


@pytest.mark.parametrize("value", [BIG, 2**64])
@pytest.mark.parametrize("name", ["limit", "offset"])
def test_a_page_past_64_bits_is_refused(reader: Api, name: str, value: int) -> None:
    error = _refused(reader.get(f"/events?{name}={value}"), 422, name)
    assert str(value) in error["message"]


@pytest.mark.parametrize("path", [f"/jobs/{BIG}", f"/deployments/{TOO_LOW}", f"/jobs/{2**70}/log"])
def test_an_id_past_64_bits_in_the_path_is_refused(reader: Api, path: str) -> None:
    _refused(reader.get(path), 422)


def test_a_token_id_past_64_bits_is_refused_and_revokes_nothing(writer: Api) -> None:
    events = Event.objects.count()
    _refused(writer.delete(f"/tokens/{BIG}"), 422, "token_id")
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()
    assert Event.objects.count() == events


def test_an_id_past_64_bits_in_the_body_is_refused_and_opens_nothing(developer: Api) -> None:
    events = Event.objects.count()
    body = {"title": "Checkout is down", "deployment": BIG}
    _refused(developer.post("/services/pay/incidents", body), 422, "deployment")
    assert developer.get("/services/pay/incidents").body["count"] == 0
    assert Event.objects.count() == events


def test_a_lifetime_past_64_bits_is_refused(writer: Api) -> None:
    tokens = ApiToken.objects.count()
    _refused(writer.post("/tokens", {"name": "ci", "days": BIG}), 422, "days")
    assert ApiToken.objects.count() == tokens


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "a\x00b"])
def test_text_no_database_holds_is_refused_in_a_body(writer: Api, text: str) -> None:
    events = Event.objects.count()
    _refused(writer.post("/services", {"slug": "pay", "name": text}), 422, "name")
    assert writer.get("/services/pay").status_code == 404
    assert Event.objects.count() == events


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/services?search=a%00b", "search"),
        ("/events?service=pay%00", "service"),
        ("/services/pay%00", "slug"),
        ("/services/pay/stories/S-1%00", None),
    ],
)
def test_a_nul_in_the_query_or_path_is_refused(reader: Api, path: str, field: str | None) -> None:
    _refused(reader.get(path), 422, field)


def test_a_body_over_the_limit_is_refused_with_413(writer: Api, settings: Any) -> None:
    events = Event.objects.count()
    body = {"slug": "pay", "name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    error = _refused(writer.post("/services", body), 413)
    assert f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,}" in error["message"]
    assert writer.get("/services/pay").status_code == 404
    assert Event.objects.count() == events
