"""`obeya lint`: check an obeya.yml on this machine, with no server and no database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obeya.cli.output import fail, print_table

SPEC_FILE = "obeya.yml"


def lint(
    path: Annotated[
        Path,
        typer.Argument(help="The obeya.yml to check, or a directory holding one."),
    ] = Path(SPEC_FILE),
    branch: Annotated[
        str | None,
        typer.Option(help="Show only the jobs that run for a push to this branch."),
    ] = None,
) -> None:
    """Check an obeya.yml and show the order its jobs run in; every mistake at once."""
    from obeya.pipelines.spec import SpecInvalid, jobs_for_branch, parse_spec

    if path.is_dir():
        path = path / SPEC_FILE
    text = _read(path)
    try:
        spec = parse_spec(text, str(path))
    except SpecInvalid as invalid:
        for error in invalid.errors:
            typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    stages = spec.stages_in_use
    typer.echo(f"{path}: valid ({_count(len(spec.jobs), 'job')} in {_count(len(stages), 'stage')})")
    jobs = list(spec.jobs)
    if branch is not None:
        jobs = jobs_for_branch(spec, branch)
        typer.echo(f"on branch {branch}: {len(jobs)} of {_count(len(spec.jobs), 'job')} run")
    print_table(
        ("#", "stage", "job", "needs", "when"),
        [
            (number, job.stage, job.name, ", ".join(job.effective_needs), job.when)
            for number, job in enumerate(jobs, start=1)
        ],
    )


def _read(path: Path) -> str:
    """The file's text; a huge file is read only one byte past the limit, for the parser
    to refuse."""
    from obeya.pipelines.spec import MAX_SPEC_BYTES

    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        fail(f"{path} not found: write one (see docs/pipelines.md) or give its path")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if len(data) > MAX_SPEC_BYTES:
            return data.decode("utf-8-sig", "replace")
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line = data[: error.start].count(b"\n") + 1
        col = len(data[line_start : error.start].decode("utf-8", "replace")) + 1
        typer.echo(f"{path}:{line}:{col}: the file is not UTF-8 text", err=True)
        raise typer.Exit(2) from None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
