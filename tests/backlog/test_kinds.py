"""What each kind of story holds: a golden table of accepted and refused details."""

from __future__ import annotations

import pytest

from obeya.backlog import kinds
from obeya.backlog.kinds import DetailProblem, clean_details


@pytest.mark.parametrize(
    ("kind", "details", "field", "message"),
    [
        ("user", {"as_a": "visitor", "owner": "bob"}, "owner",
         "a user story has no field 'owner'; it has as_a, i_want"),
        ("user", {"as_a": 7}, "as_a", "as_a must be text"),
        ("user", {"as_a": "x" * 201}, "as_a", "as_a is longer than 200 characters"),
        ("operation", {"availability_target": 0}, "availability_target",
         "availability_target must be in (0, 100), not 0"),
        ("operation", {"availability_target": 100}, "availability_target",
         "availability_target must be in (0, 100), not 100"),
        ("operation", {"availability_target": "high"}, "availability_target",
         "availability_target must be a number, not 'high'"),
        ("operation", {"rto_minutes": 0}, "rto_minutes", "rto_minutes must be in (0, 525600]"),
        ("operation", {"rpo_minutes": -1}, "rpo_minutes", "rpo_minutes must be in [0, 525600]"),
        ("operation", {"latency_target_ms": 0}, "latency_target_ms",
         "latency_target_ms must be in (0, 600000]"),
        ("end_of_life", {"shutdown_at": "31/03/2027"}, "shutdown_at",
         "shutdown_at must be a date like 2027-03-31"),
        ("end_of_life", {"checklist": "all of it"}, "checklist",
         "checklist must be a list of items"),
        ("end_of_life", {"checklist": [{"done": True}]}, "checklist",
         "each checklist item needs a text"),
        ("change_request", {"source": "rumour"}, "source",
         "source must be one of maintenance, customer_feedback, incident, postmortem, other, "
         "not 'rumour'"),
        ("epic", {}, "kind", "unknown story kind 'epic'"),
    ],
)  # fmt: skip
def test_refused_details_name_the_field_and_the_way_out(kind, details, field, message):
    with pytest.raises(DetailProblem) as refused:
        clean_details(kind, details)
    assert refused.value.field == field
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("kind", "details", "expected"),
    [
        ("user", {"as_a": "  visitor ", "i_want": None},
         {"as_a": "visitor", "i_want": "", "so_that": "", "operational_conditions": "",
          "acceptance_criteria": ""}),
        ("operation",
         {"availability_target": "99.9", "latency_target_ms": "300", "rpo_minutes": 0,
          "rto_minutes": 60, "backup_frequency": "daily"},
         {"availability_target": 99.9, "latency_target_ms": 300, "rpo_minutes": 0,
          "rto_minutes": 60, "backup_frequency": "daily", "continuity_conditions": ""}),
        ("change_request", {}, {"source": "maintenance", "reference": ""}),
        ("change_request", {"source": "customer_feedback", "reference": "mail #42"},
         {"source": "customer_feedback", "reference": "mail #42"}),
    ],
)  # fmt: skip
def test_accepted_details_are_normalised(kind, details, expected):
    assert clean_details(kind, details) == expected


def test_an_end_of_life_story_starts_with_the_standard_checklist():
    details = clean_details("end_of_life", {"shutdown_at": "2027-03-31"})
    assert details["shutdown_at"] == "2027-03-31"
    assert [item["text"] for item in details["checklist"]][:2] == [
        "Data archived or handed over",
        "Documents moved to the archive",
    ]
    assert not any(item["done"] for item in details["checklist"])
    custom = clean_details("end_of_life", {"checklist": ["Tell finance", {"text": "x", "done": 1}]})
    assert custom["checklist"] == [
        {"text": "Tell finance", "done": False},
        {"text": "x", "done": True},
    ]


def test_changes_merge_over_what_is_stored():
    stored = clean_details("operation", {"availability_target": 99.5, "rto_minutes": 30})
    merged = clean_details("operation", {"rto_minutes": 15}, stored)
    assert (merged["availability_target"], merged["rto_minutes"]) == (99.5, 15)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("S-1: greet by name", [1]),
        ("Fix S-12 and S-3, again S-12", [12, 3]),
        ("XS-1 and S-1x are not keys", []),
        ("", []),
    ],
)
def test_keys_in_commit_messages(text, numbers):
    assert kinds.keys_in(text) == numbers


def test_parse_key():
    assert kinds.parse_key(" S-42 ") == 42
    with pytest.raises(DetailProblem, match="keys look like S-12"):
        kinds.parse_key("42")


@pytest.mark.parametrize(
    ("details", "done", "problem"),
    [
        ({}, False, "its end-of-life story is not done yet"),
        ({"checklist": [{"text": "Data archived", "done": False}]}, True,
         "its end-of-life checklist has open items: Data archived"),
        ({"checklist": [], "reason": "replaced"}, True,
         "its end-of-life story does not say: data_disposition, shutdown_order"),
        ({"checklist": [{"text": "a", "done": True}], "reason": "r", "data_disposition": "d",
          "shutdown_order": "s"}, True, None),
    ],
)  # fmt: skip
def test_end_of_life_problem(details, done, problem):
    assert kinds.end_of_life_problem(details, done) == problem
