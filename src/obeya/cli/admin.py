"""Admin verbs that run on the server machine: serve, migrate, createuser, token, config."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from obeya.cli.local import prepare_database, setup_django
from obeya.cli.output import fail, print_json, print_table

token_app = typer.Typer(help="Create or revoke API tokens on this server (admin verb).")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Processes answering HTTP (default: OBEYA_WEB_WORKERS, auto: 2 or 1 per CPU).",
            show_default=False,
        ),
    ] = None,
    no_runners: Annotated[
        bool, typer.Option("--no-runners", help="Start no embedded job runners.")
    ] = False,
    get: Annotated[
        str | None,
        typer.Option("--get", help="Answer one GET request in-process, print the body and exit."),
    ] = None,
    http_only: Annotated[bool, typer.Option("--http-only", hidden=True)] = False,
    fd: Annotated[int | None, typer.Option("--fd", hidden=True)] = None,
) -> None:
    """Serve Obeya (web UI and API) with uvicorn; migrates an embedded database first."""
    import os

    if http_only:  # a web worker started by `obeya serve` itself, on its socket
        if fd is None:
            fail("--http-only needs --fd: the listening socket inherited from obeya serve")
        setup_django()
        from obeya.cli import web_workers

        web_workers.serve_http_only(fd)
        return
    if workers is not None and workers < 1:
        fail(f"--workers must be 1 or more, not {workers}")
    if no_runners:
        os.environ["OBEYA_RUNNERS"] = "0"
    setup_django()
    prepare_database()
    if get is not None:
        raise typer.Exit(_get_once(get))
    from django.conf import settings

    from obeya.cli import web_workers

    processes = workers or settings.OBEYA_WEB_WORKERS
    try:
        sock = web_workers.listen(host, port)
    except OSError as error:
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    from obeya.deploy import deployer
    from obeya.pipelines import background

    extras = background.start(host, port, settings.OBEYA_RUNNERS)
    deployers_stop, _ = deployer.start(settings.OBEYA_DEPLOYERS)
    from obeya.ops import continuity_scheduler, notify, reactor, scheduler

    monitors_stop, _ = scheduler.start()
    incidents_stop, _ = reactor.start()
    notifier_stop, _ = notify.start()
    backups_stop, _ = continuity_scheduler.start()
    runners = settings.OBEYA_RUNNERS
    typer.echo(
        f"Obeya serving on http://{host}:{port}/ from {processes} process(es) with {runners} "
        "embedded runner(s)  (Ctrl+C to stop)"
    )
    _announce_sandbox(f"server:{host}:{port}")
    try:
        web_workers.serve(sock, processes, extras.drain)
    finally:
        for stop in (deployers_stop, monitors_stop, incidents_stop, notifier_stop, backups_stop):
            stop.set()
        extras.shutdown()


def _announce_sandbox(where: str) -> None:
    """Say what confines users' commands here; without bwrap, say loudly that none will run."""
    from obeya.core import services
    from obeya.core.actors import Actor
    from obeya.runner import sandbox

    try:
        box = sandbox.configured()
    except ValueError as error:
        fail(str(error))
    typer.echo(f"Users' commands run in: {box.describe()}")
    if not box.available:
        typer.secho(f"No job, hook, monitor or backup command will run: {box.describe()}", err=True)
    if not box.enabled:
        services.record_unsandboxed(Actor(user=None, channel="cli"), where, box.describe())


def _get_once(path: str) -> int:
    import httpx
    from django.conf import settings

    from obeya.wsgi import application

    host = next(
        (h for h in settings.ALLOWED_HOSTS if "*" not in h and not h.startswith(".")), "localhost"
    )
    with httpx.Client(
        transport=httpx.WSGITransport(app=application), base_url=f"http://{host}"
    ) as client:
        response = client.get(path if path.startswith("/") else f"/{path}")
    sys.stdout.write(response.text)
    if response.text and not response.text.endswith("\n"):
        sys.stdout.write("\n")
    return 0 if response.is_success else 1


def migrate_command() -> None:
    """Apply database migrations (needed before `obeya serve` on PostgreSQL)."""
    setup_django()
    from obeya.cli.local import migrate

    migrate()


def createuser(
    username: Annotated[str, typer.Argument(help="The new user's login name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
) -> None:
    """Add a person who can sign in (admin verb)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        fail("the password is empty: pass it on standard input with --password-stdin")
    setup_django()
    prepare_database()
    from obeya.core import services
    from obeya.core.actors import Actor

    services.create_user(
        Actor(user=None, channel="cli"), username, password, is_admin=admin, email=email
    )
    typer.echo(f"created user {username}{' (administrator)' if admin else ''}")


def setpassword(
    username: Annotated[str, typer.Argument(help="Whose password.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set a user's password (admin verb)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    setup_django()
    prepare_database()
    from obeya.core import services
    from obeya.core.actors import Actor

    services.set_password(Actor(user=None, channel="cli"), services.get_user(username), password)
    typer.echo(f"password of {username} changed")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="Whose token it is.")],
    scope: Annotated[str, typer.Option(help="read, write or admin.")] = "write",
    days: Annotated[int, typer.Option(help="Days until it expires (1-365).")] = 90,
    name: Annotated[str, typer.Option(help="A label to recognise it by.")] = "cli",
) -> None:
    """Create a token; the token itself is printed once, alone on the last line."""
    setup_django()
    prepare_database()
    from obeya.core import services
    from obeya.core.actors import Actor

    owner = services.get_user(user)
    token, plaintext = services.create_token(
        Actor(user=None, channel="cli"), owner, name=name, scope=scope, days=days
    )
    typer.echo(
        f"token id {token.pk}: {token.scope} scope for {owner.username}, "
        f"expires {token.expires_at:%Y-%m-%d}. Shown once:",
        err=True,
    )
    typer.echo(plaintext)


@token_app.command("list")
def token_list(
    user: Annotated[str, typer.Option("--user", help="Whose tokens.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a user's tokens (never the secrets)."""
    setup_django()
    prepare_database()
    from obeya.core import services
    from obeya.core.actors import Actor

    tokens = services.list_tokens(Actor(user=None, channel="cli"), services.get_user(user))
    rows = [
        {
            "id": t.pk,
            "name": t.name,
            "prefix": t.prefix,
            "scope": t.scope,
            "expires_at": t.expires_at.isoformat(),
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
        }
        for t in tokens
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        ("id", "name", "token", "scope", "expires", "revoked"),
        [
            (
                r["id"],
                r["name"],
                f"{r['prefix']}…",
                r["scope"],
                str(r["expires_at"])[:10],
                str(r["revoked_at"] or "")[:10],
            )
            for r in rows
        ],
    )


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token by id."""
    setup_django()
    prepare_database()
    from obeya.core import services
    from obeya.core.actors import Actor

    token = services.revoke_token(Actor(user=None, channel="cli"), token_id)
    typer.echo(f"revoked {token.prefix}… ({token.name}) of {token.user.username}")


def config() -> None:
    """Show every OBEYA_* setting with its value in force (secrets hidden)."""
    setup_django()
    from obeya.settings import OBEYA_SETTINGS

    rows = []
    for row in OBEYA_SETTINGS:
        value = row.value()
        shown = ("(set)" if value else "") if row.secret else value
        rows.append((row.name, shown, row.help))
    print_table(("setting", "value", "what it is for"), rows)
    from obeya.runner import sandbox

    typer.echo(f"\nUsers' commands run in: {sandbox.configured().describe()}")
