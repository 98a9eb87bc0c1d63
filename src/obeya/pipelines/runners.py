"""The runners a server knows: registered with a token, labelled, paused, online.

A runner proves who it is with its token on every call (`authenticate_runner`); what it
may do with a job is the lease protocol's business (obeya.pipelines.leases).
"""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction

from obeya.core import events, rows
from obeya.core.actors import Actor, system_actor
from obeya.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from obeya.core.services import hash_token
from obeya.pipelines import wakeup
from obeya.pipelines.leases import lease_seconds
from obeya.pipelines.models import Runner

RUNNER_TOKEN_PREFIX = "obeyar_"  # noqa: S105 (a label, not a secret)


def register_runner(
    actor: Actor, name: str, labels: list[str], *, embedded: bool = False
) -> tuple[Runner, str]:
    """A new runner and its token (shown once). Only administrators register runners."""
    if actor.user is not None and not actor.is_admin:
        raise PermissionDenied("only an administrator may register runners")
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a runner needs a name of 1-100 characters", field="name")
    clean = sorted({label.strip() for label in labels if label.strip()})
    token = RUNNER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            runner = Runner.objects.create(
                name=name,
                token_hash=hash_token(token),
                prefix=token[:12],
                labels=clean,
                embedded=embedded,
                created_at=actor.now(),
            )
            events.record(
                actor,
                "runner.registered",
                f"runner:{runner.pk}",
                {"name": name, "labels": clean, "embedded": embedded},
            )
    except IntegrityError:
        raise Conflict(f'a runner named "{name}" already exists', field="name") from None
    return runner, token


def rotate_embedded_runner(name: str, labels: list[str]) -> str:
    """The token for the embedded runners of this `obeya serve`, new at each start."""
    token = RUNNER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    actor = system_actor()
    with transaction.atomic():
        runner, created = Runner.objects.get_or_create(
            name=name,
            defaults={
                "token_hash": hash_token(token),
                "prefix": token[:12],
                "labels": labels,
                "embedded": True,
                "created_at": actor.now(),
            },
        )
        if not created:
            runner.token_hash, runner.prefix, runner.labels = hash_token(token), token[:12], labels
            runner.save(update_fields=["token_hash", "prefix", "labels"])
    return token


def declare_labels(runner: Runner, labels: list[str]) -> Runner:
    """A runner states its labels when it starts polling (`obeya runner --labels`)."""
    clean = sorted({label.strip() for label in labels if label.strip()})
    if clean != runner.labels:
        runner.labels = clean
        runner.save(update_fields=["labels"])
    return runner


SANDBOX_MODES = ("bwrap", "off", "unavailable")


def declare_sandbox(runner: Runner, mode: str) -> Runner:
    """A runner states what its jobs run in when it claims (`obeya.runner.sandbox`). A
    change is who may do what on that machine changing, so it is an event."""
    if mode not in SANDBOX_MODES:
        raise InvalidInput(
            f"sandbox must be one of {', '.join(SANDBOX_MODES)}, not {mode!r}", field="sandbox"
        )
    if mode == runner.sandbox:
        return runner
    with transaction.atomic():
        before = runner.sandbox
        runner.sandbox = mode
        runner.save(update_fields=["sandbox"])
        events.record(
            system_actor(),
            "runner.sandbox_changed",
            f"runner:{runner.pk}",
            {"runner": runner.name, "from": before, "to": mode},
        )
    return runner


def set_paused(actor: Actor, runner_id: int, paused: bool) -> Runner:
    """Pause a runner (it finishes what it runs, then claims nothing) or resume it.

    Only administrators do this, as they register runners."""
    if actor.user is not None and not actor.is_admin:
        raise PermissionDenied("only an administrator may pause or resume runners")
    with transaction.atomic():
        runner = Runner.objects.select_for_update().filter(pk=runner_id).first()
        if runner is None:
            raise NotFound(f"no runner with id {runner_id}", field="runner")
        if runner.paused != paused:
            runner.paused = paused
            runner.save(update_fields=["paused"])
            events.record(
                actor,
                "runner.paused" if paused else "runner.resumed",
                f"runner:{runner.pk}",
                {"name": runner.name},
            )
    if not paused:
        transaction.on_commit(wakeup.notify)  # its waiting long-polls may find work now
    return runner


def authenticate_runner(token: str) -> Runner:
    found = rows.select(Runner, "WHERE t.token_hash = %s", [hash_token(token)])
    runner = found[0] if found else None
    if runner is None:
        raise Unauthenticated(
            "unknown runner token: register the runner with `obeya runners register`"
        )
    return runner


def is_online(runner: Runner, *, clock: Actor | None = None) -> bool:
    """Seen within two leases: a runner long-polls or heartbeats far more often."""
    if runner.last_seen_at is None:
        return False
    now = (clock or system_actor()).now()
    return (now - runner.last_seen_at).total_seconds() < 2 * lease_seconds() + 30
