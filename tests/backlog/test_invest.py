"""INVEST lint: advisory findings for user stories, each with its reason."""

from __future__ import annotations

from obeya.backlog import services as backlog
from obeya.backlog.invest import SMALL_POINTS, invest_findings
from obeya.catalog import services as catalog
from tests.conftest import actor

GOOD = {
    "as_a": "visitor",
    "i_want": "to be greeted by name",
    "so_that": "I feel welcome",
}


def letters(details=GOOD, *, title="Greet visitors", description="", estimate=3, scenarios=1,
            depends_on=()):  # fmt: skip
    found = invest_findings(
        details,
        title=title,
        description=description,
        estimate=estimate,
        scenarios=scenarios,
        depends_on=list(depends_on),
    )
    return [(f.letter, f.reason) for f in found]


def test_a_story_that_reads_well_has_no_findings():
    assert letters() == []


def test_each_quality_has_its_reason():
    assert letters(depends_on=["S-2"]) == [("I", "names other stories (S-2): can it ship alone?")]
    assert letters({**GOOD, "i_want": "x" * 601}) == [
        ("N", "the function reads like a specification: leave room to talk")
    ]
    assert letters({"i_want": "hello"}) == [
        ("V", 'no "so that": whose value does it serve?'),
        ("V", 'no "as a": who is it for?'),
    ]
    assert letters(estimate=None) == [("E", "no estimate yet")]
    assert letters(description="greet in French, German etc") == [
        ("E", "vague words (etc., TBD, various…) hide the size")
    ]
    assert letters(estimate=SMALL_POINTS + 5) == [
        ("S", f"estimate {SMALL_POINTS + 5} is above {SMALL_POINTS}: split it")
    ]
    assert letters(scenarios=0) == [
        ("T", "no linked scenario: add a test story tagged with this key")
    ]


def test_findings_of_a_stored_story_count_its_linked_scenarios(alice):
    catalog.create_service(actor(alice), "svc", "Svc")
    story = backlog.create_story(
        actor(alice),
        "svc",
        "user",
        "Greet visitors",
        description="Builds on S-9 somehow",
        estimate=3,
        details=GOOD,
    )
    assert [f.letter for f in backlog.findings(story)] == ["I", "E", "T"]
    backlog.create_story(
        actor(alice),
        "svc",
        "test",
        "Greeting",
        details={"gherkin": "@S-1\nFeature: Greeting\n  Scenario: hi\n    Given x\n"},
    )
    assert [f.letter for f in backlog.findings(story)] == ["I", "E"]


def test_only_user_stories_are_linted(alice):
    catalog.create_service(actor(alice), "svc", "Svc")
    operation = backlog.create_story(actor(alice), "svc", "operation", "Stay up")
    assert backlog.findings(operation) == []
