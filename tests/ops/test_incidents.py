"""Incidents: opened by hand, moved forward only, timed, noted, linked to deployments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from obeya.catalog import services as catalog
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.errors import Conflict, InvalidInput, PermissionDenied
from obeya.core.models import Event
from obeya.ops import services as ops
from tests.conftest import actor


@pytest.fixture
def team(make_user):
    owner = make_user("olga")
    catalog.create_service(actor(owner), "shop", "Shop")
    for name, role in (("otto", "operator"), ("dev", "developer")):
        make_user(name)
        catalog.add_member(actor(owner), "shop", name, role)
    return owner


def _as(user, clock):
    return Actor(user=user, channel="web", clock=clock)


def test_an_incident_moves_forward_and_its_times_are_measured(team, django_user_model):
    otto = django_user_model.objects.get(username="otto")
    clock = ManualClock(timezone.now())
    incident = ops.open_incident(_as(otto, clock), "shop", "Checkout returns 500", "sev2")
    assert (incident.number, incident.status, incident.key) == (1, "open", "INC-1")
    clock.advance(timedelta(minutes=4))
    ops.move_incident(_as(otto, clock), "shop", 1, "acknowledged", "looking")
    clock.advance(timedelta(minutes=10))
    ops.move_incident(_as(otto, clock), "shop", 1, "mitigated", "rolled back")
    clock.advance(timedelta(hours=1))
    done = ops.move_incident(_as(otto, clock), "shop", 1, "resolved")
    times = ops.timings_of(done)
    assert times.time_to_acknowledge_s == 240
    assert times.time_to_restore_s == 840
    with pytest.raises(Conflict, match="only move forward"):
        ops.move_incident(_as(otto, clock), "shop", 1, "acknowledged")
    entries = ops.timeline(done)
    assert [entry.kind for entry in entries] == [
        "incident.opened",
        "incident.acknowledged",
        "incident.mitigated",
        "incident.resolved",
    ]
    assert entries[2].what == "mitigated: rolled back"  # the note, once


def test_resolving_at_once_fills_in_the_skipped_steps(team, django_user_model):
    otto = django_user_model.objects.get(username="otto")
    clock = ManualClock(timezone.now())
    ops.open_incident(_as(otto, clock), "shop", "Slow pages")
    clock.advance(timedelta(minutes=30))
    done = ops.move_incident(_as(otto, clock), "shop", 1, "resolved")
    assert done.acknowledged_at == done.mitigated_at == done.resolved_at
    assert ops.timings_of(done).time_to_restore_s == 1800


def test_anyone_on_the_team_opens_but_only_operations_roles_move_it(team, django_user_model):
    dev = django_user_model.objects.get(username="dev")
    ops.open_incident(actor(dev), "shop", "Login loops")
    with pytest.raises(PermissionDenied):
        ops.move_incident(actor(dev), "shop", 1, "acknowledged")
    ops.add_note(actor(dev), "shop", 1, "Seen again at 10:02")


@pytest.mark.parametrize(
    ("title", "severity", "field"), [("  ", "sev2", "title"), ("Down", "sev9", "severity")]
)
def test_bad_input_is_refused_and_nothing_is_saved(team, title, severity, field):
    with pytest.raises(InvalidInput) as refused:
        ops.open_incident(actor(team), "shop", title, severity)
    assert refused.value.field == field
    assert not ops.list_incidents("shop").exists()
    assert not Event.objects.filter(kind="incident.opened").exists()
