"""Per-service secrets: written, never read back; jobs get them in their environment."""

from __future__ import annotations

import re

from django.db import transaction

from obeya.catalog import services as catalog
from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.errors import InvalidInput, NotFound
from obeya.core.roles import Permission
from obeya.pipelines.models import Secret

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MIN_VALUE = 4
MAX_VALUE = 64 * 1024


def secret_names(slug: str) -> list[dict[str, object]]:
    service = catalog.get_service(slug)
    return [
        {"name": name, "updated_at": at}
        for name, at in Secret.objects.filter(service=service).values_list("name", "updated_at")
    ]


def set_secret(actor: Actor, slug: str, name: str, value: str) -> None:
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.MANAGE_SECRETS)
    if not _NAME.match(name):
        raise InvalidInput(
            f"secret name {name!r} must look like an environment variable "
            "(letters, digits, _; not starting with a digit)",
            field="name",
        )
    if not MIN_VALUE <= len(value) <= MAX_VALUE:
        raise InvalidInput(
            f"a secret value needs {MIN_VALUE} to {MAX_VALUE} characters (shorter values "
            "cannot be masked in logs: they appear in ordinary output)",
            field="value",
        )
    with transaction.atomic():
        _, created = Secret.objects.update_or_create(
            service=service, name=name, defaults={"value": value, "updated_at": actor.now()}
        )
        # The value itself never reaches the event log (RELIABILITY C9).
        events.record(
            actor,
            "secret.set",
            f"secret:{slug}/{name}",
            {"name": name, "created": created},
            service=slug,
        )


def delete_secret(actor: Actor, slug: str, name: str) -> None:
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.MANAGE_SECRETS)
    with transaction.atomic():
        deleted, _ = Secret.objects.filter(service=service, name=name).delete()
        if not deleted:
            raise NotFound(f'no secret "{name}" on "{slug}"', field="name")
        events.record(
            actor, "secret.deleted", f"secret:{slug}/{name}", {"name": name}, service=slug
        )
