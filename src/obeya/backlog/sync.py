"""Executable acceptance: the repository's feature files are the service's test stories.

When a run of the default branch finishes, every ``*.feature`` file at its commit becomes
(or updates) one test story, and the run's JUnit cases become the results of their
scenarios. When any run starts, the commits it brings are linked to the stories their
messages name. Both are run listeners (registered in ``apps.py``). A broken file, a tag
naming no story or a missing report is recorded on the story and logged: it never fails
the run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Max

from obeya.backlog import services as backlog
from obeya.backlog.gherkin import Feature, GherkinInvalid, parse_feature
from obeya.backlog.models import ScenarioResult, Story, StoryKind
from obeya.board import services as board
from obeya.catalog.models import Service
from obeya.core.actors import Actor, system_actor
from obeya.pipelines import reports
from obeya.pipelines import services as pipelines
from obeya.pipelines.models import Run, TestCase

log = logging.getLogger("obeya.backlog")
FEATURE_SUFFIX = ".feature"
CASE_STATUS = {"passed": "passed", "failed": "failed", "error": "failed"}  # else: not_run


# ---- run listeners -------------------------------------------------------------------------


def on_run_created(run_id: int) -> None:
    """Link the commits the run brings to the stories they name; the board then moves the
    cards whose first commit just landed."""
    run = _run(run_id)
    commits = [
        {
            "sha": commit.sha,
            "message": commit.message,
            "author": commit.author_name,
            "committed_at": commit.committed_at,
        }
        for commit in pipelines.new_commits(run)
    ]
    with transaction.atomic():
        firsts = backlog.record_commits(run.service, commits, run.number, run.branch)
    board.on_first_commit(firsts)


def on_run_finished(run_id: int) -> None:
    """Sync the feature files and record scenario results of a finished default-branch run."""
    run = _run(run_id)
    if run.branch and run.branch == pipelines.pipeline_of(run.service).default_branch:
        sync_run(run)


def _run(run_id: int) -> Run:
    # The pipelines services look runs up by service and number; listeners get the id.
    return Run.objects.select_related("service").get(pk=run_id)


# ---- the sync ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureFile:
    """One feature file at the run's commit: parsed, or the errors that kept it from it."""

    path: str
    text: str
    feature: Feature | None
    errors: tuple[str, ...]


def read_feature_files(run: Run) -> list[FeatureFile]:
    found = []
    for path, text in sorted(pipelines.repository_files(run, FEATURE_SUFFIX).items()):
        try:
            found.append(FeatureFile(path, text, parse_feature(text), ()))
        except GherkinInvalid as invalid:
            found.append(FeatureFile(path, text, None, tuple(str(e) for e in invalid.errors)))
    return found


def sync_run(run: Run) -> None:
    """Upsert one test story per feature file, mark vanished files, record the results."""
    files = read_feature_files(run)  # git work before the transaction: no lock held meanwhile
    cases = list(reports.cases_of_run(run))
    actor = system_actor()
    with transaction.atomic():
        # Serialises syncs of one service (two runs finishing together) and story numbering.
        service = Service.objects.select_for_update().get(pk=run.service_id)
        synced = {
            story.source_file: story
            for story in Story.objects.select_for_update(of=("self",))
            .select_related("service")
            .filter(service=service, kind=StoryKind.TEST)
            .exclude(source_file="")
            .order_by("id")
        }
        numbers = set(Story.objects.filter(service=service).values_list("number", flat=True))
        for file in files:
            story = synced.get(file.path)
            if file.feature is None:
                _record_errors(actor, run, file, story)
            elif story is None:
                _create(actor, run, service, file, file.feature, numbers)
            else:
                _update(actor, run, story, file, file.feature, numbers)
        present = {file.path for file in files}
        for path, story in synced.items():
            if path not in present:
                _mark_removed(actor, run, story)
        _record_results(actor, run, service, cases)


def _newer(story: Story, run: Run) -> bool:
    """Whether ``run`` is not older than the run that last synced ``story``: a slow old run
    finishing after a newer one must not bring back old text."""
    return int(story.details.get("synced", {}).get("run", 0)) <= run.number


def _tag_position(text: str, number: int) -> str:
    pattern = re.compile(rf"@S-{number}\b")
    for line_number, line in enumerate(text.splitlines(), start=1):
        match = pattern.search(line)
        if match:
            return f"{line_number}:{match.start() + 1}"
    return "1:1"


def _details(
    service: Service, run: Run, file: FeatureFile, feature: Feature, numbers: set[int]
) -> dict[str, Any]:
    """The details of a synced test story, in the shape ``backlog.services`` gives them."""
    problems = [
        f'{_tag_position(file.text, n)}: tag @S-{n} names no story of "{service.slug}"'
        for n in feature.keys
        if n not in numbers
    ]
    scenarios: list[str] = []
    for scenario in feature.scenarios:
        if scenario.name in scenarios:
            problems.append(
                f"{scenario.line}:1: scenario {scenario.name!r} appears twice: give each "
                "scenario its own name so its result can be found"
            )
        else:
            scenarios.append(scenario.name)
    details: dict[str, Any] = {
        "gherkin": file.text,
        "feature": feature.name,
        "keys": [n for n in feature.keys if n in numbers],
        "scenarios": scenarios,
        "synced": {"run": run.number, "sha": run.sha},
    }
    if problems:
        details["problems"] = problems
    return details


def _title(feature: Feature, path: str) -> str:
    return f"Feature: {feature.name or path}"[:200]


def _create(
    actor: Actor,
    run: Run,
    service: Service,
    file: FeatureFile,
    feature: Feature,
    numbers: set[int],
) -> None:
    # Not backlog.services.create_story: a synced story keeps the file's text even when a
    # tag names no story (that is recorded as a problem), where a person's edit is refused.
    details = _details(service, run, file, feature, numbers)
    now = actor.now()
    last = Story.objects.filter(service=service).aggregate(n=Max("number"), r=Max("rank"))
    story = Story.objects.create(
        service=service,
        number=(last["n"] or 0) + 1,
        kind=StoryKind.TEST,
        title=_title(feature, file.path),
        rank=(last["r"] or 0) + backlog.RANK_GAP,
        details=details,
        source_file=file.path,
        created_at=now,
        updated_at=now,
    )
    numbers.add(story.number)
    backlog.story_event(
        actor,
        story,
        "story.created",
        {"source_file": file.path, "sha": run.sha, "problems": details.get("problems", [])},
    )


def _save(actor: Actor, run: Run, story: Story, title: str, details: dict[str, Any]) -> None:
    """Store what changed, with a ``story.synced`` event naming it; nothing when nothing did."""
    before = {k: v for k, v in story.details.items() if k != "synced"}
    after = {k: v for k, v in details.items() if k != "synced"}
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if title != story.title:
        changed.insert(0, "title")
    story.details, story.title = details, title
    if not changed:
        story.save(update_fields=["details"])  # only the marker of the last synced run
        return
    story.updated_at = actor.now()
    story.save(update_fields=["details", "title", "updated_at"])
    backlog.story_event(
        actor,
        story,
        "story.synced",
        {
            "source_file": story.source_file,
            "sha": run.sha,
            "run": run.number,
            "changed": changed,
            "errors": details.get("errors", []),
            "problems": details.get("problems", []),
            "removed_in": details.get("removed_in", ""),
        },
    )


def _update(
    actor: Actor,
    run: Run,
    story: Story,
    file: FeatureFile,
    feature: Feature,
    numbers: set[int],
) -> None:
    if _newer(story, run):
        details = _details(story.service, run, file, feature, numbers)
        _save(actor, run, story, _title(feature, file.path), details)


def _record_errors(actor: Actor, run: Run, file: FeatureFile, story: Story | None) -> None:
    """A file that does not parse: its errors go on its story, which keeps the last good
    text and scenarios; a new file waits until it parses."""
    log.warning(
        "%s: %s at %s does not parse (%s)",
        run.service.slug,
        file.path,
        run.sha[:12],
        "; ".join(file.errors),
    )
    if story is None or not _newer(story, run):
        return
    kept = {k: v for k, v in story.details.items() if k not in {"errors", "removed_in"}}
    details = {**kept, "errors": list(file.errors), "synced": {"run": run.number, "sha": run.sha}}
    _save(actor, run, story, story.title, details)


def _mark_removed(actor: Actor, run: Run, story: Story) -> None:
    """A vanished file keeps its story and history; it no longer covers the stories it
    tagged (its keys move to ``removed_keys``), so their acceptance stops counting it."""
    if "removed_in" in story.details or not _newer(story, run):
        return
    details = {
        **story.details,
        "removed_in": run.sha,
        "keys": [],
        "removed_keys": story.details.get("keys", []),
        "synced": {"run": run.number, "sha": run.sha},
    }
    _save(actor, run, story, story.title, details)


# ---- scenario results ----------------------------------------------------------------------


def match_case(
    feature: str, scenario: str, cases: Sequence[TestCase], features: Iterable[str] = ()
) -> TestCase | None:
    """The test case that ran ``scenario`` of ``feature``, or None.

    Best is a case whose class is the feature and whose name is the scenario; then a case
    named after the scenario (with or without ``Scenario: ``) whose class is not another
    feature. Among equals a failure wins, so a duplicate never hides it.
    """
    others = set(features) - {feature}
    exact = [c for c in cases if c.classname == feature and c.name == scenario]
    names = {scenario, f"Scenario: {scenario}"}
    loose = [c for c in cases if c.name in names and c.classname not in others]
    found = exact or loose
    if not found:
        return None
    return min(found, key=lambda case: CASE_STATUS.get(case.status) != "failed")


def _record_results(actor: Actor, run: Run, service: Service, cases: list[TestCase]) -> None:
    stories = [
        story
        for story in Story.objects.filter(service=service, kind=StoryKind.TEST)
        .select_related("service")
        .order_by("id")
        if "removed_in" not in story.details and story.details.get("scenarios")
    ]
    features = {str(story.details.get("feature", "")) for story in stories}
    now = actor.now()
    for story in stories:
        counts = {"passed": 0, "failed": 0, "not_run": 0}
        for scenario in story.details["scenarios"]:
            case = match_case(str(story.details.get("feature", "")), scenario, cases, features)
            status = CASE_STATUS.get(case.status, "not_run") if case else "not_run"
            ScenarioResult.objects.update_or_create(
                story=story,
                scenario=scenario[:500],
                run_number=run.number,
                defaults={
                    "sha": run.sha,
                    "status": status,
                    "message": case.message if case else "no test case ran this scenario",
                    "recorded_at": now,
                },
            )
            counts[status] += 1
        backlog.story_event(
            actor,
            story,
            "story.scenarios_recorded",
            {"run": run.number, "sha": run.sha, **counts},
        )
