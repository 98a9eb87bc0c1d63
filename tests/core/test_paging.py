"""API lists are paged in the database: only the rows on the page become bodies."""

from __future__ import annotations

import pytest

from obeya.core.models import User
from obeya.core.paging import Mapped


@pytest.mark.django_db
def test_only_the_rows_on_the_page_are_built():
    for n in range(30):
        User.objects.create(username=f"user{n:02}")
    built: list[str] = []

    def body(user: User) -> dict[str, str]:
        built.append(user.username)
        return {"name": user.username}

    people = Mapped(User.objects.order_by("username"), body)
    assert len(people) == 30
    assert people[10:12] == [{"name": "user10"}, {"name": "user11"}]
    assert people[0] == {"name": "user00"}
    assert built == ["user10", "user11", "user00"]


@pytest.mark.django_db
def test_an_api_list_pages_and_counts(api_for, make_user):
    ada = make_user("ada")
    client = api_for(ada)
    for _ in range(3):
        api_for(ada)  # four tokens in all
    page = client.get("/tokens?limit=2&offset=1").body
    assert page["count"] == 4
    assert len(page["items"]) == 2
    everything = client.get("/tokens?limit=10").body["items"]
    assert page["items"] == everything[1:3]
