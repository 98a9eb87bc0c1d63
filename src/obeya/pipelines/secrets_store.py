"""Per-service secrets: written, never read back; jobs get them in their environment.

Values are sealed (encrypted under the key file, ``obeya.core.crypto``) before they reach
the database. A secret may be **protected** (only runs of protected refs receive it) and
**scoped to an environment** (only jobs naming that environment receive it); the choice
itself is ``logic.secrets_for_job``. Which refs are protected is part of the pipeline
settings (``runs.set_pipeline``): the default branch always, plus glob patterns.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.db import transaction

from obeya.catalog import services as catalog
from obeya.core import crypto, events, rows
from obeya.core.actors import Actor
from obeya.core.errors import InvalidInput, NotFound
from obeya.core.roles import Permission
from obeya.pipelines.logic import StoredSecret
from obeya.pipelines.models import Secret
from obeya.pipelines.spec_values import NAME

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MIN_VALUE = 4
MAX_VALUE = 64 * 1024

# service id -> names of its protected environments. The deploy app, which owns
# environments, fills this in its AppConfig.ready() (pipelines knows no deploy app).
PROTECTED_ENVIRONMENTS: list[Callable[[int], set[str]]] = []


def protected_environments(service_id: int) -> frozenset[str]:
    found: set[str] = set()
    for lookup in PROTECTED_ENVIRONMENTS:
        found |= lookup(service_id)
    return frozenset(found)


def secret_names(slug: str) -> list[dict[str, object]]:
    service = catalog.get_service(slug)
    return [
        {"name": name, "environment": environment, "protected": protected, "updated_at": at}
        for name, environment, protected, at in Secret.objects.filter(service=service).values_list(
            "name", "environment", "protected", "updated_at"
        )
    ]


def _check_environment(environment: str) -> str:
    environment = (environment or "").strip()
    if environment and not NAME.fullmatch(environment):
        raise InvalidInput(
            f"environment {environment!r} is not an environment name (a letter or digit, "
            "then letters, digits, _ . -; at most 63 characters)",
            field="environment",
        )
    return environment


def set_secret(
    actor: Actor,
    slug: str,
    name: str,
    value: str,
    *,
    protected: bool = False,
    environment: str = "",
) -> None:
    """Set the secret ``name`` of the scope ``environment`` ("" = every job)."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.MANAGE_SECRETS)
    if not _NAME.match(name):
        raise InvalidInput(
            f"secret name {name!r} must look like an environment variable "
            "(letters, digits, _; not starting with a digit)",
            field="name",
        )
    environment = _check_environment(environment)
    if not MIN_VALUE <= len(value) <= MAX_VALUE:
        raise InvalidInput(
            f"a secret value needs {MIN_VALUE} to {MAX_VALUE} characters (shorter values "
            "cannot be masked in logs: they appear in ordinary output)",
            field="value",
        )
    if "\x00" in value:
        raise InvalidInput("a secret value cannot hold a NUL character", field="value")
    sealed = crypto.seal(value)
    with transaction.atomic():
        _, created = Secret.objects.update_or_create(
            service=service,
            name=name,
            environment=environment,
            defaults={"value": sealed, "protected": protected, "updated_at": actor.now()},
        )
        # The value itself never reaches the event log (RELIABILITY C9).
        events.record(
            actor,
            "secret.set",
            f"secret:{slug}/{name}" + (f"@{environment}" if environment else ""),
            {
                "name": name,
                "created": created,
                "protected": protected,
                "environment": environment,
            },
            service=slug,
        )


def delete_secret(actor: Actor, slug: str, name: str, environment: str = "") -> None:
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.MANAGE_SECRETS)
    environment = _check_environment(environment)
    with transaction.atomic():
        deleted, _ = Secret.objects.filter(
            service=service, name=name, environment=environment
        ).delete()
        if not deleted:
            scope = f" for the environment {environment}" if environment else ""
            raise NotFound(f'no secret "{name}"{scope} on "{slug}"', field="name")
        events.record(
            actor,
            "secret.deleted",
            f"secret:{slug}/{name}" + (f"@{environment}" if environment else ""),
            {"name": name, "environment": environment},
            service=slug,
        )


def stored_secrets(service_id: int) -> list[StoredSecret]:
    """Every secret of a service, decrypted, in one plain statement (the claim's hot path)."""
    table = rows.quote(Secret._meta.db_table)
    query = (
        f"SELECT name, value, environment, protected FROM {table} "  # noqa: S608 (the model's table)
        "WHERE service_id = %s ORDER BY name, environment"
    )
    return [
        StoredSecret(str(name), crypto.unseal(str(value)), str(environment), bool(protected))
        for name, value, environment, protected in rows.fetch(query, [service_id])
    ]
