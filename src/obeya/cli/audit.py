"""`obeya audit verify`: walk the event log's hash chain on the server machine (admin verb)."""

from __future__ import annotations

from typing import Annotated

import typer

from obeya.cli.local import prepare_database, setup_django
from obeya.cli.output import fail, print_json
from obeya.core import chain  # pure rules: no Django at import time

audit_app = typer.Typer(help="Check the audit trail on this server (admin verb).")


@audit_app.command("verify")
def verify(
    expect: Annotated[
        list[str] | None,
        typer.Option(
            "--expect",
            help="EVENT_ID:HASH an earlier verify printed as the head; it must still be "
            "there, unchanged. Repeatable.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Walk the event log oldest first; name every changed, missing or unchained event.

    Exits 0 with a one-line summary when the chain is whole, 1 when anything is wrong.
    """
    anchors: dict[int, str] = {}
    for text in expect or []:
        try:
            event, value = chain.parse_anchor(text)
        except ValueError as error:
            fail(str(error))
        anchors[event] = value
    setup_django()
    prepare_database()
    from obeya.core import audit
    from obeya.core.actors import Actor

    report = audit.verify(Actor(user=None, channel="cli"), expect=anchors)
    if as_json:
        print_json(report.as_dict())
    else:
        for problem in report.problems:
            typer.echo(problem.message)
        if report.more_problems:
            typer.echo(f"… and {report.more_problems} more")
        typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)
