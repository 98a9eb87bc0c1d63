"""A green build on main releases the andon before its production deployment waits for
approval: otherwise the approval, which the andon blocks, could never come."""

from __future__ import annotations

from obeya.catalog import services as catalog
from obeya.deploy import deployer
from obeya.deploy import services as deploy
from obeya.deploy.models import Deployment
from obeya.pipelines import services as pipelines
from tests.conftest import actor
from tests.deploy.conftest import SPEC


def test_a_green_build_releases_the_cord_so_production_can_be_approved(shop, make_user):
    shop.repo.commit({"obeya.yml": SPEC.replace("    when: manual\n", "")}, "deploy on")
    shop.build("1.0.0", status="broken")  # staging rolls back: main is red
    assert deployer.work_once().status == "failed"
    assert pipelines.andon_is_pulled("shop")
    shop.commit("fix")
    run = shop.build("1.0.1")
    assert not pipelines.andon_is_pulled("shop")  # released once build and tests passed
    assert deployer.work_once().status == "succeeded"  # staging
    waiting = Deployment.objects.get(run=run, environment__name="production")
    assert waiting.status == "waiting_approval"
    gina = make_user("gina")
    catalog.add_member(actor(shop.owner), "shop", "gina", "gatekeeper")
    approved = deploy.decide(actor(gina), waiting.pk, "staging is healthy")
    assert approved.status == "queued"
