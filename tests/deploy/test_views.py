"""Deployment pages: environments side by side, one environment, one deployment; approvals,
deploys, rollbacks and settings through forms, refusals shown beside them with the input kept."""

from __future__ import annotations

import html as markup
from collections.abc import Callable

import pytest
from django.test import Client

from obeya.catalog import services as catalog
from obeya.core.actors import Actor
from obeya.core.models import User
from obeya.deploy import deployer
from obeya.deploy import services as deploy
from obeya.deploy.models import Deployment
from tests.conftest import PASSWORD, actor
from tests.deploy.conftest import Shop, environment, latest

ADMIN_CLI = Actor(user=None, channel="cli")


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def text(response) -> str:
    return markup.unescape(response.content.decode())


def card(page: str, name: str) -> str:
    """The markup of one environment's card."""
    rest = page[page.index(f'id="env-{name}"') :]
    end = rest.find('<section class="card env-card"', 1)
    return rest if end < 0 else rest[:end]


def person(make_user: Callable[..., User], name: str, role: str) -> User:
    user = make_user(name)
    catalog.add_member(actor(User.objects.get(username="olga")), "shop", name, role)
    return user


def in_staging(shop: Shop, version: str = "1.0.0") -> Deployment:
    shop.build(version)
    done = deployer.work_once()
    assert done is not None and done.status == "succeeded", done.reason if done else None
    return done


def waiting_in_production(shop: Shop) -> Deployment:
    in_staging(shop)
    deployment = deploy.deploy(actor(shop.owner), "shop", "production")
    assert deployment.status == "waiting_approval"
    return deployment


@pytest.fixture
def gate(shop: Shop, make_user: Callable[..., User]) -> User:
    return person(make_user, "gina", "gatekeeper")


@pytest.fixture
def dev(shop: Shop, make_user: Callable[..., User]) -> User:
    return person(make_user, "dave", "developer")


# ---- the environments tab ----------------------------------------------------------------


def test_the_tab_shows_environments_in_promotion_order_with_what_runs_there(shop: Shop) -> None:
    done = in_staging(shop)
    response = signed_in(shop.owner).get("/services/shop/environments/")
    assert response.status_code == 200
    page = text(response)
    tabs = page[page.index('class="service-tabs"') :]
    assert tabs.index(">Runs<") < tabs.index(">Environments<")
    assert page.index('id="env-staging"') < page.index('id="env-production"')
    staging = card(page, "staging")
    assert "1.0.0" in staging and "healthy" in staging and "health-healthy" in staging
    assert done.artifact_sha256[:12] in staging
    assert done.sha[:10] in staging and "first commit" in staging
    assert "olga" in staging
    assert "protected" not in staging
    production = card(page, "production")
    assert "protected" in production and "Nothing deployed yet." in production
    assert "unknown" in production


def test_the_next_environment_shows_the_commits_it_would_get(shop: Shop) -> None:
    shop.commit("faster checkout")
    in_staging(shop)
    staging = card(text(signed_in(shop.owner).get("/services/shop/environments/")), "staging")
    assert "production would get:" in staging
    assert '"next-count">2 commits' in staging
    assert "faster checkout" in staging and "first commit" in staging


def test_drift_is_shown_when_current_no_longer_matches_its_release(shop: Shop) -> None:
    in_staging(shop)
    web = signed_in(shop.owner)
    assert "Drift" not in card(text(web.get("/services/shop/environments/")), "staging")
    (shop.target("staging") / "current" / "VERSION").write_text("patched by hand\n")
    staging = card(text(web.get("/services/shop/environments/")), "staging")
    assert 'data-testid="drift"' in staging
    assert "1 changed (VERSION)" in staging


def test_a_waiting_deployment_offers_approval_to_the_team_only(
    shop: Shop, gate: User, alice: User
) -> None:
    deployment = waiting_in_production(shop)
    production = card(text(signed_in(gate).get("/services/shop/environments/")), "production")
    assert f'data-deployment="{deployment.pk}"' in production
    assert "waiting for approval" in production
    assert "0 of 1 approval(s) by a <strong>gatekeeper</strong>" in production
    assert f"/deployments/{deployment.pk}/decide/" in production
    # Someone outside the team sees the deployment waiting, not the forms.
    outside = card(text(signed_in(alice).get("/services/shop/environments/")), "production")
    assert "waiting for approval" in outside
    assert "/decide/" not in outside
    assert "Deploy to production" not in outside


def test_a_developer_is_refused_beside_the_form_and_the_comment_is_kept(
    shop: Shop, dev: User
) -> None:
    deployment = waiting_in_production(shop)
    response = signed_in(dev).post(
        f"/services/shop/deployments/{deployment.pk}/decide/",
        {"comment": "looks fine to me", "decision": "approve", "back": "environments"},
    )
    assert response.status_code == 403
    production = card(text(response), "production")
    assert "approving deployments to production needs the gatekeeper role on shop" in production
    assert ">looks fine to me</textarea>" in production
    deployment.refresh_from_db()
    assert deployment.status == "waiting_approval"
    assert not deployment.approvals.exists()


def test_whoever_asked_cannot_approve_it(shop: Shop) -> None:
    deployment = waiting_in_production(shop)
    catalog.add_member(actor(shop.owner), "shop", "olga", "gatekeeper")
    response = signed_in(shop.owner).post(
        f"/services/shop/deployments/{deployment.pk}/decide/",
        {"comment": "mine", "decision": "approve"},
    )
    assert response.status_code == 403
    assert "you triggered this deployment: someone else must approve it" in text(response)


def test_a_decision_needs_a_comment(shop: Shop, gate: User) -> None:
    deployment = waiting_in_production(shop)
    response = signed_in(gate).post(
        f"/services/shop/deployments/{deployment.pk}/decide/",
        {"comment": "   ", "decision": "approve"},
    )
    assert response.status_code == 400
    assert "say why: a comment is required" in text(response)


def test_a_gatekeeper_approves_from_the_page_and_the_deployer_carries_it_out(
    shop: Shop, gate: User
) -> None:
    deployment = waiting_in_production(shop)
    web = signed_in(gate)
    response = web.post(
        f"/services/shop/deployments/{deployment.pk}/decide/",
        {"comment": "staging looked right", "decision": "approve", "back": "environments"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/services/shop/deployments/{deployment.pk}/"
    deployment.refresh_from_db()
    assert deployment.status == "queued"
    page = text(web.get(response["Location"]))
    assert "Approved deployment" in page
    assert 'hx-trigger="every 1s"' in page
    done = deployer.work_once()
    assert done is not None and done.pk == deployment.pk and done.status == "succeeded"
    page = text(web.get(response["Location"]))
    assert 'id="deployment-status"' in page and ">succeeded</span>" in page
    assert "hx-trigger" not in page  # nothing more to follow
    assert "✓ Approved</strong> by gina" in page and "staging looked right" in page
    assert "release " in page and "is live" in page  # the deployer's log
    production = card(text(web.get("/services/shop/environments/")), "production")
    assert "1.0.0" in production and "gina" in production


def test_a_rejection_ends_the_deployment(shop: Shop, gate: User) -> None:
    deployment = waiting_in_production(shop)
    web = signed_in(gate)
    web.post(
        f"/services/shop/deployments/{deployment.pk}/decide/",
        {"comment": "not during the sale", "decision": "reject"},
    )
    deployment.refresh_from_db()
    assert deployment.status == "rejected"
    page = text(web.get(f"/services/shop/deployments/{deployment.pk}/"))
    assert "rejected by gina: not during the sale" in page
    assert "✗ Rejected</strong> by gina" in page


def test_a_late_decision_is_refused_on_the_deployment_page(
    shop: Shop, gate: User, make_user: Callable[..., User]
) -> None:
    deployment = waiting_in_production(shop)
    deploy.decide(actor(gate), deployment.pk, "not now", reject=True)
    late = person(make_user, "gus", "gatekeeper")
    response = signed_in(late).post(
        f"/services/shop/deployments/{deployment.pk}/decide/",
        {"comment": "go", "decision": "approve", "back": "environments"},
    )
    assert response.status_code == 409
    page = text(response)
    assert f"Deployment #{deployment.pk} to production" in page
    assert f"deployment {deployment.pk} is rejected, not waiting" in page


def test_the_live_part_asks_for_a_reload_once_approval_is_no_longer_awaited(
    shop: Shop, gate: User
) -> None:
    deployment = waiting_in_production(shop)
    web = signed_in(gate)
    live = f"/services/shop/deployments/{deployment.pk}/live/?was=waiting_approval"
    first = web.get(live)
    assert first.status_code == 200 and 'id="deployment-live"' in text(first)
    assert 'hx-trigger="every 5s"' in text(first)
    deploy.decide(actor(gate), deployment.pk, "fine")
    second = web.get(live)
    assert second["HX-Refresh"] == "true"


def test_a_waiting_deployment_is_canceled_from_its_page(shop: Shop, gate: User) -> None:
    deployment = waiting_in_production(shop)
    web = signed_in(shop.owner)
    assert "Cancel deployment" in text(web.get(f"/services/shop/deployments/{deployment.pk}/"))
    response = web.post(f"/services/shop/deployments/{deployment.pk}/cancel/")
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert deployment.status == "canceled"
    again = web.post(f"/services/shop/deployments/{deployment.pk}/cancel/")
    assert again.status_code == 409
    assert "only a waiting one can be canceled" in text(again)


def test_a_deployment_of_another_service_is_not_found(shop: Shop, alice: User) -> None:
    deployment = waiting_in_production(shop)
    catalog.create_service(actor(alice), "other", "Other")
    web = signed_in(alice)
    assert web.get(f"/services/other/deployments/{deployment.pk}/").status_code == 404
    assert web.get("/services/shop/deployments/999999/").status_code == 404
    assert web.get("/services/shop/environments/nowhere/").status_code == 404
    refused = web.post(f"/services/other/deployments/{deployment.pk}/decide/", {"comment": "x"})
    assert refused.status_code == 404


# ---- deploy and rollback -----------------------------------------------------------------


def test_deploy_from_the_card_goes_to_the_deployment_page(shop: Shop) -> None:
    in_staging(shop)
    web = signed_in(shop.owner)
    production = card(text(web.get("/services/shop/environments/")), "production")
    assert 'option value="1"' in production and "Deploy to production" in production
    response = web.post("/services/shop/environments/production/deploy/", {"run": "1"})
    assert response.status_code == 302
    deployment = latest("production")
    assert response["Location"] == f"/services/shop/deployments/{deployment.pk}/"
    assert deployment.status == "waiting_approval"
    assert "waits for 1 approval(s) by a gatekeeper" in text(web.get(response["Location"]))


def test_an_artifact_not_yet_in_staging_is_refused_beside_the_deploy_form(shop: Shop) -> None:
    in_staging(shop)
    shop.commit("second")
    shop.build("2.0.0")  # its staging deployment is queued, not done
    response = signed_in(shop.owner).post(
        "/services/shop/environments/production/deploy/", {"run": "2"}
    )
    assert response.status_code == 409
    production = card(text(response), "production")
    assert "has not been deployed successfully to staging" in production
    assert 'option value="2" selected' in production


def test_a_developer_may_not_deploy_to_production(shop: Shop, dev: User) -> None:
    in_staging(shop)
    web = signed_in(dev)
    page = text(web.get("/services/shop/environments/"))
    assert "Deploy to staging" in card(page, "staging")
    assert "Deploy to production" not in card(page, "production")
    response = web.post("/services/shop/environments/production/deploy/", {"run": "1"})
    assert response.status_code == 403
    assert 'role="alert"' in card(text(response), "production")


def test_a_kept_release_is_rolled_back_to_from_the_environment_page(shop: Shop) -> None:
    first = in_staging(shop)
    shop.commit("second")
    in_staging(shop, "2.0.0")
    web = signed_in(shop.owner)
    page = text(web.get("/services/shop/environments/staging/"))
    assert f"Roll back to {first.release_id}" in page
    response = web.post(
        "/services/shop/environments/staging/rollback/",
        {"to": first.release_id, "back": "environment"},
    )
    assert response.status_code == 302
    done = deployer.work_once()
    assert done is not None and done.kind == "rollback" and done.status == "succeeded"
    assert (shop.target("staging") / "current" / "VERSION").read_text() == "1.0.0\n"
    history = text(web.get("/services/shop/environments/staging/"))
    assert history.count('href="/services/shop/deployments/') >= 3
    assert ">rollback<" in history


def test_a_rollback_to_a_release_not_kept_is_refused_on_the_page_it_came_from(
    shop: Shop,
) -> None:
    in_staging(shop)
    response = signed_in(shop.owner).post(
        "/services/shop/environments/staging/rollback/", {"to": "1999", "back": "environment"}
    )
    assert response.status_code == 404
    page = text(response)
    assert "Kept releases" in page
    assert "release 1999 is not kept in staging" in page


# ---- the environment page and its settings -----------------------------------------------


def test_the_environment_page_shows_settings_releases_and_history(shop: Shop, gate: User) -> None:
    done = in_staging(shop)
    page = text(signed_in(gate).get("/services/shop/environments/staging/"))
    assert "grep -q healthy STATUS" in page
    assert str(shop.target("staging")) in page
    assert done.release_id in page and ">current<" in page
    assert f"#{done.pk}" in page and "succeeded" in page
    assert "?edit=1" not in page  # a gatekeeper does not configure environments
    assert "A devops_engineer or service_master" in page


def test_settings_are_saved_from_the_form(shop: Shop) -> None:
    # Its loopback health URL approved by an administrator (the local admin CLI) first:
    # the devops engineer's form keeps it (test_environment_urls.py).
    approved = {"kind": "http", "url": "http://127.0.0.1:9/health"}
    deploy.update_environment(ADMIN_CLI, "shop", "production", health=approved)
    web = signed_in(shop.owner)
    form = text(web.get("/services/shop/environments/production/?edit=1"))
    assert "Save settings" in form
    # olga is a devops engineer, not production's gatekeeper: its protection is not hers
    assert 'name="required_approvals"' not in form
    assert "Only an administrator or a holder of the gatekeeper role" in form
    response = web.post(
        "/services/shop/environments/production/edit/",
        {
            "tier": "production",
            "position": "30",
            "target_kind": "local",
            "target_root": str(shop.target("prod2")),
            "health_kind": "http",
            "health_url": "http://127.0.0.1:9/health",
            "warmup_s": "10",
            "health_passes": "2",
            "health_interval_ms": "200",
            "retention": "4",
            "hook_restart": "true",
            "hook_timeout_s": "60",
        },
    )
    assert response.status_code == 302
    production = environment("production")
    assert production.position == 30
    assert (production.protected, production.required_approvals) == (True, 1)
    assert production.health == {"kind": "http", "url": "http://127.0.0.1:9/health"}
    assert production.hooks == {"restart": "true"}
    assert production.target == {"kind": "local", "root": str(shop.target("prod2"))}


def test_refused_settings_are_shown_with_what_was_typed(shop: Shop) -> None:
    web = signed_in(shop.owner)
    typed = {
        "tier": "production",
        "position": "20",
        "target_kind": "local",
        "target_root": "/srv/typed-by-hand",
        "health_kind": "command",
        "health_command": "check --typed",
        "warmup_s": "3",
        "health_passes": "0",
        "health_interval_ms": "50",
        "retention": "3",
        "hook_timeout_s": "300",
    }
    response = web.post("/services/shop/environments/production/edit/", typed)
    assert response.status_code == 400
    page = text(response)
    assert "health_passes: a whole number from 1 to 100" in page
    assert 'value="/srv/typed-by-hand"' in page and 'value="check --typed"' in page
    assert environment("production").health_passes == 2
    response = web.post(
        "/services/shop/environments/production/edit/", {**typed, "retention": "many"}
    )
    assert response.status_code == 400
    assert "Releases kept: a whole number, not 'many'" in text(response)
    assert 'value="many"' in text(response)


def test_a_health_url_the_allow_list_refuses_is_shown_on_the_form(shop: Shop) -> None:
    typed = {
        "tier": "production",
        "position": "20",
        "target_kind": "local",
        "target_root": str(shop.target("production")),
        "health_kind": "http",
        "health_url": "http://127.0.0.1:5432/",
        "warmup_s": "3",
        "health_passes": "2",
        "health_interval_ms": "50",
        "retention": "3",
        "hook_timeout_s": "300",
    }
    response = signed_in(shop.owner).post("/services/shop/environments/production/edit/", typed)
    assert response.status_code == 422
    page = markup.unescape(text(response))
    assert "http://127.0.0.1:5432/ is refused: 127.0.0.1 resolves to 127.0.0.1" in page
    assert "OBEYA_OUTBOUND_ALLOW" in page and 'value="http://127.0.0.1:5432/"' in page
    assert environment("production").health["kind"] == "command"


def test_a_developer_cannot_change_settings(shop: Shop, dev: User) -> None:
    response = signed_in(dev).post(
        "/services/shop/environments/staging/edit/",
        {"target_kind": "local", "target_root": "/tmp/elsewhere", "retention": "9"},
    )
    assert response.status_code == 403
    assert environment("staging").retention == 3


def test_a_new_environment_is_defined_from_the_tab(shop: Shop) -> None:
    web = signed_in(shop.owner)
    refused = web.post(
        "/services/shop/environments/",
        {"name": "Bad Name", "tier": "testing", "target_root": str(shop.target("qa"))},
    )
    assert refused.status_code == 400
    page = text(refused)
    assert "environment name 'Bad Name'" in page
    assert 'value="Bad Name"' in page and f'value="{shop.target("qa")}"' in page
    response = web.post(
        "/services/shop/environments/",
        {
            "name": "qa",
            "tier": "testing",
            "position": "5",
            "target_kind": "local",
            "target_root": str(shop.target("qa")),
            "health_kind": "command",
            "health_command": "true",
        },
    )
    assert response.status_code == 302
    qa = environment("qa")
    assert qa.tier == "testing" and qa.health == {"kind": "command", "command": "true"}
    page = text(web.get("/services/shop/environments/"))
    assert page.index('id="env-qa"') < page.index('id="env-staging"')
