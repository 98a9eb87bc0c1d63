"""Continuity verbs (admin, local): back up and restore Obeya's own database, and run a
service's restore drill (or Obeya's own) now."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obeya.cli.local import prepare_database, setup_django
from obeya.cli.output import fail, print_json


def backup(
    file: Annotated[
        Path, typer.Argument(help="Where to write the backup (replaced if it exists).")
    ],
) -> None:
    """Back up Obeya's own database to FILE (admin verb): SQLite's online backup API, or
    pg_dump -Fc on PostgreSQL. Safe while the server runs."""
    setup_django()
    from obeya.ops import continuity_database as database

    typer.echo(database.backup(file).describe("backed up"))


def restore(
    file: Annotated[Path, typer.Argument(help="A backup written by `obeya backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a database that already holds data.")
    ] = False,
) -> None:
    """Restore Obeya's own database from FILE (admin verb); refuses a database that holds
    data unless --force. Stop the server first."""
    setup_django()
    from obeya.ops import continuity_database as database

    typer.echo(database.restore(file, force=force).describe("restored"))
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
