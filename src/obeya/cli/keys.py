"""`obeya secrets rotate-key` (admin verb, local): encrypt every stored secret under a new
key, then drop the old one. Run it on the server machine, with the server's settings."""

from __future__ import annotations

import typer

from obeya.cli.local import prepare_database, setup_django

secrets_app = typer.Typer(
    help="The key that encrypts stored secrets (admin verb, on the server machine).",
    no_args_is_help=True,
)


@secrets_app.command("rotate-key")
def rotate_key() -> None:
    """Write a new key first in the key file, encrypt every stored secret again under it,
    then drop the old key. Safe to run again after an interruption: the old key stays in
    the file until every secret opens with the new one."""
    setup_django()
    prepare_database()
    from obeya.core import sealed
    from obeya.core.actors import Actor

    typer.echo(sealed.rotate_key(Actor(user=None, channel="cli")).describe())
