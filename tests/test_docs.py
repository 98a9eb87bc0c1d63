"""The user documentation keeps up with the code: every setting and every command is described."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer

from obeya.cli.main import app
from obeya.metrics import ci, flow, maturity, valuestream
from obeya.metrics.model import Board
from obeya.settings import OBEYA_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _text(path: Path) -> str:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    return path.read_text(encoding="utf-8")


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """Every command and subcommand below ``command``, as "service member add".

    Typer vendors its own click, so groups are found by their ``commands`` mapping rather
    than by ``isinstance(..., click.Group)``.
    """
    for name, sub in getattr(command, "commands", {}).items():
        path = (*prefix, name)
        yield " ".join(path)
        yield from _command_paths(sub, path)


COMMANDS = sorted(_command_paths(typer.main.get_command(app)))

# The checks as the formulas produce them: on an empty history every check still answers
# ("no data"), so its id is known without a hand-kept list.
_ANY_WINDOW = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC))
CHECK_IDS = [
    check.id
    for check in (*flow.checks([], Board((), ()), _ANY_WINDOW), *ci.health([], _ANY_WINDOW))
]
AREAS = [(area_id, name) for area_id, name, _ in maturity.AREAS]


def _headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


@pytest.mark.parametrize("name", [row.name for row in OBEYA_SETTINGS])
def test_every_setting_is_documented_in_configuration(name: str) -> None:
    text = _text(DOCS / "configuration.md")
    assert f"| `{name}` |" in text, (
        f"{name} is an OBEYA_* setting but docs/configuration.md has no row for it: "
        "add one to its settings table"
    )


def test_the_cli_has_commands_to_document() -> None:
    assert "serve" in COMMANDS
    assert "service member add" in COMMANDS


@pytest.mark.parametrize("path", COMMANDS)
def test_every_command_is_documented_in_cli(path: str) -> None:
    text = _text(DOCS / "cli.md")
    assert f"obeya {path}" in text, (
        f"`obeya {path}` exists but docs/cli.md does not mention it: add a section for it"
    )


@pytest.mark.parametrize("command", ["make run", "make test"])
def test_readme_shows_how_to_try_and_test(command: str) -> None:
    assert command in _text(ROOT / "README.md")


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md"))
def test_every_page_is_listed_in_the_index(page: str) -> None:
    assert f"({page})" in _text(DOCS / "index.md"), f"docs/index.md does not link to {page}"


def test_the_metrics_have_checks_stages_and_areas_to_document() -> None:
    assert {"defect_escaped", "ci.red_share"} <= set(CHECK_IDS)
    assert "approval wait" in valuestream.STAGES
    assert ("flow", "Flow & collaboration") in AREAS


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_every_check_has_a_section_in_metrics(check_id: str) -> None:
    headings = _headings(_text(DOCS / "metrics.md"))
    assert any(f"`{check_id}`" in line for line in headings), (
        f"the check {check_id} exists but docs/metrics.md has no heading for it: add a "
        "section with its question, how it is computed, its thresholds and an example"
    )


@pytest.mark.parametrize("stage", valuestream.STAGES)
def test_every_value_stream_stage_is_defined_in_metrics(stage: str) -> None:
    assert f"| `{stage}` |" in _text(DOCS / "metrics.md"), (
        f'the value stream stage "{stage}" exists but docs/metrics.md has no row for it: '
        "add one to the table of stages"
    )


@pytest.mark.parametrize(("area_id", "name"), AREAS)
def test_every_maturity_area_has_a_section_in_metrics(area_id: str, name: str) -> None:
    headings = _headings(_text(DOCS / "metrics.md"))
    assert any(name in line and f"(`{area_id}`)" in line for line in headings), (
        f'the maturity area "{name}" ({area_id}) exists but docs/metrics.md has no heading '
        f'"{name} (`{area_id}`)": add one with a table of its criteria'
    )
