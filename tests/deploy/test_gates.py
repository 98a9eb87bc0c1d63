"""The gate cannot be widened by the people it holds back (issue #13, gates).

Only an administrator or the environment's own gatekeepers (holders of its approval role)
change its protection; each change is an ``environment.protection_changed`` event; and a
deployment already waiting keeps the rules it was requested under. Driven over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from obeya.catalog import services as catalog
from obeya.core.models import Event, User
from obeya.deploy import deployer
from obeya.deploy.models import Deployment
from tests.conftest import PASSWORD, Api, actor
from tests.deploy.conftest import Shop, environment

PRODUCTION = "/services/shop/environments/production"
RULES = ("protected", "required_approvals", "approval_role")


@pytest.fixture
def team(shop: Shop, make_user: Callable[..., User]) -> dict[str, User]:
    """olga and dave (devops engineers), a developer, two gatekeepers and an operator."""
    people = {"olga": shop.owner}
    for name, role in (
        ("dave", "devops_engineer"),
        ("dev", "developer"),
        ("gina", "gatekeeper"),
        ("greg", "gatekeeper"),
        ("otto", "operator"),
    ):
        people[name] = make_user(name)
        catalog.add_member(actor(shop.owner), "shop", name, role)
    return people


@pytest.fixture
def apis(team: dict[str, User], api_for: Callable[..., Api]) -> dict[str, Api]:
    return {name: api_for(user) for name, user in team.items()}


def rules(name: str = "production") -> tuple[Any, ...]:
    found = environment(name)
    return tuple(getattr(found, key) for key in RULES)


def waiting_in_production(shop: Shop, asker: Api) -> dict[str, Any]:
    """A build in staging, and a deployment of it to production waiting for approval."""
    run = shop.build("1.0.0")
    done = deployer.work_once()
    assert done is not None and done.status == "succeeded", done.reason if done else None
    asked = asker.post(f"{PRODUCTION}/deploy", {"run": run.number})
    assert asked.status_code == 201, asked.body
    assert asked.body["status"] == "waiting_approval"
    return dict(asked.body)


def refused(response: Any) -> str:
    assert response.status_code == 403, response.body
    return str(response.body["error"]["message"])


def test_a_devops_engineer_cannot_make_themselves_the_gatekeeper(
    shop: Shop, team: dict[str, User], apis: dict[str, Api], api_for: Callable[..., Api]
) -> None:
    """The hole of issue #13: PATCH approval_role to your own role, then approve."""
    waiting = waiting_in_production(shop, apis["dave"])
    reader = api_for(team["gina"], "read")
    before, events = rules(), Event.objects.count()

    message = refused(apis["olga"].patch(PRODUCTION, {"approval_role": "devops_engineer"}))
    assert "olga may not change the protection of production (approval_role)" in message
    assert (
        "only an administrator or a holder of the gatekeeper role on shop (gina, greg)" in message
    )
    for loosening in (
        {"protected": False, "required_approvals": 0},
        {"required_approvals": 0},
        {"protected": False},
        {"required_approvals": 2},  # tightening is the gatekeeper's call too
        {"approval_role": "devops_engineer", "retention": 2},
    ):
        assert "only an administrator" in refused(apis["olga"].patch(PRODUCTION, loosening))
        assert "only an administrator" in refused(apis["dev"].patch(PRODUCTION, loosening))
        assert "only an administrator" in refused(apis["otto"].patch(PRODUCTION, loosening))
    # nor may a gatekeeper through a read-scope token
    assert "read scope" in refused(reader.patch(PRODUCTION, {"required_approvals": 2}))
    assert rules() == before and environment("production").retention == 3
    assert Event.objects.count() == events

    approve = f"/deployments/{waiting['id']}/approve"
    assert "needs the gatekeeper role" in refused(apis["olga"].post(approve, {"comment": "mine"}))
    assert Deployment.objects.get(pk=waiting["id"]).status == "waiting_approval"


def test_an_unprotected_environment_is_protected_only_by_its_gatekeeper_or_an_admin(
    shop: Shop, apis: dict[str, Api]
) -> None:
    staging = "/services/shop/environments/staging"
    asked = {"protected": True, "required_approvals": 1, "approval_role": "devops_engineer"}
    assert "the gatekeeper role on shop" in refused(apis["olga"].patch(staging, asked))
    assert rules("staging") == (False, 0, "gatekeeper")
    # what is not protection stays the devops engineer's, even sent beside unchanged rules
    kept = apis["olga"].patch(
        PRODUCTION, {"retention": 4, "protected": True, "required_approvals": 1}
    )
    assert kept.status_code == 200, kept.body
    assert kept.body["retention"] == 4 and rules() == (True, 1, "gatekeeper")
    assert not Event.objects.filter(kind="environment.protection_changed").exists()


def test_the_gatekeeper_changes_protection_and_each_change_is_one_event(
    shop: Shop, apis: dict[str, Api]
) -> None:
    events = Event.objects.count()
    changed = apis["gina"].patch(PRODUCTION, {"required_approvals": 2, "approval_role": "operator"})
    assert changed.status_code == 200, changed.body
    assert (changed.body["required_approvals"], changed.body["approval_role"]) == (2, "operator")
    assert Event.objects.count() == events + 1
    event = Event.objects.latest("id")
    assert event.kind == "environment.protection_changed"
    assert event.actor_name == "gina" and event.ip == "127.0.0.1" and event.channel == "api"
    assert event.subject == f"environment:{environment('production').pk}"
    assert event.service == "shop"
    assert event.data == {
        "name": "production",
        "changed": ["required_approvals", "approval_role"],
        "before": {"protected": True, "required_approvals": 1, "approval_role": "gatekeeper"},
        "after": {"protected": True, "required_approvals": 2, "approval_role": "operator"},
    }
    # gina handed the gate to the operators: it is no longer hers to change
    assert "the operator role on shop (otto)" in refused(
        apis["gina"].patch(PRODUCTION, {"required_approvals": 1})
    )
    lowered = apis["otto"].patch(PRODUCTION, {"required_approvals": 1})
    assert lowered.status_code == 200, lowered.body


def test_an_administrator_changes_any_protection(
    shop: Shop, apis: dict[str, Api], admin: User, api_for: Callable[..., Api]
) -> None:
    root = api_for(admin)
    events = Event.objects.count()
    opened = root.patch(PRODUCTION, {"protected": False, "required_approvals": 0})
    assert opened.status_code == 200, opened.body
    assert rules() == (False, 0, "gatekeeper")
    assert Event.objects.count() == events + 1
    event = Event.objects.latest("id")
    assert (event.kind, event.actor_name) == ("environment.protection_changed", "root")
    assert event.data["changed"] == ["protected", "required_approvals"]

    both = root.patch(PRODUCTION, {"protected": True, "required_approvals": 1, "retention": 2})
    assert both.status_code == 200, both.body
    kinds = list(Event.objects.order_by("-id").values_list("kind", flat=True)[:2])
    assert sorted(kinds) == ["environment.changed", "environment.protection_changed"]
    assert Event.objects.filter(kind="environment.changed").latest("id").data["changes"] == {
        "retention": {"from": 3, "to": 2}
    }


def test_a_waiting_deployment_keeps_the_rules_it_was_requested_under(
    shop: Shop, apis: dict[str, Api]
) -> None:
    waiting = waiting_in_production(shop, apis["dave"])
    assert (waiting["required_approvals"], waiting["approval_role"]) == (1, "gatekeeper")
    # the gate changes while it waits: two operators' approvals from now on
    changed = apis["gina"].patch(PRODUCTION, {"required_approvals": 2, "approval_role": "operator"})
    assert changed.status_code == 200, changed.body
    shown = apis["dave"].get(f"/deployments/{waiting['id']}").body
    assert (shown["required_approvals"], shown["approval_role"]) == (1, "gatekeeper")

    path = f"/deployments/{waiting['id']}/approve"
    message = refused(apis["otto"].post(path, {"comment": "new rules"}))
    assert "needs the gatekeeper role on shop (the rule when it was requested)" in message
    approved = apis["greg"].post(path, {"comment": "one gatekeeper, as when asked"})
    assert approved.status_code == 200, approved.body
    assert approved.body["status"] == "queued"

    # a deployment asked for after the change follows the new rules
    again = apis["dave"].post(f"{PRODUCTION}/deploy", {"run": waiting["run"]})
    assert again.status_code == 201, again.body
    assert (again.body["required_approvals"], again.body["approval_role"]) == (2, "operator")


def test_opening_the_gate_does_not_let_a_waiting_deployment_through(
    shop: Shop, apis: dict[str, Api], admin: User, api_for: Callable[..., Api]
) -> None:
    waiting = waiting_in_production(shop, apis["dave"])
    opened = api_for(admin).patch(PRODUCTION, {"protected": False, "required_approvals": 0})
    assert opened.status_code == 200, opened.body
    assert deployer.work_once() is None  # nothing to carry out: it still waits
    assert Deployment.objects.get(pk=waiting["id"]).status == "waiting_approval"
    shown = apis["dave"].get(f"/deployments/{waiting['id']}").body
    assert (shown["required_approvals"], shown["approval_role"]) == (1, "gatekeeper")
    approved = apis["gina"].post(f"/deployments/{waiting['id']}/approve", {"comment": "ok"})
    assert approved.status_code == 200 and approved.body["status"] == "queued"


# ---- the same rule on the pages ----------------------------------------------------------


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_the_gatekeeper_changes_protection_from_the_environment_page(
    shop: Shop, team: dict[str, User]
) -> None:
    gina = signed_in(team["gina"])
    page = gina.get(f"{PRODUCTION}/").content.decode()
    assert "Save protection" in page and 'name="required_approvals"' in page
    saved = gina.post(
        f"{PRODUCTION}/protection/",
        {"protected": "on", "required_approvals": "2", "approval_role": "gatekeeper"},
    )
    assert saved.status_code == 302
    assert rules() == (True, 2, "gatekeeper")
    assert Event.objects.filter(kind="environment.protection_changed").count() == 1
    trail = gina.get("/audit/?kind=environment.").content.decode()
    assert "changed the protection of production: required_approvals 1 → 2" in trail

    olga = signed_in(team["olga"])
    assert "Save protection" not in olga.get(f"{PRODUCTION}/").content.decode()
    denied = olga.post(
        f"{PRODUCTION}/protection/", {"required_approvals": "1", "approval_role": "gatekeeper"}
    )
    assert denied.status_code == 403
    assert "only an administrator or a holder of the gatekeeper role" in denied.content.decode()
    assert rules() == (True, 2, "gatekeeper")
