"""Incidents that other capabilities' events open: a failed deployment (its health gate
rolled it back or failed it) and a pulled andon cord.

The reactor reads the event log rather than being called by the deployer, so a crash
between the deployment's commit and the incident cannot lose the incident: each tick
looks again at recent events of these kinds, and an incident remembers the event that
opened it (unique), so each event opens at most one incident.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.db import IntegrityError, close_old_connections, transaction

from obeya.catalog import services as catalog
from obeya.core.actors import Actor, system_actor
from obeya.core.errors import NotFound
from obeya.core.models import Event
from obeya.ops import services
from obeya.ops.models import Incident

log = logging.getLogger("obeya.ops")
KINDS = ("deployment.failed", "andon.pulled")
LOOKBACK = timedelta(hours=24)
TICK_S = 1.0
_wakeup = threading.Event()


def react(*, clock: Actor | None = None) -> int:
    """Open the incidents recent events call for; the number opened."""
    actor = clock or system_actor()
    since = actor.now() - LOOKBACK
    handled = set(
        Incident.objects.filter(
            source_event__isnull=False, opened_at__gte=since - LOOKBACK
        ).values_list("source_event", flat=True)
    )
    opened = 0
    for event in Event.objects.filter(kind__in=KINDS, at__gte=since).order_by("id"):
        if event.pk in handled or not event.service:
            continue
        try:
            with transaction.atomic():
                _open_for(actor, event)
            opened += 1
        except IntegrityError:
            continue  # another server opened it first
        except NotFound:
            continue  # the service or deployment is gone
    return opened


def _open_for(actor: Actor, event: Event) -> None:
    """Open the incident ``event`` calls for, if any (inside a transaction)."""
    service = catalog.get_service(event.service)
    data = event.data
    if event.kind == "deployment.failed":
        if not (data.get("rolled_back") or data.get("switched")):
            return  # refused before the switch: users never saw it, no incident
        tier = str(data.get("tier") or "")
        what = "rolled back" if data.get("rolled_back") else "failed"
        incident = services._open(
            actor,
            service,
            f"Deployment to {data.get('environment')} {what}: {str(data.get('reason'))[:120]}",
            "sev2" if tier == "production" else "sev4",
            source="deployment",
            source_event=event.pk,
        )
        deployment = data.get("deployment")
        if isinstance(deployment, int):
            services._link(actor, incident, deployment, automatic=True)
    else:
        services._open(
            actor,
            service,
            f"Andon pulled: {str(data.get('reason') or '')[:150]}",
            "sev3",
            source="andon",
            source_event=event.pk,
        )


def _loop(stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            close_old_connections()
            react()
        except Exception:
            log.exception("incident reactor tick failed")
        finally:
            close_old_connections()
        _wakeup.wait(TICK_S)
        _wakeup.clear()


def start() -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(stop,), name="incidents", daemon=True)
    thread.start()
    return stop, thread
