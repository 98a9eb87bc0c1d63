"""The andon cord (§3.1.6): a red default branch stops the line until it is green again."""

from __future__ import annotations

from django.db import transaction

from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput
from obeya.core.roles import Permission
from obeya.pipelines.models import Andon, Run


def state(service: Service) -> Andon:
    andon, _ = Andon.objects.get_or_create(service=service)
    return andon


def andon_is_pulled(slug: str) -> bool:
    """Whether promotion to protected environments must stop for this service."""
    return Andon.objects.filter(service__slug=slug, pulled=True).exists()


def _pull(actor: Actor, service: Service, reason: str, run: Run | None) -> Andon:
    andon = Andon.objects.select_for_update().get(pk=state(service).pk)
    if andon.pulled:
        return andon
    andon.pulled, andon.reason, andon.run = True, reason, run
    andon.pulled_by, andon.pulled_at = actor.name, actor.now()
    andon.save()
    events.record(
        actor,
        "andon.pulled",
        f"service:{service.slug}",
        {"reason": reason, "run": run.number if run else None},
        service=service.slug,
    )
    return andon


def _release(actor: Actor, service: Service, reason: str, run: Run | None) -> Andon:
    andon = Andon.objects.select_for_update().get(pk=state(service).pk)
    if not andon.pulled:
        return andon
    andon.pulled, andon.reason, andon.run = False, "", None
    andon.save()
    events.record(
        actor,
        "andon.released",
        f"service:{service.slug}",
        {"reason": reason, "run": run.number if run else None},
        service=service.slug,
    )
    return andon


def pull_andon(actor: Actor, slug: str, reason: str) -> Andon:
    """Anyone signed in may stop the line, with a reason."""
    if not reason.strip():
        raise InvalidInput("say why you pull the andon cord", field="reason")
    service = catalog.get_service(slug)
    with transaction.atomic():
        if andon_is_pulled(slug):
            raise Conflict(f'the andon of "{slug}" is already pulled')
        return _pull(actor, service, reason.strip(), None)


def reset_andon(actor: Actor, slug: str, reason: str) -> Andon:
    """A devops engineer or service master restarts the line, with a reason."""
    if not reason.strip():
        raise InvalidInput("say why the line may restart", field="reason")
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.RESET_ANDON)
    with transaction.atomic():
        if not andon_is_pulled(slug):
            raise Conflict(f'the andon of "{slug}" is not pulled')
        return _release(actor, service, reason.strip(), None)


def on_run_finished(actor: Actor, run: Run, default_branch: str) -> None:
    """Red default branch pulls the cord; the next green run on it releases it."""
    if run.branch != default_branch:
        return
    if run.status == "failed":
        _pull(actor, run.service, f"run #{run.number} failed on {run.branch}", run)
    elif run.status == "succeeded":
        _release_by(actor, run, f"run #{run.number} is green on {run.branch}")


def on_integration_green(actor: Actor, run: Run, default_branch: str) -> None:
    """The build and tests of a default-branch run passed while its deploy jobs still go
    on (a production deployment may wait for approval): the line is green again, so the
    cord a red run pulled is released and that deployment is not blocked by it."""
    if run.branch == default_branch:
        _release_by(actor, run, f"run #{run.number}: build and tests green on {run.branch}")


def _release_by(actor: Actor, run: Run, reason: str) -> None:
    # Only a cord a red run pulled is released by a green one, that run itself (retried)
    # or a later one; a person's pull stays until a person resets it.
    pulled_by = state(run.service).run
    if pulled_by is not None and pulled_by.number <= run.number:
        _release(actor, run.service, reason, run)
