"""`obeya login` and `obeya events`: who you are to the server, and what it remembers."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from obeya.cli import client
from obeya.cli.output import fail, print_json, print_table


def login(
    url: Annotated[str, typer.Argument(help="The Obeya server, e.g. http://127.0.0.1:8000")],
    token: Annotated[str | None, typer.Option(help="An API token (otherwise prompted).")] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from standard input.")
    ] = False,
) -> None:
    """Save a server URL and API token for the other commands (checks it first)."""
    if not url.startswith(("http://", "https://")):
        fail(f"{url} is not a URL: use http://host:port or https://host")
    if token_stdin:
        token = sys.stdin.readline().strip()
    if not token:
        token = typer.prompt("API token (create one on the Account page)", hide_input=True)
    saved = client.Login(url.rstrip("/"), token.strip())
    me = client.request("GET", "/me", login=saved)
    path = client.save_login(saved)
    typer.echo(f"logged in to {saved.url} as {me['username']} (saved in {path})")


def events(
    service: Annotated[str, typer.Option(help="Only this service's events.")] = "",
    kind: Annotated[str, typer.Option(help="Kind prefix, e.g. token. or service.stage")] = "",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The event log (audit trail), newest first."""
    items = client.get_all("/events", {"service": service, "kind": kind}, limit=limit)
    if as_json:
        print_json(items)
        return
    print_table(
        ("at", "actor", "kind", "subject", "service"),
        [(e["at"][:19], e["actor"], e["kind"], e["subject"], e["service"]) for e in items],
    )
