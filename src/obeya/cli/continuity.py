"""Continuity verbs (admin, local): back up and restore Obeya's own database, and run a
service's restore drill (or Obeya's own) now."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from obeya.cli.local import prepare_database, setup_django
from obeya.cli.output import fail, print_json

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="A file whose first line is the passphrase (default: OBEYA_BACKUP_PASSPHRASE).",
    ),
]


def _passphrase(path: Path | None, *, needed: bool) -> str | None:
    """The passphrase from --passphrase-file, else OBEYA_BACKUP_PASSPHRASE (None if neither)."""
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            fail(f"cannot read the passphrase file {path}: {error}")
        if not lines or not lines[0]:
            fail(f"the passphrase file {path} is empty: its first line is the passphrase")
        return lines[0]
    from_env = os.environ.get("OBEYA_BACKUP_PASSPHRASE", "")
    if from_env:
        return from_env
    if needed:
        fail("--encrypt needs a passphrase: --passphrase-file PATH or OBEYA_BACKUP_PASSPHRASE")
    return None


def backup(
    file: Annotated[
        Path, typer.Argument(help="Where to write the backup (replaced if it exists).")
    ],
    encrypt: Annotated[
        bool,
        typer.Option("--encrypt", help="Encrypt the backup with a passphrase (AES-256-GCM)."),
    ] = False,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Back up Obeya's own database to FILE (admin verb): SQLite's online backup API, or
    pg_dump -Fc on PostgreSQL, without browser sessions. Safe while the server runs.
    Stored secrets stay encrypted with the secrets key file: back that file up apart."""
    passphrase = _passphrase(passphrase_file, needed=True) if encrypt else None
    if passphrase_file is not None and not encrypt:
        fail("--passphrase-file is for --encrypt: add --encrypt, or leave it out")
    setup_django()
    from obeya.ops import continuity_database as database

    made = database.backup(file, passphrase=passphrase)
    typer.echo(made.describe("backed up") + (", encrypted" if encrypt else ""))


def restore(
    file: Annotated[Path, typer.Argument(help="A backup written by `obeya backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a database that already holds data.")
    ] = False,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Restore Obeya's own database from FILE (admin verb); refuses a database that holds
    data unless --force. Stop the server first. An encrypted backup needs its passphrase."""
    passphrase = _passphrase(passphrase_file, needed=False)
    setup_django()
    from obeya.ops import continuity_database as database

    typer.echo(database.restore(file, force=force, passphrase=passphrase).describe("restored"))
    if database.engine() == "postgresql":
        typer.echo("If this Obeya is newer than the backup, run: obeya migrate")


def drill(
    service: Annotated[
        str | None, typer.Argument(help="The service whose restore drill to run.")
    ] = None,
    obeya_itself: Annotated[
        bool,
        typer.Option("--self", help="Rehearse Obeya's own recovery instead of a service's."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run a restore drill now (admin verb): restore into a scratch directory, verify,
    compare with the RTO. Exits 1 when the drill failed."""
    if (service is None) == (not obeya_itself):
        fail("name a SERVICE, or pass --self for Obeya's own database (not both)")
    setup_django()
    prepare_database()
    if obeya_itself:
        _drill_obeya(as_json)
        return
    from obeya.core.actors import Actor
    from obeya.ops import continuity_drills

    service = service or ""
    done = continuity_drills.run_drill(Actor(user=None, channel="cli"), service)
    shown = continuity_drills.drill_dict(done)
    if as_json:
        print_json({"service": service, **shown})
    else:
        rto = f", RTO {done.rto_s} s: {done.rto_verdict}" if done.rto_s else ""
        typer.echo(
            f"drill {done.number} of {service} {done.status.upper()} in "
            f"{done.duration_s or 0:.2f} s{rto}: {done.detail}"
        )
    if done.status != "passed":
        raise typer.Exit(1)


def _drill_obeya(as_json: bool) -> None:
    from obeya.ops import continuity_database as database

    report = database.drill_obeya()
    if as_json:
        print_json(report.as_dict())
    else:
        verdict = "PASSED" if report.passed else "FAILED"
        typer.echo(
            f"Obeya's own restore drill {verdict} in {report.duration_s:.2f} s "
            f"({report.engine}, backup {report.backup_bytes} bytes): {report.detail}"
        )
        for line in report.mismatches:
            typer.echo(f"  {line}")
    if not report.passed:
        raise typer.Exit(1)
