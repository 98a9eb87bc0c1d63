"""The `obeya` command: admin verbs run locally, everything else is an API client."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import obeya
from obeya.cli import (
    admin,
    audit,
    backlog,
    catalog,
    continuity,
    deploy,
    environments,
    keys,
    lint,
    metrics,
    notify,
    ops,
    pipelines,
    session,
)
from obeya.cli.output import CliError, error_line

app = typer.Typer(
    name="obeya",
    help="Obeya: run a service's whole life the DevOps way.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"obeya {obeya.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Obeya: run a service's whole life the DevOps way."""


app.command("serve")(admin.serve)
app.command("migrate")(admin.migrate_command)
app.command("createuser")(admin.createuser)
app.command("setpassword")(admin.setpassword)
app.command("config")(admin.config)
app.command("backup")(continuity.backup)
app.command("restore")(continuity.restore)
app.command("drill")(continuity.drill)
app.add_typer(admin.token_app, name="token")
app.add_typer(audit.audit_app, name="audit")
app.command("login")(session.login)
app.command("events")(session.events)
app.add_typer(catalog.app, name="service")
app.add_typer(backlog.story_app, name="story")
app.command("board")(backlog.board)
app.add_typer(pipelines.pipeline_app, name="pipeline")
app.add_typer(pipelines.andon_app, name="andon")
app.add_typer(pipelines.secret_app, name="secret")
app.add_typer(keys.secrets_app, name="secrets")
app.add_typer(pipelines.runners_app, name="runners")
app.add_typer(pipelines.artifact_app, name="artifact")
app.command("logs")(pipelines.logs)
app.command("runner")(pipelines.runner)
app.command("deploy")(deploy.deploy)
app.command("rollback")(deploy.rollback)
app.command("approve")(deploy.approve)
app.add_typer(environments.env_app, name="env")
app.add_typer(deploy.deployment_app, name="deployment")
app.add_typer(ops.incident_app, name="incident")
app.add_typer(ops.monitor_app, name="monitor")
app.add_typer(ops.slo_app, name="slo")
app.add_typer(ops.problem_app, name="problem")
app.add_typer(notify.channel_app, name="channel")
app.command("metrics")(metrics.metrics)
app.command("room")(metrics.room)
app.command("lint")(lint.lint)


@app.command("demo")
def demo(
    serve: Annotated[bool, typer.Option("--serve", help="Serve it afterwards.")] = False,
    host: Annotated[str, typer.Option(help="Address to listen on with --serve.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on with --serve.")] = 8000,
) -> None:
    """Load the demo: people, services with charters, teams and lifecycle history."""
    from obeya.cli.local import prepare_database, setup_django

    setup_django()
    prepare_database()
    from obeya import demo as demo_data

    credentials = demo_data.load(echo=typer.echo)
    typer.echo("")
    typer.echo(
        f"  Open http://{host}:{port}/ and sign in as "
        f"{credentials.username} / {credentials.password}"
    )
    typer.echo("")
    if serve:
        from obeya import demo_deploy

        director = demo_deploy.start_director()  # plays the gatekeeper and the developer
        try:
            admin.serve(host=host, port=port, no_runners=False, get=None)
        finally:
            director.set()


def run() -> None:
    """Console entry point: refusals print one line and exit 2, never a traceback."""
    from obeya.core.errors import ObeyaError

    try:
        app(standalone_mode=True)
    except CliError as error:
        error_line(str(error))
        sys.exit(2)
    except ObeyaError as error:
        error_line(error.message)
        sys.exit(2)
