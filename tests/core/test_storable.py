"""Which values a request may hand to a database: the rule the API and the pages share."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from obeya.core.storable import INT64_MAX, INT64_MIN, refusal


@dataclass
class Body:
    name: str
    labels: list[str]
    limits: dict[str, int]


@pytest.mark.parametrize(
    "value", ["", "plain text", "ünïcödé ✓ 😀", INT64_MAX, INT64_MIN, 0, 1.5, True, None, [], {}]
)
def test_what_every_database_holds_passes(value: object) -> None:
    assert refusal(value) is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (INT64_MAX + 1, "out of range"),
        (INT64_MIN - 1, "out of range"),
        ("a\x00", "NUL"),
        ("\ud800", "lone surrogate (\\ud800)"),
        (float("nan"), "finite"),
        (float("-inf"), "finite"),
    ],
)
def test_what_no_database_holds_is_named(value: object, words: str) -> None:
    found = refusal(value, "field")
    assert found is not None
    assert found[0] == "field"
    assert words in found[1]


def test_the_first_bad_value_is_found_deep_in_a_body_and_named_by_its_path() -> None:
    body = Body(name="ok", labels=["linux", "x\x00"], limits={"wip": 2**64})
    assert refusal(body) == (
        "labels.1",
        "labels.1: text may not contain the NUL character (\\u0000)",
    )
    body.labels = ["linux"]
    field, message = refusal(body) or ("", "")
    assert field == "limits.wip" and str(2**64) in message
    assert refusal({"\ud800": 1}) is not None  # keys too
