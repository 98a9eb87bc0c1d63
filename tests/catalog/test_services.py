"""Catalog rules: slugs, lifecycle transitions, retirement hook, team roles, permissions."""

from __future__ import annotations

import pytest

from obeya.catalog import services as catalog
from obeya.catalog.logic import TRANSITIONS, Stage, transition_problem
from obeya.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from obeya.core.models import Event
from tests.conftest import actor


@pytest.fixture
def svc(alice):
    return catalog.create_service(actor(alice), "payments", "Payments")


@pytest.mark.parametrize(
    "slug",
    ["", "a", "Payments", "9lives", "pay_ments", "pay--ments", "pay-", "x" * 51, "new", "api"],
)
def test_malformed_or_reserved_slugs_are_refused(alice, slug):
    with pytest.raises(InvalidInput) as refused:
        catalog.create_service(actor(alice), slug, "Anything")
    assert refused.value.field == "slug"
    assert not Event.objects.filter(kind__startswith="service.").exists()


def test_duplicate_slug_conflicts_and_nothing_half_written(alice, svc):
    before = Event.objects.count()
    with pytest.raises(Conflict, match="already exists"):
        catalog.create_service(actor(alice), "payments", "Again")
    assert Event.objects.count() == before


def test_creator_becomes_service_master(alice, svc):
    assert catalog.roles_of(alice, svc) == {"service_master"}


def test_unknown_stage_is_invalid_input(alice, svc):
    with pytest.raises(InvalidInput, match="unknown stage"):
        catalog.move_stage(actor(alice), "payments", "flying")


def test_illegal_transition_names_the_allowed_ones(alice, svc):
    with pytest.raises(Conflict, match='from "strategy" go to marketing'):
        catalog.move_stage(actor(alice), "payments", "operation")
    svc.refresh_from_db()
    assert svc.stage == "strategy"
    assert not Event.objects.filter(kind="service.stage_changed").exists()


def test_walk_the_whole_lifecycle_then_retirement_needs_an_end_of_life_story(alice, svc):
    for stage in (
        "marketing",
        "planning",
        "requirements",
        "development",
        "deployment",
        "operation",
    ):
        catalog.move_stage(actor(alice), "payments", stage, reason="on we go")
    with pytest.raises(Conflict, match="end-of-life story"):
        catalog.move_stage(actor(alice), "payments", "retired")
    moves = Event.objects.filter(kind="service.stage_changed").order_by("id")
    assert [e.data["to"] for e in moves][-1] == "operation"
    assert moves.last().data == {"from": "deployment", "to": "operation", "reason": "on we go"}


def test_a_registered_retirement_check_decides(alice, svc, monkeypatch):
    monkeypatch.setattr(catalog, "_retirement_checks", [])
    catalog.register_retirement_check(lambda s: None if s.slug == "payments" else "no")
    for stage in (
        "marketing",
        "planning",
        "requirements",
        "development",
        "deployment",
        "operation",
    ):
        catalog.move_stage(actor(alice), "payments", stage)
    catalog.move_stage(actor(alice), "payments", "retired")
    with pytest.raises(Conflict, match="cannot move any more"):
        catalog.move_stage(actor(alice), "payments", "operation")


def test_every_stage_but_retired_has_a_way_on():
    for stage in Stage:
        assert bool(TRANSITIONS[stage]) == (stage != Stage.RETIRED)
        assert transition_problem(stage, stage) is not None


def test_a_developer_cannot_move_the_stage_or_manage_the_team(alice, bob, svc):
    catalog.add_member(actor(alice), "payments", "bob", "developer")
    with pytest.raises(PermissionDenied, match="service_master"):
        catalog.move_stage(actor(bob), "payments", "marketing")
    with pytest.raises(PermissionDenied):
        catalog.add_member(actor(bob), "payments", "bob", "gatekeeper")
    with pytest.raises(PermissionDenied):
        catalog.update_service(actor(bob), "payments", vision="mine")


def test_process_master_edits_the_charter_and_changes_are_recorded(alice, bob, svc):
    catalog.add_member(actor(alice), "payments", "bob", "process_master")
    catalog.update_service(actor(bob), "payments", vision="Pay in one click", goals="")
    event = Event.objects.get(kind="service.charter_changed")
    assert event.data == {"changes": {"vision": {"from": "", "to": "Pay in one click"}}}
    catalog.update_service(actor(bob), "payments", vision="Pay in one click")
    assert Event.objects.filter(kind="service.charter_changed").count() == 1


def test_admin_may_do_anything(admin, alice, svc):
    catalog.move_stage(actor(admin), "payments", "marketing")


def test_unknown_role_user_and_duplicates(alice, bob, svc):
    with pytest.raises(InvalidInput, match="unknown role"):
        catalog.add_member(actor(alice), "payments", "bob", "boss")
    with pytest.raises(NotFound, match="no user"):
        catalog.add_member(actor(alice), "payments", "nobody", "developer")
    catalog.add_member(actor(alice), "payments", "bob", "developer")
    with pytest.raises(Conflict, match="already holds"):
        catalog.add_member(actor(alice), "payments", "bob", "developer")
    catalog.add_member(actor(alice), "payments", "bob", "operator")
    assert catalog.roles_of(bob, svc) == {"developer", "operator"}


def test_the_last_service_master_stays(alice, bob, svc):
    with pytest.raises(Conflict, match="last service_master"):
        catalog.remove_member(actor(alice), "payments", "alice", "service_master")
    catalog.add_member(actor(alice), "payments", "bob", "service_master")
    catalog.remove_member(actor(alice), "payments", "alice", "service_master")
    with pytest.raises(NotFound):
        catalog.remove_member(actor(bob), "payments", "alice", "service_master")


def test_missing_service_is_not_found(alice):
    with pytest.raises(NotFound, match="obeya service list"):
        catalog.get_service("ghost")
    with pytest.raises(NotFound):
        catalog.move_stage(actor(alice), "ghost", "marketing")


def test_unknown_field_and_too_long_values_are_refused(alice, svc):
    with pytest.raises(InvalidInput, match="unknown service field"):
        catalog.update_service(actor(alice), "payments", stage="operation")
    with pytest.raises(InvalidInput, match="longer than 120"):
        catalog.update_service(actor(alice), "payments", name="x" * 121)
    with pytest.raises(InvalidInput, match="needs a name"):
        catalog.update_service(actor(alice), "payments", name="  ")


def test_a_new_service_cannot_start_retired(alice):
    with pytest.raises(InvalidInput, match="start retired"):
        catalog.create_service(actor(alice), "gone", "Gone", stage="retired")


@pytest.mark.parametrize(
    "url", ["--upload-pack=touch /tmp/x", "relative/path", "ftp://x/y", "https://a b/c", "a\nb"]
)
def test_repository_urls_must_be_git_urls(alice, svc, url):
    with pytest.raises(InvalidInput, match="not a git URL"):
        catalog.update_service(actor(alice), "payments", repository_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/team/pay.git",
        "ssh://git@host/pay",
        "git@host:team/pay.git",
        "/srv/git/pay.git",
        "file:///srv/git/pay.git",
        "",
    ],
)
def test_good_repository_urls(alice, svc, url):
    catalog.update_service(actor(alice), "payments", repository_url=url)
