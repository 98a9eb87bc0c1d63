"""INVEST lint for user stories: advisory findings, each with its reason. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SMALL_POINTS = 8
VAGUE = ("etc", "and so on", "tbd", "somehow", "various", "everything")


@dataclass(frozen=True)
class Finding:
    letter: str  # I N V E S T
    quality: str
    reason: str


def invest_findings(
    details: Mapping[str, Any],
    *,
    title: str,
    description: str,
    estimate: int | None,
    scenarios: int,
    depends_on: list[str],
) -> list[Finding]:
    """What keeps a user story from being Independent, Negotiable, Valuable, Estimable,
    Small and Testable. Empty when it reads well."""
    found = []
    if depends_on:
        found.append(
            Finding(
                "I",
                "Independent",
                f"names other stories ({', '.join(depends_on)}): can it ship alone?",
            )
        )
    text = f"{title} {description} {details.get('i_want', '')}".lower()
    if len(str(details.get("i_want", ""))) > 600:
        found.append(
            Finding(
                "N", "Negotiable", "the function reads like a specification: leave room to talk"
            )
        )
    if not details.get("so_that"):
        found.append(Finding("V", "Valuable", 'no "so that": whose value does it serve?'))
    if not details.get("as_a"):
        found.append(Finding("V", "Valuable", 'no "as a": who is it for?'))
    if estimate is None:
        found.append(Finding("E", "Estimable", "no estimate yet"))
    if any(re.search(rf"\b{re.escape(word)}\b", text) for word in VAGUE):
        found.append(Finding("E", "Estimable", "vague words (etc., TBD, various…) hide the size"))
    if estimate is not None and estimate > SMALL_POINTS:
        found.append(
            Finding("S", "Small", f"estimate {estimate} is above {SMALL_POINTS}: split it")
        )
    if scenarios == 0:
        found.append(
            Finding("T", "Testable", "no linked scenario: add a test story tagged with this key")
        )
    return found
