"""The embedded database runs WAL with synchronous=FULL, and serve refuses anything less."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from obeya.cli.local import check_sqlite_durability
from obeya.cli.output import CliError
from obeya.settings import database_from_url

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only")


def test_embedded_settings_ask_for_wal_and_full(tmp_path):
    options = database_from_url("", tmp_path)["OPTIONS"]
    assert "synchronous=FULL" in options["init_command"]
    assert "journal_mode=WAL" in options["init_command"]


@pytest.mark.django_db(transaction=True)
def test_serve_refuses_synchronous_normal():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=NORMAL")
    try:
        with pytest.raises(CliError, match="synchronous=FULL"):
            check_sqlite_durability()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=FULL")


def test_postgres_url_is_parsed(tmp_path):
    parsed = database_from_url(
        "postgresql://u:p%40ss@db.example:6543/obeya?sslmode=require", tmp_path
    )
    assert parsed["ENGINE"] == "django.db.backends.postgresql"
    assert (parsed["USER"], parsed["PASSWORD"], parsed["HOST"], parsed["PORT"], parsed["NAME"]) == (
        "u",
        "p@ss",
        "db.example",
        "6543",
        "obeya",
    )
    assert parsed["OPTIONS"] == {"sslmode": "require"}
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme"):
        database_from_url("mysql://x/y", tmp_path)
