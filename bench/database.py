"""A fresh embedded database in a temporary data dir for one benchmark."""

from __future__ import annotations

from django.core.management import call_command
from django.db import connection


def migrated() -> str:
    """Migrate the configured database (make bench points it at a temp dir); return vendor."""
    call_command("migrate", interactive=False, verbosity=0)
    return connection.vendor
