"""Test stories are Gherkin: parsed with the official parser, every error with line:col."""

from __future__ import annotations

import pytest

from obeya.backlog.gherkin import GherkinError, GherkinInvalid, parse_feature

FEATURE = """\
@S-1 @smoke
Feature: Greeting
  Visitors feel welcome.

  Background:
    Given the service is running

  Scenario: A visitor is greeted by name
    When I ask for a greeting for "Ada"
    Then the answer is "Hello, Ada!"

  Rule: Strangers
    @S-2
    Scenario: A stranger is greeted as the world
      When I ask for a greeting without a name
      Then the answer is "Hello, world!"

  Scenario Outline: Greeting <name>
    When I ask for a greeting for "<name>"
    Examples:
      | name |
      | Bo   |
"""


def test_a_feature_is_read_with_its_scenarios_tags_and_keys():
    feature = parse_feature(FEATURE)
    assert (feature.name, feature.tags, feature.description) == (
        "Greeting",
        ("@S-1", "@smoke"),
        "Visitors feel welcome.",
    )
    assert [(s.name, s.tags, s.line) for s in feature.scenarios] == [
        ("A visitor is greeted by name", ("@S-1", "@smoke"), 8),
        ("A stranger is greeted as the world", ("@S-1", "@smoke", "@S-2"), 14),
        ("Greeting <name>", ("@S-1", "@smoke"), 18),
    ]
    assert feature.scenarios[0].steps == (
        'When I ask for a greeting for "Ada"',
        'Then the answer is "Hello, Ada!"',
    )
    assert feature.keys == (1, 2)  # each once, in order, from any level


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ("", ["1:1: empty: write a Feature with Scenarios"]),
        ("# only a comment\n", ["1:1: no Feature: start with `Feature: <name>`"]),
        (
            "Feature: A\n  Scenario: a\n    Given x\n  oops\n  Scenario: b\n    Given y\n  nope\n",
            ["4:3: expected: ", "7:3: expected: "],  # every error at once, not the first only
        ),
        ("Scenario: loose\n", ["1:1: expected: #EOF, #Language, #TagLine, #FeatureLine"]),
    ],
)
def test_errors_name_line_and_column(text, errors):
    with pytest.raises(GherkinInvalid) as invalid:
        parse_feature(text)
    found = [str(error) for error in invalid.value.errors]
    assert len(found) == len(errors)
    for message, expected in zip(found, errors, strict=True):
        assert message.startswith(expected)
    assert str(invalid.value) == "; ".join(found)


def test_an_error_keeps_line_col_and_message_apart():
    with pytest.raises(GherkinInvalid) as invalid:
        parse_feature("Feature: A\n  Scenario: a\n    Given x\n  oops\n")
    [error] = invalid.value.errors
    assert (error.line, error.col) == (4, 3)
    assert error.message.endswith("got 'oops'")
    assert isinstance(error, GherkinError)
