"""Operations over HTTP: monitors, an incident's whole life with its postmortem, SLOs,
problems, notification channels and continuity; refusals name the field, read-only tokens
change nothing, and a channel's secret never comes back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from obeya.catalog import services as catalog
from obeya.core.actors import system_actor
from obeya.core.models import Event, User
from obeya.deploy import deployer
from obeya.ops import notify
from obeya.ops import services as ops
from tests.conftest import Api, actor
from tests.deploy.conftest import Shop

SECRET = "s3cret-webhook-signing-key-0123456789"
PEOPLE = {"otto": "operator", "dev": "developer", "rita": "reliability_engineer"}


@pytest.fixture
def team(shop: Shop, make_user: Callable[..., User]) -> dict[str, User]:
    """olga (service master and devops engineer), an operator, a developer, an SRE."""
    people = {"olga": shop.owner}
    for name, role in PEOPLE.items():
        people[name] = make_user(name)
        catalog.add_member(actor(shop.owner), "shop", name, role)
    return people


@pytest.fixture
def apis(team: dict[str, User], api_for: Callable[..., Api]) -> dict[str, Api]:
    return {name: api_for(user) for name, user in team.items()}


def _refused(response: Any, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.body
    error = response.body["error"]
    assert set(error) == {"code", "message", "field"}
    if field is not None:
        assert error["field"] == field, error
    return str(error["message"])


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.body
    return response.body


def _monitor(api: Api, name: str = "health", **extra: Any) -> Any:
    body = {"name": name, "kind": "http", "url": "http://127.0.0.1:9/health", **extra}
    return _ok(api.post("/services/shop/monitors", body), 201)


# ---- incidents ---------------------------------------------------------------------------


def test_an_incident_lives_its_whole_life_over_the_api(shop: Shop, apis: dict[str, Api]) -> None:
    shop.build("1.0.0")
    deployment = deployer.work_once()
    assert deployment is not None and deployment.status == "succeeded"
    dev, otto = apis["dev"], apis["otto"]
    path = "/services/shop/incidents"

    opened = _ok(dev.post(path, {"title": "Checkout returns 500", "severity": "sev2"}), 201)
    assert (opened["number"], opened["key"], opened["status"]) == (1, "INC-1", "open")
    assert (opened["severity"], opened["commander"], opened["source"]) == ("sev2", "dev", "manual")
    assert opened["time_to_acknowledge_s"] is None and opened["postmortem"] is None
    assert "operator" in _refused(dev.post(f"{path}/1/acknowledge", {"note": "mine"}), 403)

    acked = _ok(otto.post(f"{path}/1/acknowledge", {"note": "looking at it"}))
    assert acked["status"] == "acknowledged" and acked["time_to_acknowledge_s"] >= 0
    note = _ok(dev.post(f"{path}/1/notes", {"text": "Seen again at 10:02"}), 201)
    assert (note["author"], note["text"]) == ("dev", "Seen again at 10:02")
    linked = _ok(otto.post(f"{path}/1/causes", {"deployment": deployment.pk}), 201)
    assert [(c["deployment"], c["environment"], c["automatic"]) for c in linked["causes"]] == [
        (deployment.pk, "staging", False)
    ]
    _refused(otto.post(f"{path}/1/causes", {"deployment": deployment.pk}), 409)
    _ok(otto.post(f"{path}/1/mitigate", {"note": "rolled back"}))
    _refused(otto.post(f"{path}/1/acknowledge", {}), 409)
    done = _ok(otto.post(f"{path}/1/resolve", {}))
    assert done["status"] == "resolved" and done["time_to_restore_s"] >= 0
    assert done["resolved_at"] is not None

    shown = _ok(dev.get(f"{path}/1"))
    kinds = [entry["kind"] for entry in shown["timeline"]]
    for kind in ("incident.opened", "incident.acknowledged", "incident.caused_by", "note"):
        assert kind in kinds
    assert kinds[-1] == "incident.resolved"
    assert any("Seen again" in entry["what"] for entry in shown["timeline"])
    assert _ok(dev.get("/incidents?service=shop&status=resolved"))["count"] == 1
    assert _ok(dev.get("/incidents?status=unresolved"))["count"] == 0
    assert _ok(dev.get(f"{path}?status=open"))["items"] == []

    postmortem = {
        "summary": "Checkout failed for 20 minutes after a release.",
        "impact": "One in three payments failed.",
        "factors": ["Human error", "no canary stage"],
        "went_well": "The rollback took one command.",
        "actions": ["Add a canary stage", "Alert on checkout error rate"],
    }
    blamed = dev.call("PUT", f"{path}/1/postmortem", postmortem)
    assert "names a person" in _refused(blamed, 400, "factors")
    single = {**postmortem, "factors": ["no canary stage"]}
    assert "more than one" in _refused(dev.call("PUT", f"{path}/1/postmortem", single), 400)
    factors = ["no canary stage", "the error rate had no alert"]
    written = _ok(dev.call("PUT", f"{path}/1/postmortem", {**postmortem, "factors": factors}))
    assert written["factors"] == factors and written["author"] == "dev"
    assert "opened" in written["timeline"]  # pre-filled from the incident
    keys = [action["story_key"] for action in written["actions"]]
    assert len(keys) == 2 and all(keys)
    stories = _ok(dev.get("/services/shop/stories?kind=change_request"))["items"]
    assert {s["key"] for s in stories} == set(keys)
    assert _ok(dev.get(f"{path}/1"))["postmortem"]["actions"] == written["actions"]

    unlinked = _ok(otto.delete(f"{path}/1/causes/{deployment.pk}"))
    assert unlinked["causes"] == []
    _refused(otto.delete(f"{path}/1/causes/{deployment.pk}"), 404)


def test_an_incident_opened_with_its_cause_and_refusals(shop: Shop, apis: dict[str, Api]) -> None:
    dev = apis["dev"]
    path = "/services/shop/incidents"
    assert "unknown severity" in _refused(
        dev.post(path, {"title": "Down", "severity": "sev9"}), 400, "severity"
    )
    _refused(dev.post(path, {"title": "  "}), 400, "title")
    _refused(dev.post(path, {"severity": "sev1"}), 400, "title")
    _refused(dev.post(path, {"title": "Down", "colour": "red"}), 400, "colour")
    _refused(dev.post(path, {"title": "Down", "deployment": 999999}), 404, "deployment")
    assert _ok(dev.get(path))["count"] == 0  # nothing half-made
    _refused(dev.get(f"{path}?status=sideways"), 400, "status")
    _refused(dev.get(f"{path}/7"), 404, "number")
    _refused(dev.get("/services/ghost/incidents"), 404)
    _refused(dev.post(f"{path}/7/notes", {"text": "x"}), 404, "number")
    _ok(dev.post(path, {"title": "Slow pages"}), 201)
    _refused(dev.post(f"{path}/1/notes", {"text": " "}), 400, "text")
    early = dev.call("PUT", f"{path}/1/postmortem", {"summary": "s", "impact": "i", "factors": []})
    assert "restored" in _refused(early, 409)


# ---- monitors ----------------------------------------------------------------------------


def test_monitors_are_set_up_read_changed_and_removed(shop: Shop, apis: dict[str, Api]) -> None:
    rita = apis["rita"]
    made = _monitor(rita, environment="staging", interval_s=10, failure_threshold=2)
    assert (made["name"], made["service"], made["kind"]) == ("health", "shop", "http")
    assert (made["interval_s"], made["failure_threshold"], made["timeout_s"]) == (10, 2, 5.0)
    assert made["last_ok"] is None and made["recent_results"] == []
    _ok(
        rita.post("/services/shop/monitors", {"name": "disk", "kind": "command", "command": "df"}),
        201,
    )
    listed = _ok(rita.get("/services/shop/monitors"))
    assert listed["count"] == 2 and [m["name"] for m in listed["items"]] == ["disk", "health"]

    monitor = ops.get_monitor("shop", "health")
    for ok in (True, False):
        ops.record_result(system_actor(), monitor.pk, ok, 12.5, "HTTP 200" if ok else "refused", 0)
    shown = _ok(rita.get("/services/shop/monitors/health"))
    assert [r["ok"] for r in shown["recent_results"]] == [False, True]  # newest first
    assert shown["last_ok"] is False and shown["consecutive_failures"] == 1

    changed = _ok(rita.patch("/services/shop/monitors/health", {"interval_s": 60}))
    assert changed["interval_s"] == 60 and changed["failure_threshold"] == 2
    assert Event.objects.filter(kind="monitor.changed").latest("id").data["changes"] == {
        "interval_s": {"from": 10, "to": 60}
    }
    assert _ok(rita.delete("/services/shop/monitors/disk"), 204) is None
    _refused(rita.get("/services/shop/monitors/disk"), 404, "monitor")
    assert "reliability_engineer" in _refused(
        apis["dev"].patch("/services/shop/monitors/health", {"enabled": False}), 403
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "smtp"}, "kind"),
        ({"kind": "http", "url": "ftp://x"}, "url"),
        ({"kind": "command", "command": " "}, "command"),
        ({"kind": "http", "url": "http://x/", "interval_s": 1}, "interval_s"),
        ({"kind": "http", "url": "http://x/", "timeout_s": 0}, "timeout_s"),
        ({"kind": "http", "url": "http://x/", "interval_s": "often"}, "interval_s"),
        ({"kind": "http", "url": "http://x/", "colour": "red"}, "colour"),
        ({"kind": "http", "url": "http://x/", "enabled": None}, "enabled"),
        ({"kind": "http", "url": "http://x/", "name": "Bad Name"}, "name"),
    ],
)
def test_bad_monitors_name_the_field(
    shop: Shop, apis: dict[str, Api], body: dict[str, Any], field: str
) -> None:
    response = apis["olga"].post("/services/shop/monitors", {"name": "m", **body})
    _refused(response, 400, field)
    assert _ok(apis["olga"].get("/services/shop/monitors"))["count"] == 0


def test_a_monitor_twice_and_one_that_measures_an_slo(shop: Shop, apis: dict[str, Api]) -> None:
    olga = apis["olga"]
    _monitor(olga)
    assert "already has" in _refused(
        olga.post(
            "/services/shop/monitors", {"name": "health", "kind": "command", "command": "true"}
        ),
        409,
        "name",
    )
    body = {"name": "up", "kind": "availability", "objective_percent": 99.0, "monitor": "health"}
    _ok(olga.post("/services/shop/slos", body), 201)
    assert "remove the SLO first" in _refused(olga.delete("/services/shop/monitors/health"), 409)


# ---- SLOs --------------------------------------------------------------------------------


def test_slos_with_their_budget_and_daily_series(shop: Shop, apis: dict[str, Api]) -> None:
    rita = apis["rita"]
    _monitor(rita)
    path = "/services/shop/slos"
    base = {"name": "up", "kind": "availability", "monitor": "health"}
    for objective in (100, 0, 100.5):
        refused = rita.post(path, {**base, "objective_percent": objective})
        assert "below 100" in _refused(refused, 400, "objective_percent")
    _refused(rita.post(path, {**base, "kind": "joy", "objective_percent": 99}), 400, "kind")
    slow = {**base, "kind": "latency", "objective_percent": 99}
    _refused(rita.post(path, slow), 400, "latency_threshold_ms")
    _refused(
        rita.post(path, {**base, "objective_percent": 99, "window_days": 0}), 400, "window_days"
    )
    _refused(rita.post(path, {**base, "objective_percent": 99, "monitor": "nope"}), 404, "monitor")
    assert _ok(rita.get(path)) == []

    made = _ok(rita.post(path, {**base, "objective_percent": 90, "window_days": 7}), 201)
    assert (made["name"], made["monitor"], made["window_days"]) == ("up", "health", 7)
    assert made["status"]["total"] == 0 and made["status"]["achieved_percent"] is None
    assert len(made["daily"]) == 7
    monitor = ops.get_monitor("shop", "health")
    for ok in (True,) * 9 + (False,):
        ops.record_result(system_actor(), monitor.pk, ok, 10.0, "", 0)
    shown = _ok(rita.get(f"{path}/up"))
    status = shown["status"]
    assert (status["good"], status["total"], status["achieved_percent"]) == (9, 10, 90.0)
    assert status["budget_remaining_percent"] == pytest.approx(0.0)
    assert shown["daily"][-1]["achieved_percent"] == 90.0
    assert [s["name"] for s in _ok(rita.get(path))] == ["up"]
    assert "already has" in _refused(rita.post(path, {**base, "objective_percent": 99}), 409)
    assert _ok(rita.delete(f"{path}/up"), 204) is None
    _refused(rita.get(f"{path}/up"), 404, "slo")


def test_slos_from_the_operation_stories(shop: Shop, apis: dict[str, Api]) -> None:
    olga = apis["olga"]
    _monitor(olga)
    story = {
        "kind": "operation",
        "title": "Checkout stays up",
        "details": {"availability_target": 99.5},
    }
    key = _ok(olga.post("/services/shop/stories", story), 201)["key"]
    made = _ok(olga.post("/services/shop/slos-from-stories", {"monitor": "health"}), 201)
    assert [(s["story"], s["kind"], s["objective_percent"]) for s in made] == [
        (key, "availability", 99.5)
    ]
    assert _ok(olga.post("/services/shop/slos-from-stories", {"monitor": "health"}), 201) == []


# ---- problems ----------------------------------------------------------------------------


def test_problems_group_incidents(shop: Shop, apis: dict[str, Api]) -> None:
    otto, dev = apis["otto"], apis["dev"]
    for title in ("Checkout 500", "Checkout 502"):
        _ok(dev.post("/services/shop/incidents", {"title": title}), 201)
    path = "/services/shop/problems"
    assert "operator" in _refused(dev.post(path, {"title": "x"}), 403)
    _refused(otto.post(path, {"title": " "}), 400, "title")
    _refused(otto.post(path, {"title": "Pool", "incidents": [9]}), 404, "number")
    made = _ok(otto.post(path, {"title": "Connection pool too small", "incidents": [1]}), 201)
    assert (made["key"], made["status"], made["incidents"]) == ("PRB-1", "open", [1])
    changed = _ok(
        otto.patch(
            f"{path}/1",
            {"status": "known_error", "workaround": "restart the pool", "incidents": [1, 2]},
        )
    )
    assert (changed["status"], changed["workaround"], changed["incidents"]) == (
        "known_error",
        "restart the pool",
        [1, 2],
    )
    assert changed["title"] == "Connection pool too small"
    _refused(otto.patch(f"{path}/1", {"status": "sideways"}), 400, "status")
    _refused(otto.patch(f"{path}/1", {"title": None}), 400, "title")
    _refused(otto.patch(f"{path}/1", {"change_requests": ["S-99"]}), 404)
    _refused(otto.get(f"{path}/5"), 404, "number")
    assert _ok(dev.get(path))["count"] == 1
    assert _ok(dev.get("/services/shop/incidents/2"))["problems"] == [1]


# ---- notification channels ---------------------------------------------------------------


def test_channels_never_show_their_secret(
    shop: Shop, apis: dict[str, Api], admin: User, api_for: Callable[..., Api]
) -> None:
    olga, dev = apis["olga"], apis["dev"]
    path = "/services/shop/channels"
    hook = {"name": "ops-hook", "kind": "webhook", "url": "https://hooks.example.com/x"}
    made = olga.post(path, {**hook, "secret": SECRET, "kinds": ["incident.opened"]})
    body = _ok(made, 201)
    assert body["has_secret"] is True and "secret" not in body
    assert (body["service"], body["kinds"]) == ("shop", ["incident.opened"])
    mail = {"name": "on-call", "kind": "email", "recipients": ["oncall@example.com"]}
    assert _ok(olga.post(path, mail), 201)["has_secret"] is False
    _refused(olga.post(path, {**hook, "secret": "short"}), 400, "secret")
    _refused(olga.post(path, {**hook, "kind": "pigeon"}), 400, "kind")
    _refused(olga.post(path, {**hook, "secret": SECRET, "kinds": ["story.moved"]}), 400, "kinds")
    assert "devops_engineer" in _refused(dev.post(path, {**hook, "secret": SECRET}), 403)
    assert "administrators" in _refused(olga.post("/channels", {**hook, "secret": SECRET}), 403)

    _ok(dev.post("/services/shop/incidents", {"title": "Checkout down"}), 201)
    assert notify.fan_out() == 2
    channel = body["id"]
    deliveries = _ok(dev.get(f"/channels/{channel}/deliveries"))
    assert deliveries["count"] == 1
    first = deliveries["items"][0]
    assert (first["event_kind"], first["status"], first["tries"]) == (
        "incident.opened",
        "pending",
        [],
    )

    root = api_for(admin)
    everywhere = _ok(root.post("/channels", {**hook, "name": "all", "secret": SECRET}), 201)
    assert everywhere["service"] is None
    for response in (
        dev.get(path),
        dev.get("/channels"),
        dev.get(f"/channels/{channel}/deliveries"),
        dev.get("/services/shop/events?limit=500"),
        root.get("/channels"),
    ):
        assert response.status_code == 200 and SECRET not in response.content.decode()
    assert [c["name"] for c in _ok(dev.get(path))] == ["on-call", "ops-hook"]
    assert [c["name"] for c in _ok(dev.get("/channels"))] == ["all", "on-call", "ops-hook"]
    assert _ok(olga.delete(f"/channels/{channel}"), 204) is None
    _refused(dev.get(f"/channels/{channel}/deliveries"), 404, "channel")


# ---- continuity --------------------------------------------------------------------------


def test_continuity_policy_backups_and_a_drill(
    shop: Shop, apis: dict[str, Api], tmp_path: Path
) -> None:
    rita = apis["rita"]
    path = "/services/shop/continuity"
    assert _ok(rita.get(path))["rpo_state"] == "unset"
    for body, field in (
        ({"rto_s": 0}, "rto_s"),
        ({"rpo_s": -5}, "rpo_s"),
        ({"restore_command": "cp a b"}, "verify_command"),
        ({"colour": "red"}, "colour"),
        ({"max_drill_age_days": None}, "max_drill_age_days"),
    ):
        _refused(rita.patch(path, body), 400, field)
    target = tmp_path / "shop.backup"
    policy = {
        "rpo_s": 3600,
        "rto_s": 600,
        "restore_command": 'cp "$OBEYA_BACKUP_FILE" "$OBEYA_SCRATCH_DIR/restored"',
        "verify_command": "grep -q orders restored",
    }
    status = _ok(rita.patch(path, policy))
    assert (status["rpo_s"], status["rpo_source"], status["rto_s"]) == (3600, "set directly", 600)
    assert status["rpo_state"] == "no_backup" and status["policy"]["rto_s"] == 600

    jobs = "/services/shop/backup-jobs"
    job = {"name": "hourly", "schedule": "0 * * * *"}
    _refused(rita.post(jobs, {**job, "schedule": "every hour", "command": "true"}), 400, "schedule")
    _refused(rita.post(jobs, job), 400, "command")
    writer = f"printf 'orders 1-42' > {target} && echo OBEYA_BACKUP_FILE={target}"
    made = _ok(rita.post(jobs, {**job, "command": writer}), 201)
    assert (made["name"], made["schedule"], made["enabled"]) == ("hourly", "0 * * * *", True)
    assert [j["name"] for j in _ok(rita.get(jobs))] == ["hourly"]
    assert _ok(rita.patch(f"{jobs}/hourly", {"timeout_s": 60}))["timeout_s"] == 60
    run = _ok(rita.post(f"{jobs}/hourly/run"), 201)
    assert run["ok"] is True and run["location"] == str(target) and run["size_bytes"] == 11
    assert [r["id"] for r in _ok(rita.get("/services/shop/backups"))] == [run["id"]]

    drill = _ok(rita.post("/services/shop/drills"), 201)
    assert drill["status"] == "passed" and drill["backup_run"] == run["id"], drill
    assert drill["rto_verdict"] == "within_rto" and drill["restore_exit_code"] == 0
    assert [d["number"] for d in _ok(rita.get("/services/shop/drills"))] == [1]
    now = _ok(rita.get(path))
    assert now["rpo_state"] == "met" and now["last_passed_drill"]["number"] == 1
    assert now["flagged"] is False
    assert _ok(rita.get("/continuity/flagged")) == []
    assert _ok(rita.delete(f"{jobs}/hourly"), 204) is None
    _refused(rita.get(f"{jobs}/hourly"), 404, "job")
    assert "operator" in _refused(apis["dev"].post("/services/shop/drills"), 403)


# ---- read-only tokens --------------------------------------------------------------------


def test_a_read_only_token_changes_nothing(
    shop: Shop, apis: dict[str, Api], team: dict[str, User], api_for: Callable[..., Api]
) -> None:
    olga = apis["olga"]
    _monitor(olga)
    slo = {"name": "up", "kind": "availability", "objective_percent": 99, "monitor": "health"}
    _ok(olga.post("/services/shop/slos", slo), 201)
    _ok(olga.post("/services/shop/incidents", {"title": "Down"}), 201)
    _ok(olga.post("/services/shop/problems", {"title": "Pool"}), 201)
    hook = {"name": "h", "kind": "webhook", "url": "https://x.example.com", "secret": SECRET}
    channel = _ok(olga.post("/services/shop/channels", hook), 201)["id"]
    job = {"name": "hourly", "schedule": "0 * * * *", "command": "true"}
    _ok(olga.post("/services/shop/backup-jobs", job), 201)
    reader = api_for(team["olga"], "read")
    incident = "/services/shop/incidents/1"
    before = Event.objects.count()
    for method, path, body in (
        ("POST", "/services/shop/monitors", {"name": "m", "kind": "command", "command": "true"}),
        ("PATCH", "/services/shop/monitors/health", {"interval_s": 60}),
        ("DELETE", "/services/shop/monitors/health", None),
        ("POST", "/services/shop/incidents", {"title": "Again"}),
        ("POST", f"{incident}/acknowledge", {}),
        ("POST", f"{incident}/mitigate", {}),
        ("POST", f"{incident}/resolve", {}),
        ("POST", f"{incident}/notes", {"text": "x"}),
        ("POST", f"{incident}/causes", {"deployment": 1}),
        ("DELETE", f"{incident}/causes/1", None),
        ("PUT", f"{incident}/postmortem", {"summary": "s", "impact": "i", "factors": ["a", "b"]}),
        ("POST", "/services/shop/slos", {**slo, "name": "up2"}),
        ("POST", "/services/shop/slos-from-stories", {"monitor": "health"}),
        ("DELETE", "/services/shop/slos/up", None),
        ("POST", "/services/shop/problems", {"title": "Again"}),
        ("PATCH", "/services/shop/problems/1", {"status": "resolved"}),
        ("POST", "/services/shop/channels", {**hook, "name": "h2"}),
        ("POST", "/channels", {**hook, "name": "h3"}),
        ("DELETE", f"/channels/{channel}", None),
        ("PATCH", "/services/shop/continuity", {"rto_s": 60}),
        ("POST", "/services/shop/backup-jobs", {**job, "name": "daily"}),
        ("PATCH", "/services/shop/backup-jobs/hourly", {"enabled": False}),
        ("DELETE", "/services/shop/backup-jobs/hourly", None),
        ("POST", "/services/shop/backup-jobs/hourly/run", None),
        ("POST", "/services/shop/drills", None),
    ):
        response = reader.call(method, path, body)
        assert "read scope" in _refused(response, 403), (method, path)
    assert Event.objects.count() == before
    assert _ok(reader.get(incident))["status"] == "open"
    assert _ok(reader.get("/services/shop/monitors/health"))["interval_s"] == 30
