"""Executable acceptance: feature files become test stories, JUnit cases their results,
and commits naming a key link to the story and start its card."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from obeya.backlog import services as backlog
from obeya.backlog import sync
from obeya.backlog.models import ScenarioResult, Story
from obeya.board import services as board
from obeya.core.errors import Conflict
from obeya.core.models import Event
from obeya.pipelines import runs
from tests.backlog.conftest import GREETING, HEALTH, junit
from tests.conftest import actor

GREETED = ("Greeting", "A visitor is greeted by name")
STRANGER = ("Greeting", "A stranger is greeted as the world")
HEALTHY = ("Health", "The service reports its health and version")
NEW_BROKEN = "Feature: New\n  Scenario: a\n    Given a\n  oops\n"
ALL_PASS = junit((*GREETED, "passed"), (*STRANGER, "passed"), (*HEALTHY, "passed"))


def test_stories_are_listeners_of_runs():
    from obeya.pipelines import services as pipelines

    assert sync.on_run_created in pipelines.RUN_CREATED
    assert sync.on_run_finished in pipelines.RUN_FINISHED


def test_a_default_branch_run_makes_one_test_story_per_feature_file(run_pipeline):
    run = run_pipeline(ALL_PASS)
    tests = backlog.list_stories("svc", kind="test")
    assert [(s.key, s.title, s.source_file) for s in tests] == [
        ("S-3", "Feature: Greeting", "features/greeting.feature"),
        ("S-4", "Feature: Health", "features/health.feature"),
    ]
    greeting = tests[0]
    assert greeting.details == {
        "gherkin": GREETING,
        "feature": "Greeting",
        "keys": [1],
        "scenarios": [GREETED[1], STRANGER[1]],
        "synced": {"run": run.number, "sha": run.sha},
    }
    created = Event.objects.get(kind="story.created", data__key="S-3")
    assert created.channel == "system" and created.data["source_file"] == greeting.source_file


def test_scenarios_pass_fail_or_do_not_run(run_pipeline):
    run = run_pipeline(
        junit(
            (*GREETED, "passed"),
            ("features", f"Scenario: {STRANGER[1]}", "error"),
            ("Greeting", "Something else", "failed"),
        )
    )
    greeting = backlog.get_story("svc", "S-3")
    results = {r.scenario: r for r in backlog.latest_results(greeting)}
    assert {name: r.status for name, r in results.items()} == {
        GREETED[1]: "passed",
        STRANGER[1]: "failed",
    }
    assert results[STRANGER[1]].message == f"Scenario: {STRANGER[1]} broke"
    assert results[GREETED[1]].run_number == run.number and results[GREETED[1]].sha == run.sha
    [health] = backlog.latest_results(backlog.get_story("svc", "S-4"))
    assert health.status == "not_run"
    recorded = Event.objects.get(kind="story.scenarios_recorded", data__key="S-3")
    assert recorded.data | {"sha": ""} == {
        "key": "S-3", "kind": "test", "title": "Feature: Greeting", "run": run.number,
        "sha": "", "passed": 1, "failed": 1, "not_run": 0,
    }  # fmt: skip


def test_acceptance_of_a_user_story_follows_the_latest_default_branch_run(run_pipeline):
    run_pipeline(junit((*GREETED, "passed"), (*STRANGER, "failed"), (*HEALTHY, "passed")))
    user = backlog.get_story("svc", "S-1")
    assert backlog.acceptance(user) == {
        "state": "failed", "scenarios": 2, "passed": 1, "tests": ["S-3"],
    }  # fmt: skip
    assert backlog.acceptance(backlog.get_story("svc", "S-2"))["state"] == "passed"
    run_pipeline(ALL_PASS)
    assert backlog.acceptance(user)["state"] == "passed"
    run_pipeline(None)  # the report went missing: nothing is known to pass any more
    assert backlog.acceptance(user) == {
        "state": "not_run", "scenarios": 2, "passed": 0, "tests": ["S-3"],
    }  # fmt: skip
    assert ScenarioResult.objects.filter(story__number=3).count() == 6  # history is kept


def test_other_branches_do_not_sync(run_pipeline, repo):
    from tests.pipelines.conftest import git

    git(repo.path, "checkout", "-q", "-b", "feature/x")
    repo.commit({"features/extra.feature": HEALTH.replace("Health", "Extra")}, "more")
    run_pipeline(ALL_PASS, ref="feature/x")
    assert not backlog.list_stories("svc", kind="test").exists()


def test_changed_and_removed_files_update_their_stories(run_pipeline, repo):
    run_pipeline(ALL_PASS)
    changed = GREETING.replace("@S-1", "@S-1 @S-2").replace("by name", "by their name")
    repo.commit({"features/greeting.feature": changed}, "reword")
    (repo.path / "features/health.feature").unlink()
    removal = repo.commit({}, "drop the health feature")
    run = run_pipeline(ALL_PASS)

    greeting, health = backlog.get_story("svc", "S-3"), backlog.get_story("svc", "S-4")
    assert greeting.details["keys"] == [1, 2]
    assert greeting.details["scenarios"] == ["A visitor is greeted by their name", STRANGER[1]]
    synced = Event.objects.get(kind="story.synced", data__key="S-3")
    assert synced.data["changed"] == ["gherkin", "keys", "scenarios"]
    assert synced.data["sha"] == removal == run.sha
    assert health.details["removed_in"] == removal
    assert health.details["keys"] == [] and health.details["removed_keys"] == [2]
    assert health.details["gherkin"] == HEALTH  # the last text stays readable
    assert [r.run_number for r in health.scenario_results.all()] == [1]  # history stays
    # S-2 is now covered by the reworded greeting only.
    assert backlog.acceptance(backlog.get_story("svc", "S-2"))["tests"] == ["S-3"]

    repo.commit({"features/health.feature": HEALTH}, "bring health back")
    run_pipeline(ALL_PASS)
    health = backlog.get_story("svc", "S-4")
    assert "removed_in" not in health.details and health.details["keys"] == [2]
    assert Story.objects.filter(kind="test").count() == 2


def test_a_run_that_changes_nothing_records_no_sync_event(run_pipeline):
    run_pipeline(ALL_PASS)
    run_pipeline(ALL_PASS)
    assert not Event.objects.filter(kind="story.synced").exists()
    assert backlog.get_story("svc", "S-3").details["synced"]["run"] == 2


def test_malformed_gherkin_is_recorded_and_the_run_still_finishes(run_pipeline, repo, caplog):
    run_pipeline(ALL_PASS)
    broken = GREETING.replace("  Scenario: A stranger", "  Scenaro: A stranger")
    repo.commit(
        {"features/greeting.feature": broken, "features/new.feature": NEW_BROKEN},
        "typos",
    )
    with caplog.at_level(logging.WARNING, logger="obeya.backlog"):
        run = run_pipeline(ALL_PASS)
    assert run.status == "succeeded"
    greeting = backlog.get_story("svc", "S-3")
    assert greeting.details["errors"] == [
        "10:3: expected: #EOF, #TableRow, #DocStringSeparator, #StepLine, #TagLine, "
        "#ExamplesLine, #ScenarioLine, #RuleLine, #Comment, #Empty, got 'Scenaro: A stranger"
        " is greeted as the world'"
    ]
    assert greeting.details["gherkin"] == GREETING  # the last text that parsed
    assert not Story.objects.filter(source_file="features/new.feature").exists()
    assert "features/new.feature" in caplog.text and "4:3" in caplog.text

    repo.commit({"features/greeting.feature": GREETING}, "fixed")
    run_pipeline(ALL_PASS)
    assert "errors" not in backlog.get_story("svc", "S-3").details


def test_a_tag_naming_no_story_is_recorded_not_fatal(run_pipeline, repo):
    repo.commit({"features/later.feature": "Feature: Later\n\n  @S-99\n  Scenario: x\n"}, "x")
    run = run_pipeline(None)
    [later] = Story.objects.filter(source_file="features/later.feature")
    assert later.details["keys"] == []
    assert later.details["problems"] == ['3:3: tag @S-99 names no story of "svc"']
    assert run.status == "succeeded"


def test_a_late_old_run_does_not_bring_back_old_text(alice, service, repo):
    old = runs.create_run(actor(alice), "svc")
    repo.commit({"features/health.feature": HEALTH.replace("Health", "Vitals")}, "rename")
    new = runs.create_run(actor(alice), "svc")
    sync.sync_run(new)
    sync.sync_run(old)
    assert backlog.get_story("svc", "S-4").title == "Feature: Vitals"


def test_a_synced_story_is_edited_in_the_repository(run_pipeline, alice):
    run_pipeline(ALL_PASS)
    with pytest.raises(Conflict, match=r"S-3 comes from features/greeting\.feature in the repo"):
        backlog.update_story(actor(alice), "svc", "S-3", title="Hi")


def test_a_commit_naming_a_key_links_it_and_starts_the_card(run_pipeline, repo, alice):
    assert board.card_of(backlog.get_story("svc", "S-1")).column.name == "Backlog"
    sha = repo.commit({"hello.py": "print('hi')\n"}, "S-1: greet by name")
    run_pipeline(ALL_PASS)
    s1 = backlog.get_story("svc", "S-1")
    assert [(c.sha, c.branch, c.run_number) for c in s1.commits.all()] == [(sha, "main", 1)]
    assert board.card_of(s1).column.name == "In progress"
    assert board.card_of(backlog.get_story("svc", "S-2")).column.name == "Backlog"
    moved = Event.objects.get(kind="story.moved", data__key="S-1")
    assert moved.channel == "system" and moved.data["to"] == "In progress"

    # Only the first commit moves the card: a person's later decision stands.
    board.move_card(actor(alice), "svc", "S-1", "Backlog")
    repo.commit({"hello.py": "print('hello')\n"}, "S-1 S-2: polish")
    run_pipeline(ALL_PASS)
    assert board.card_of(s1).column.name == "Backlog"
    assert board.card_of(backlog.get_story("svc", "S-2")).column.name == "In progress"
    assert s1.commits.count() == 2


def case(classname: str, name: str, status: str = "passed") -> SimpleNamespace:
    return SimpleNamespace(classname=classname, name=name, status=status)


@pytest.mark.parametrize(
    ("cases", "expected"),
    [
        ([case("Greeting", "Hello")], 0),
        ([case("tests.Greeting", "Hello")], 0),
        ([case("", "Scenario: Hello")], 0),
        ([case("Greeting", "Hello there")], None),
        ([case("Health", "Hello")], None),  # another feature's scenario of the same name
        ([case("x", "Hello"), case("Greeting", "Hello", "failed")], 1),  # exact wins
        ([case("x", "Hello"), case("y", "Hello", "error")], 1),  # a failure is never hidden
    ],
)
def test_cases_match_scenarios_by_feature_and_name(cases, expected):
    found = sync.match_case("Greeting", "Hello", cases, {"Greeting", "Health"})
    assert found is (cases[expected] if expected is not None else None)


def test_the_demo_backlog_is_ready_for_the_example_features(db):
    from obeya import demo

    demo.load(echo=lambda line: None)
    stories = {s.key: s for s in backlog.list_stories("hello-service")}
    assert (stories["S-1"].title, stories["S-2"].title) == (
        "Greet visitors by name",
        "Report health and version",
    )
    columns = {c["column"].name: c for c in board.board("hello-service")["columns"]}
    assert [card.story.key for card in columns["Review"]["cards"]] == ["S-1", "S-2"]
    assert columns["In progress"]["wip"] == "4/3"
    [overridden] = [c for c in columns["In progress"]["cards"] if c.override_reason]
    assert overridden.story.kind == "change_request" and overridden.override_by == "alice"
    assert {f.letter for f in backlog.findings(stories["S-4"])} >= {"V", "E"}
    assert len(backlog.slr_sheet("hello-service")) == 2

    # The example's feature files resolve their tags once the main run is synced.
    sync.sync_run(runs.list_runs("hello-service", branch="main").get())
    tests = backlog.list_stories("hello-service", kind="test")
    assert sorted(s.details["keys"] for s in tests) == [[1], [2]]
    assert not any("problems" in s.details for s in tests)
    # 8 stories, 2 follow-ups of the demo's postmortem, 2 feature files
    assert backlog.list_stories("hello-service").count() == 12
    demo.load(echo=lambda line: None)  # loading again adds nothing
    assert backlog.list_stories("hello-service").count() == 12


def test_bulk_acceptances_agree_with_one_by_one(run_pipeline):
    """The board's bulk verdicts must say exactly what acceptance() says per story."""
    from obeya.catalog.models import Service

    service = Service.objects.get(slug="svc")
    states = set()
    for report in (
        junit((*GREETED, "passed"), (*STRANGER, "failed"), (*HEALTHY, "passed")),
        ALL_PASS,
        None,
    ):
        run_pipeline(report)
        bulk = backlog.acceptances(service)
        for story in backlog.list_stories("svc"):
            assert bulk[story.pk] == backlog.acceptance(story), story.key
            states.add(bulk[story.pk]["state"])
    assert states == {"passed", "failed", "not_run"}  # every kind of verdict was compared
