"""Backlog API: a service's stories of every kind, their order, checklists and SLR sheet."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from ninja.pagination import LimitOffsetPagination, paginate
from pydantic import ConfigDict

from obeya.backlog import services
from obeya.board import services as board
from obeya.board.api import CardOut, card_body
from obeya.core.actors import actor_for_request
from obeya.core.errors import InvalidInput

router = Router(tags=["backlog"])

CHECKLISTS = ("definition_of_done", "end_of_life")
SLR_TARGETS = ("availability_target", "latency_target_ms", "rpo_minutes", "rto_minutes")


class StoryOut(Schema):
    key: str
    service: str
    kind: str
    title: str
    description: str
    estimate: int | None
    rank: int
    labels: list[str]
    assignees: list[str]
    column: str
    source_file: str
    done_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AcceptanceOut(Schema):
    state: str = Field(description="passed | failed | not_run | none")
    scenarios: int
    passed: int
    tests: list[str]


class FindingOut(Schema):
    letter: str
    quality: str
    reason: str


class CommitOut(Schema):
    sha: str
    message: str
    author: str
    committed_at: datetime
    branch: str
    run_number: int | None


class ScenarioResultOut(Schema):
    story: str
    scenario: str
    status: str
    run_number: int
    sha: str
    message: str
    recorded_at: datetime


class StoryDetail(StoryOut):
    details: dict[str, Any]
    card: CardOut
    acceptance: AcceptanceOut
    findings: list[FindingOut]
    commits: list[CommitOut]
    scenario_results: list[ScenarioResultOut]


class StoryIn(Schema):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="user, test, operation, change_request or end_of_life.")
    title: str
    description: str = ""
    estimate: int | None = None
    labels: list[str] = []
    assignees: list[str] = Field([], description="Usernames.")
    details: dict[str, Any] = Field({}, description="The kind's own fields.")


class StoryPatch(Schema):
    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    description: str | None = None
    estimate: int | None = None
    labels: list[str] | None = None
    assignees: list[str] | None = None
    details: dict[str, Any] | None = Field(None, description="Only the fields to change.")


class RankIn(Schema):
    model_config = ConfigDict(extra="forbid")

    after: str | None = Field(description="The key to place it after; null for the top.")
    expected_rank: int = Field(description="The story's rank as you last saw it.")


class CheckIn(Schema):
    model_config = ConfigDict(extra="forbid")

    item: str
    checked: bool = True
    checklist: str = Field(
        "definition_of_done",
        description="definition_of_done (of the card's column) or end_of_life.",
    )


class SlrOut(Schema):
    key: str
    title: str
    availability_target: float | None
    latency_target_ms: int | None
    rpo_minutes: int | None
    rto_minutes: int | None
    backup_frequency: str
    continuity_conditions: str
    done: bool


def _summary(story: Any, column: str) -> dict[str, Any]:
    return {
        "key": story.key,
        "service": story.service.slug,
        "kind": story.kind,
        "title": story.title,
        "description": story.description,
        "estimate": story.estimate,
        "rank": story.rank,
        "labels": story.labels,
        "assignees": [user.username for user in story.assignees.all()],
        "column": column,
        "source_file": story.source_file,
        "done_at": story.done_at,
        "created_at": story.created_at,
        "updated_at": story.updated_at,
    }


def _results(story: Any) -> list[dict[str, Any]]:
    tests = [story] if story.kind == "test" else list(services.linked_test_stories(story))
    return [
        {
            "story": test.key,
            "scenario": result.scenario,
            "status": result.status,
            "run_number": result.run_number,
            "sha": result.sha,
            "message": result.message,
            "recorded_at": result.recorded_at,
        }
        for test in tests
        for result in services.latest_results(test)
    ]


def story_detail(story: Any) -> dict[str, Any]:
    card = board.card_of(story)
    commits = [
        {
            "sha": commit.sha,
            "message": commit.message,
            "author": commit.author,
            "committed_at": commit.committed_at,
            "branch": commit.branch,
            "run_number": commit.run_number,
        }
        for commit in story.commits.all()[:100]
    ]
    return {
        **_summary(story, card.column.name),
        "details": story.details,
        "card": card_body(card),
        "acceptance": services.acceptance(story),
        "findings": [asdict(finding) for finding in services.findings(story)],
        "commits": commits,
        "scenario_results": _results(story),
    }


def _fresh(slug: str, key: str) -> dict[str, Any]:
    return story_detail(services.get_story(slug, key))


@router.get("/services/{slug}/stories", response=list[StoryOut], summary="A service's backlog")
@paginate(LimitOffsetPagination)
def list_stories(
    request: HttpRequest, slug: str, kind: str = "", label: str = "", search: str = ""
) -> Any:
    stories = services.list_stories(slug, kind=kind, label=label, search=search)
    placed = {
        card.story.key: entry["column"].name
        for entry in board.board(slug)["columns"]
        for card in entry["cards"]
    }
    return [_summary(story, placed.get(story.key, "")) for story in stories]


@router.post("/services/{slug}/stories", response={201: StoryDetail}, summary="Add a story")
def create_story(request: HttpRequest, slug: str, payload: StoryIn) -> Status[Any]:
    fields = payload.model_dump()
    story = services.create_story(
        actor_for_request(request, "api"), slug, fields.pop("kind"), fields.pop("title"), **fields
    )
    return Status(201, _fresh(slug, story.key))


@router.get("/services/{slug}/stories/{key}", response=StoryDetail, summary="One story in full")
def get_story(request: HttpRequest, slug: str, key: str) -> dict[str, Any]:
    return _fresh(slug, key)


@router.patch("/services/{slug}/stories/{key}", response=StoryDetail, summary="Edit a story")
def update_story(request: HttpRequest, slug: str, key: str, payload: StoryPatch) -> dict[str, Any]:
    fields = payload.model_dump(exclude_unset=True)
    services.update_story(actor_for_request(request, "api"), slug, key, **fields)
    return _fresh(slug, key)


@router.post(
    "/services/{slug}/stories/{key}/rank",
    response=StoryDetail,
    summary="Move a story in the backlog order (after another, or to the top)",
)
def reorder(request: HttpRequest, slug: str, key: str, payload: RankIn) -> dict[str, Any]:
    services.reorder(
        actor_for_request(request, "api"),
        slug,
        key,
        after=payload.after,
        expected_rank=payload.expected_rank,
    )
    return _fresh(slug, key)


@router.post(
    "/services/{slug}/stories/{key}/checks",
    response=StoryDetail,
    summary="Tick or untick a checklist item: the column's definition of done, or end of life",
)
def check_item(request: HttpRequest, slug: str, key: str, payload: CheckIn) -> dict[str, Any]:
    actor = actor_for_request(request, "api")
    if payload.checklist == "definition_of_done":
        board.check_item(actor, slug, key, payload.item, payload.checked)
    elif payload.checklist == "end_of_life":
        index = _end_of_life_index(services.get_story(slug, key), payload.item)
        services.check_end_of_life_item(actor, slug, key, index, payload.checked)
    else:
        raise InvalidInput(
            f"unknown checklist {payload.checklist!r}: use {' or '.join(CHECKLISTS)}",
            field="checklist",
        )
    return _fresh(slug, key)


def _end_of_life_index(story: Any, item: str) -> int:
    if story.kind != "end_of_life":
        raise InvalidInput(f"{story.key} is not an end-of-life story", field="checklist")
    texts = [entry["text"] for entry in story.details.get("checklist", [])]
    if item not in texts:
        raise InvalidInput(
            f"{story.key} has no end-of-life checklist item {item!r}: "
            f"its items are {'; '.join(texts) or 'none'}",
            field="item",
        )
    return texts.index(item)


@router.get(
    "/services/{slug}/slr",
    response=list[SlrOut],
    summary="The service-level requirements sheet: every operation story",
)
def slr_sheet(request: HttpRequest, slug: str) -> list[dict[str, Any]]:
    return [
        {
            "key": story.key,
            "title": story.title,
            **{name: story.details.get(name) for name in SLR_TARGETS},
            "backup_frequency": story.details.get("backup_frequency") or "",
            "continuity_conditions": story.details.get("continuity_conditions") or "",
            "done": story.done_at is not None,
        }
        for story in services.slr_sheet(slug)
    ]
