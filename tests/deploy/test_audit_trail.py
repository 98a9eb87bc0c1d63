"""Every action the audit trail must hold writes one event naming who, from where, and what
(issue #13, audit; ASVS V16): sign-in and its failure, token create and revoke, secret set
and delete, role given and taken, protection changed, deploy, approval and rollback. Each
is done over HTTP from an address of its own, as the person who may do it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.test import Client

from obeya.catalog import services as catalog
from obeya.core import audit
from obeya.core.models import Event, User
from obeya.deploy import deployer
from tests.conftest import PASSWORD, SYSTEM, Api, actor
from tests.deploy.conftest import Shop, environment

ADDRESS = "203.0.113.7"


def one_event(kind: str, action: Callable[[], Any]) -> Event:
    """Run ``action``; the one event of ``kind`` it wrote."""
    before = set(Event.objects.filter(kind=kind).values_list("id", flat=True))
    response = action()
    if hasattr(response, "status_code"):
        assert response.status_code < 400, getattr(response, "body", response)
    written = list(Event.objects.filter(kind=kind).exclude(id__in=before))
    assert len(written) == 1, (kind, written)
    return written[0]


def by(event: Event, name: str, subject: str) -> None:
    assert (event.actor_name, event.ip, event.subject) == (name, ADDRESS, subject), event


def test_each_audited_action_writes_one_event_with_actor_address_and_target(
    shop: Shop, make_user: Callable[..., User], api_for: Callable[..., Api]
) -> None:
    people = {"olga": shop.owner}
    for name, role in (("dave", "devops_engineer"), ("gina", "gatekeeper"), ("zoe", "developer")):
        people[name] = make_user(name)
        catalog.add_member(actor(shop.owner), "shop", name, role)
    apis = {name: api_for(user) for name, user in people.items()}

    def call(who: str, method: str, path: str, body: Any = None) -> Any:
        return apis[who].call(method, path, body, REMOTE_ADDR=ADDRESS)

    web = Client(REMOTE_ADDR=ADDRESS)
    signed_in = one_event(
        "user.logged_in",
        lambda: web.post("/login/", {"username": "zoe", "password": PASSWORD}),
    )
    by(signed_in, "zoe", "user:zoe")
    refused = one_event(
        "user.login_failed",
        lambda: Client(REMOTE_ADDR=ADDRESS).post(
            "/login/", {"username": "zoe", "password": "not the password"}
        ),
    )
    by(refused, "system", "user:zoe")

    made = one_event("token.created", lambda: call("zoe", "POST", "/tokens", {"name": "ci"}))
    token = made.subject.split(":")[1]
    by(made, "zoe", f"token:{token}")
    by(
        one_event("token.revoked", lambda: call("zoe", "DELETE", f"/tokens/{token}")),
        "zoe",
        f"token:{token}",
    )

    secret = "/services/shop/secrets/DEPLOY_KEY"
    set_ = one_event("secret.set", lambda: call("dave", "PUT", secret, {"value": "s3cr3t!"}))
    by(set_, "dave", "secret:shop/DEPLOY_KEY")
    assert "s3cr3t!" not in str(set_.data)
    by(
        one_event("secret.deleted", lambda: call("dave", "DELETE", secret)),
        "dave",
        "secret:shop/DEPLOY_KEY",
    )

    given = one_event(
        "member.added",
        lambda: call(
            "olga", "POST", "/services/shop/members", {"username": "zoe", "role": "operator"}
        ),
    )
    by(given, "olga", "user:zoe")
    taken = one_event(
        "member.removed",
        lambda: call("olga", "DELETE", "/services/shop/members/zoe/roles/operator"),
    )
    by(taken, "olga", "user:zoe")

    production = "/services/shop/environments/production"
    protected = one_event(
        "environment.protection_changed",
        lambda: call("gina", "PATCH", production, {"required_approvals": 1, "protected": False}),
    )
    by(protected, "gina", f"environment:{environment('production').pk}")
    call("gina", "PATCH", production, {"protected": True})

    run = shop.build("1.0.0")
    done = deployer.work_once()
    assert done is not None and done.status == "succeeded"
    asked = one_event(
        "deployment.requested",
        lambda: call("dave", "POST", f"{production}/deploy", {"run": run.number}),
    )
    deployment = asked.subject.split(":")[1]
    by(asked, "dave", f"deployment:{deployment}")
    approved = one_event(
        "deployment.approved",
        lambda: call("gina", "POST", f"/deployments/{deployment}/approve", {"comment": "ok"}),
    )
    by(approved, "gina", f"deployment:{deployment}")

    shop.commit("second")
    shop.build("2.0.0")
    while deployer.work_once() is not None:  # production 1.0.0, then staging 2.0.0
        pass
    back = one_event(
        "deployment.requested",
        lambda: call("dave", "POST", "/services/shop/environments/staging/rollback", {}),
    )
    by(back, "dave", back.subject)
    assert back.data["kind"] == "rollback" and back.subject.startswith("deployment:")

    assert audit.verify(SYSTEM).ok  # and every one of them is in the chain
