"""Test stories are Gherkin (Feature / Scenario / Given / When / Then), parsed with the
official Cucumber parser. Pure apart from the parser itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gherkin.errors import CompositeParserException, ParserError, ParserException
from gherkin.parser import Parser
from gherkin.token_scanner import TokenScanner

from obeya.backlog.kinds import keys_in


@dataclass(frozen=True)
class Scenario:
    name: str
    tags: tuple[str, ...]
    steps: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Feature:
    name: str
    tags: tuple[str, ...]
    scenarios: tuple[Scenario, ...]
    description: str = ""
    keys: tuple[int, ...] = field(default=())  # story numbers tagged @S-n anywhere


@dataclass(frozen=True)
class GherkinError(ValueError):
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.line}:{self.col}: {self.message}"


class GherkinInvalid(ValueError):
    """Every syntax error of a feature text, each with line:col."""

    def __init__(self, errors: list[GherkinError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


def _error(raw: Any) -> GherkinError:
    location = getattr(raw, "location", None) or {}
    text = str(raw)
    if text.startswith("(") and "): " in text:
        text = text.split("): ", 1)[1]
    return GherkinError(int(location.get("line") or 1), int(location.get("column") or 1), text)


def _scenarios(children: list[dict[str, Any]], inherited: tuple[str, ...]) -> list[Scenario]:
    found = []
    for child in children:
        if "rule" in child:
            rule = child["rule"]
            tags = inherited + tuple(t["name"] for t in rule.get("tags", []))
            found.extend(_scenarios(rule.get("children", []), tags))
        elif "scenario" in child:
            scenario = child["scenario"]
            found.append(
                Scenario(
                    name=scenario["name"],
                    tags=inherited + tuple(t["name"] for t in scenario.get("tags", [])),
                    steps=tuple(f"{s['keyword'].strip()} {s['text']}" for s in scenario["steps"]),
                    line=int(scenario["location"]["line"]),
                )
            )
    return found


def parse_feature(text: str) -> Feature:
    """The feature in ``text``; GherkinInvalid listing every error with line:col."""
    if not text.strip():
        raise GherkinInvalid([GherkinError(1, 1, "empty: write a Feature with Scenarios")])
    try:
        document = Parser().parse(TokenScanner(text))
    except CompositeParserException as composite:
        raise GherkinInvalid([_error(e) for e in composite.errors]) from None
    except (ParserError, ParserException) as single:
        raise GherkinInvalid([_error(single)]) from None
    feature = document.get("feature")
    if not feature:
        raise GherkinInvalid([GherkinError(1, 1, "no Feature: start with `Feature: <name>`")])
    tags = tuple(t["name"] for t in feature.get("tags", []))
    children: list[dict[str, Any]] = list(feature.get("children", []))  # type: ignore[arg-type]
    scenarios = tuple(_scenarios(children, tags))
    keys = tuple(keys_in(" ".join(tags + tuple(t for s in scenarios for t in s.tags))))
    return Feature(
        feature["name"], tags, scenarios, (feature.get("description") or "").strip(), keys
    )
