"""How the CLI talks back: one line and exit 2 on refusal, tables or --json on success."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import typer


class CliError(Exception):
    """A refusal to print as one line on stderr, exiting with code 2."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain aligned text table; empty cells show as a dash."""
    cells = [[("-" if v in (None, "") else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
    typer.echo(line.rstrip())
    for row in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def error_line(message: str) -> None:
    sys.stderr.write(f"obeya: {message}\n")
