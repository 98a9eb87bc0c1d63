"""Deployments over HTTP: environments, deploy, approvals (the role matrix), rollback, logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from obeya.catalog import services as catalog
from obeya.core.models import Event, User
from obeya.deploy import deployer
from obeya.deploy.models import Deployment
from tests.conftest import Api, actor
from tests.deploy.conftest import HEALTH, Shop


@pytest.fixture
def team(shop: Shop, make_user: Callable[..., User]) -> dict[str, User]:
    """The shop's people: olga (devops engineer), a developer and two gatekeepers."""
    people = {"olga": shop.owner}
    for name, role in (("dev", "developer"), ("gina", "gatekeeper"), ("greg", "gatekeeper")):
        people[name] = make_user(name)
        catalog.add_member(actor(shop.owner), "shop", name, role)
    return people


@pytest.fixture
def apis(team: dict[str, User], api_for: Callable[..., Api]) -> dict[str, Api]:
    return {name: api_for(user) for name, user in team.items()}


def _in_staging(shop: Shop, version: str = "1.0.0") -> int:
    """A run whose build passed staging; returns its number."""
    run = shop.build(version)
    done = deployer.work_once()
    assert done is not None and done.status == "succeeded", done.reason if done else None
    return run.number


def _refused(response: Any, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.body
    error = response.body["error"]
    assert set(error) == {"code", "message", "field"}
    if field is not None:
        assert error["field"] == field, error
    return str(error["message"])


# ---- environments ------------------------------------------------------------------------


def test_environments_are_listed_created_and_edited(shop: Shop, apis: dict[str, Api]) -> None:
    olga = apis["olga"]
    listed = olga.get("/services/shop/environments").body
    assert listed["count"] == 2
    assert [e["name"] for e in listed["items"]] == ["staging", "production"]
    assert listed["items"][1]["protected"] and listed["items"][1]["required_approvals"] == 1

    made = olga.post(
        "/services/shop/environments",
        {
            "name": "qa",
            "tier": "testing",
            "position": 5,
            "target": {"kind": "local", "root": str(shop.target("qa"))},
            "health": HEALTH,
            "hooks": {"restart": "true"},
        },
    )
    assert made.status_code == 201, made.body
    assert made.body["name"] == "qa" and made.body["service"] == "shop"
    assert made.body["retention"] == 5 and made.body["hooks"] == {"restart": "true"}
    assert made.body["running"] is None and made.body["health_state"] == "unknown"
    assert made.body["next_environment"] == "staging"
    names = [e["name"] for e in olga.get("/services/shop/environments").body["items"]]
    assert names == ["qa", "staging", "production"]

    edited = olga.patch("/services/shop/environments/qa", {"retention": 2, "warmup_s": 9})
    assert edited.status_code == 200, edited.body
    assert (edited.body["retention"], edited.body["warmup_s"]) == (2, 9)
    assert edited.body["tier"] == "testing"  # fields not sent stay as they were
    changed = Event.objects.filter(kind="environment.changed").latest("id")
    assert changed.data["changes"]["retention"] == {"from": 5, "to": 2}


def test_bad_environment_settings_name_the_field(shop: Shop, apis: dict[str, Api]) -> None:
    olga = apis["olga"]
    path = "/services/shop/environments"
    target = {"kind": "local", "root": str(shop.target("x"))}
    twice = olga.post(path, {"name": "staging", "target": target})
    assert "already has" in _refused(twice, 409, "name")
    assert "target" in _refused(olga.post(path, {"name": "no-target"}), 400, "target")
    _refused(olga.post(path, {"name": "Bad Name!"}), 400, "name")
    _refused(olga.post(path, {"name": "x", "colour": "red"}), 400, "colour")
    _refused(olga.patch(f"{path}/staging", {"colour": "red"}), 400, "colour")
    gina = apis["gina"]  # the gatekeeper: protection is hers to change (test_gates.py)
    message = _refused(
        gina.patch(f"{path}/staging", {"protected": True, "required_approvals": 0}),
        400,
        "required_approvals",
    )
    assert "at least 1 approval" in message
    _refused(olga.patch(f"{path}/staging", {"tier": "moon"}), 400, "tier")
    _refused(gina.patch(f"{path}/staging", {"approval_role": "boss"}), 400, "approval_role")
    _refused(olga.patch(f"{path}/staging", {"target": {"kind": "ftp"}}), 400, "target")
    _refused(
        olga.patch(f"{path}/staging", {"target": {"kind": "local", "root": "rel/dir"}}),
        400,
        "target",
    )
    _refused(olga.patch(f"{path}/staging", {"health": {"kind": "http", "url": "x"}}), 400, "health")
    _refused(olga.patch(f"{path}/staging", {"retention": 0}), 400, "retention")
    assert "leave it out" in _refused(
        olga.patch(f"{path}/staging", {"target": None}), 400, "target"
    )
    _refused(olga.post(path, {"name": "qa", "retention": None}), 400, "retention")
    _refused(olga.patch(f"{path}/staging", {"hooks": {"later": "true"}}), 400, "hooks")
    _refused(olga.get(f"{path}/moon"), 404, "environment")
    _refused(olga.get("/services/ghost/environments"), 404)
    # a developer may not configure environments
    assert "devops_engineer" in _refused(
        apis["dev"].patch(f"{path}/staging", {"retention": 2}), 403
    )


def test_environment_view_shows_what_runs_there_and_what_is_next(
    shop: Shop, apis: dict[str, Api]
) -> None:
    olga = apis["olga"]
    number = _in_staging(shop)
    staging = olga.get("/services/shop/environments/staging").body
    running = staging["running"]
    assert running["version"] == "1.0.0" and running["run"] == number
    assert running["deployed_by"] == "olga" and running["approved_by"] == []
    assert len(running["artifact_sha256"]) == 64 and running["sha"]
    assert running["since"] is not None
    assert staging["current_release"] == running["release_id"]
    assert staging["health_state"] == "healthy"
    assert staging["drift"]["found"] is False
    assert staging["next_environment"] == "production"
    assert staging["not_yet_in_next"][0]["sha"] == running["sha"]
    assert [(r["release_id"], r["current"]) for r in staging["kept_releases"]] == [
        (running["release_id"], True)
    ]
    # someone edits the release by hand: drift shows
    (shop.target("staging") / "current" / "VERSION").write_text("hacked\n")
    drifted = olga.get("/services/shop/environments/staging").body["drift"]
    assert drifted["found"] and drifted["changed"] == ["VERSION"]

    overview = olga.get("/services/shop/environments-overview").body
    assert [e["name"] for e in overview] == ["staging", "production"]
    assert overview[0]["running"]["version"] == "1.0.0"
    assert overview[1]["running"] is None and overview[1]["next_environment"] == ""


# ---- the role matrix ---------------------------------------------------------------------


def test_developer_may_deploy_to_staging_but_not_to_protected_production(
    shop: Shop, apis: dict[str, Api]
) -> None:
    number = _in_staging(shop)
    dev = apis["dev"]
    message = _refused(
        dev.post("/services/shop/environments/production/deploy", {"run": number}), 403
    )
    assert "deploy.run_protected" in message
    assert not Deployment.objects.filter(environment__name="production").exists()
    again = dev.post("/services/shop/environments/staging/deploy", {"run": number})
    assert again.status_code == 201, again.body
    assert again.body["status"] == "queued" and again.body["requested_by"] == "dev"


def test_approvals_four_eyes_and_the_gatekeeper(
    shop: Shop, apis: dict[str, Api], team: dict[str, User]
) -> None:
    number = _in_staging(shop)
    catalog.add_member(actor(shop.owner), "shop", "olga", "gatekeeper")
    asked = apis["olga"].post("/services/shop/environments/production/deploy", {"run": number})
    assert asked.status_code == 201, asked.body
    deployment = asked.body
    assert deployment["status"] == "waiting_approval"
    assert (deployment["environment"], deployment["kind"], deployment["run"]) == (
        "production",
        "deploy",
        number,
    )
    assert deployment["required_approvals"] == 1 and deployment["approvals"] == []
    path = f"/deployments/{deployment['id']}"

    assert "four eyes" in _refused(apis["olga"].post(f"{path}/approve", {"comment": "mine"}), 403)
    assert "gatekeeper" in _refused(apis["dev"].post(f"{path}/approve", {"comment": "ok"}), 403)
    _refused(apis["gina"].post(f"{path}/approve", {"comment": "  "}), 400, "comment")
    _refused(apis["gina"].post(f"{path}/approve", {}), 400, "comment")

    approved = apis["gina"].post(f"{path}/approve", {"comment": "change ticket 42 is fine"})
    assert approved.status_code == 200, approved.body
    assert approved.body["status"] == "queued"
    assert [(a["user"], a["decision"]) for a in approved.body["approvals"]] == [("gina", "approve")]
    assert "not waiting" in _refused(
        apis["greg"].post(f"{path}/approve", {"comment": "me too"}), 409
    )

    done = deployer.work_once()
    assert done is not None and done.pk == deployment["id"] and done.status == "succeeded"
    production = apis["dev"].get("/services/shop/environments/production").body
    assert production["running"]["approved_by"] == ["gina"]
    assert production["running"]["deployed_by"] == "olga"


def test_two_required_approvals_need_two_different_gatekeepers(
    shop: Shop, apis: dict[str, Api]
) -> None:
    number = _in_staging(shop)
    olga = apis["olga"]
    # a gatekeeper sets the rule (a devops engineer may not: test_gates.py)
    raised = apis["gina"].patch("/services/shop/environments/production", {"required_approvals": 2})
    assert raised.status_code == 200, raised.body
    asked = olga.post("/services/shop/environments/production/deploy", {"run": number}).body
    path = f"/deployments/{asked['id']}"
    first = apis["gina"].post(f"{path}/approve", {"comment": "looks right"})
    assert first.body["status"] == "waiting_approval"
    assert "already decided" in _refused(
        apis["gina"].post(f"{path}/approve", {"comment": "again"}), 409
    )
    second = apis["greg"].post(f"{path}/approve", {"comment": "agreed"})
    assert second.body["status"] == "queued"
    assert [a["user"] for a in second.body["approvals"]] == ["gina", "greg"]


def test_a_rejection_ends_the_deployment(shop: Shop, apis: dict[str, Api]) -> None:
    number = _in_staging(shop)
    asked = apis["olga"].post("/services/shop/environments/production/deploy", {"run": number})
    path = f"/deployments/{asked.body['id']}"
    rejected = apis["greg"].post(f"{path}/reject", {"comment": "not during the sale"})
    assert rejected.status_code == 200, rejected.body
    assert rejected.body["status"] == "rejected"
    assert "not during the sale" in rejected.body["reason"]
    assert rejected.body["finished_at"] is not None
    _refused(apis["gina"].post(f"{path}/approve", {"comment": "too late"}), 409)


def test_cancel_a_waiting_deployment(shop: Shop, apis: dict[str, Api]) -> None:
    number = _in_staging(shop)
    asked = apis["olga"].post("/services/shop/environments/production/deploy", {"run": number})
    path = f"/deployments/{asked.body['id']}"
    canceled = apis["olga"].post(f"{path}/cancel")
    assert canceled.status_code == 200 and canceled.body["status"] == "canceled"
    assert "only a waiting one" in _refused(apis["olga"].post(f"{path}/cancel"), 409)
    _refused(apis["olga"].post("/deployments/999999/cancel"), 404, "deployment")


def test_a_read_only_token_changes_nothing(
    shop: Shop, team: dict[str, User], api_for: Callable[..., Api]
) -> None:
    number = _in_staging(shop)
    waiting = (
        api_for(team["olga"])
        .post("/services/shop/environments/production/deploy", {"run": number})
        .body["id"]
    )
    readers = [api_for(team[user], "read") for user in ("olga", "gina")]
    before = (Deployment.objects.count(), Event.objects.count())
    for reader in readers:
        for method, path, body in (
            ("POST", "/services/shop/environments", {"name": "qa"}),
            ("PATCH", "/services/shop/environments/staging", {"retention": 2}),
            ("POST", "/services/shop/environments/staging/deploy", {"run": number}),
            ("POST", "/services/shop/environments/staging/rollback", {}),
            ("POST", f"/deployments/{waiting}/approve", {"comment": "ok"}),
            ("POST", f"/deployments/{waiting}/reject", {"comment": "no"}),
            ("POST", f"/deployments/{waiting}/cancel", {}),
        ):
            response = reader.call(method, path, body)
            assert "read scope" in _refused(response, 403), (method, path)
        assert reader.get(f"/deployments/{waiting}").status_code == 200
    assert (Deployment.objects.count(), Event.objects.count()) == before


# ---- deploy, rollback, reading -----------------------------------------------------------


def test_bad_deploy_requests(shop: Shop, apis: dict[str, Api]) -> None:
    olga = apis["olga"]
    nothing = olga.post("/services/shop/environments/staging/deploy", {})
    assert "run the pipeline first" in _refused(nothing, 404, "run")
    _refused(olga.post("/services/shop/environments/staging/deploy", {"run": 99}), 404, "run")
    _refused(olga.post("/services/shop/environments/staging/deploy", {"run": "x"}), 400, "run")
    _refused(olga.post("/services/shop/environments/moon/deploy", {}), 404, "environment")
    shop.build("1.0.0")  # queued for staging, not deployed yet
    skipped = olga.post("/services/shop/environments/production/deploy", {})
    assert "deploy it to staging first" in _refused(skipped, 409)
    _refused(olga.get("/deployments/999999"), 404, "deployment")
    _refused(olga.get("/services/shop/deployments?status=sideways"), 400, "status")
    _refused(olga.get("/services/shop/deployments?environment=moon"), 404, "environment")


def test_deploy_follow_the_log_and_list(shop: Shop, apis: dict[str, Api]) -> None:
    olga = apis["olga"]
    number = _in_staging(shop)
    asked = olga.post("/services/shop/environments/staging/deploy", {"run": number})
    assert asked.status_code == 201, asked.body
    deployment = asked.body["id"]
    assert olga.get(f"/deployments/{deployment}/log").body["lines"] == []
    done = deployer.work_once()
    assert done is not None and done.pk == deployment
    log = olga.get(f"/deployments/{deployment}/log").body
    assert log["status"] == "succeeded" and log["deployment"] == deployment
    steps = [line["step"] for line in log["lines"]]
    assert steps[0] == "prepare" and "health" in steps and "done" in steps
    middle = log["lines"][2]["id"]
    rest = olga.get(f"/deployments/{deployment}/log?after={middle}").body
    assert [x["id"] for x in rest["lines"]] == [x["id"] for x in log["lines"][3:]]
    assert olga.get(f"/deployments/{deployment}/log?after={log['after']}").body["lines"] == []

    shown = olga.get(f"/deployments/{deployment}").body
    assert shown["status"] == "succeeded" and shown["duration_s"] is not None
    assert shown["release_id"] and shown["previous_release_id"]

    listed = olga.get("/services/shop/deployments?limit=1").body
    assert listed["count"] == 2 and [d["id"] for d in listed["items"]] == [deployment]
    staging = olga.get("/services/shop/deployments?environment=staging&status=succeeded").body
    assert staging["count"] == 2
    assert olga.get("/services/shop/deployments?environment=production").body["count"] == 0


def test_rollback_to_a_kept_release(shop: Shop, apis: dict[str, Api]) -> None:
    olga = apis["olga"]
    _in_staging(shop, "1.0.0")
    first = olga.get("/services/shop/environments/staging").body["current_release"]
    shop.commit("second")
    _in_staging(shop, "2.0.0")
    unknown = olga.post("/services/shop/environments/staging/rollback", {"to": "nope"})
    assert "is not kept" in _refused(unknown, 404, "to")
    back = olga.post("/services/shop/environments/staging/rollback", {})
    assert back.status_code == 201, back.body
    assert back.body["kind"] == "rollback" and back.body["release_id"] == first
    done = deployer.work_once()
    assert done is not None and done.status == "succeeded", done.reason
    staging = olga.get("/services/shop/environments/staging").body
    assert staging["current_release"] == first
    assert staging["running"]["version"] == "1.0.0" and staging["running"]["kind"] == "rollback"
    again = olga.post("/services/shop/environments/staging/rollback", {"to": first})
    assert "already current" in _refused(again, 409)


def test_the_default_rollback_skips_a_release_that_failed_its_warm_up(
    shop: Shop, apis: dict[str, Api]
) -> None:
    olga = apis["olga"]
    _in_staging(shop, "1.0.0")
    good = olga.get("/services/shop/environments/staging").body["current_release"]
    shop.commit("broken")
    shop.build("2.0.0", status="broken")
    failed = deployer.work_once()
    assert failed is not None and failed.status == "rolled_back"
    shop.commit("fixed")
    _in_staging(shop, "3.0.0")
    kept = [
        r["release_id"]
        for r in olga.get("/services/shop/environments/staging").body["kept_releases"]
    ]
    assert failed.release_id in kept
    back = olga.post("/services/shop/environments/staging/rollback", {})
    assert back.status_code == 201, back.body
    assert back.body["release_id"] == good


def test_a_rollback_of_protected_production_needs_approval(
    shop: Shop, apis: dict[str, Api]
) -> None:
    dev = apis["dev"]
    _refused(dev.post("/services/shop/environments/production/rollback", {}), 403)
    nothing = apis["olga"].post("/services/shop/environments/production/rollback", {})
    assert "nothing to roll back" in _refused(nothing, 409)
