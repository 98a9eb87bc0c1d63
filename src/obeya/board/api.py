"""Board API: a service's Kanban columns with their WIP limits, and moving cards across them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import ConfigDict

from obeya.board import services
from obeya.core.actors import actor_for_request
from obeya.core.errors import Conflict, InvalidInput

router = Router(tags=["board"])


class ChecklistItemOut(Schema):
    item: str
    checked: bool


class CardOut(Schema):
    key: str
    title: str
    kind: str
    estimate: int | None
    labels: list[str]
    assignees: list[str]
    column: str
    position: int
    entered_at: datetime
    checklist: list[ChecklistItemOut]
    gates: list[str]
    override_reason: str
    override_by: str


class ColumnOut(Schema):
    name: str
    position: int
    wip: str = Field(description='Cards in the column over its limit, as "3/3"; "3" without one.')
    wip_limit: int | None
    full: bool
    starts_work: bool
    is_done: bool
    receives_first_commit: bool
    done_checklist: list[str]
    gates: list[str]
    cards: list[CardOut]


class BoardOut(Schema):
    service: str
    columns: list[ColumnOut]


class MoveIn(Schema):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="The name of a column of this service's board.")
    position: int | None = Field(None, ge=0, le=1_000_000, description="Place in the column.")
    override_reason: str | None = Field(
        None, description="Why the card may enter a full column; recorded and shown on it."
    )


class ColumnPatch(Schema):
    model_config = ConfigDict(extra="forbid")

    wip_limit: int | None = Field(None, le=10_000, description="null for no limit.")
    done_checklist: list[str] | None = None
    gates: list[str] | None = None
    rename: str | None = None
    starts_work: bool | None = None
    is_done: bool | None = None
    receives_first_commit: bool | None = None


def card_body(card: Any) -> dict[str, Any]:
    story, column = card.story, card.column
    return {
        "key": story.key,
        "title": story.title,
        "kind": story.kind,
        "estimate": story.estimate,
        "labels": story.labels,
        "assignees": [user.username for user in story.assignees.all()],
        "column": column.name,
        "position": card.position,
        "entered_at": card.entered_at,
        "checklist": [
            {"item": item, "checked": item in card.checked} for item in column.done_checklist
        ],
        "gates": column.gates,
        "override_reason": card.override_reason,
        "override_by": card.override_by,
    }


def _column_body(entry: dict[str, Any]) -> dict[str, Any]:
    column = entry["column"]
    return {
        "name": column.name,
        "position": column.position,
        "wip": entry["wip"],
        "wip_limit": column.wip_limit,
        "full": entry["full"],
        "starts_work": column.starts_work,
        "is_done": column.is_done,
        "receives_first_commit": column.receives_first_commit,
        "done_checklist": column.done_checklist,
        "gates": column.gates,
        "cards": [card_body(card) for card in entry["cards"]],
    }


def board_body(slug: str) -> dict[str, Any]:
    found = services.board(slug)
    return {
        "service": found["service"].slug,
        "columns": [_column_body(entry) for entry in found["columns"]],
    }


@router.get("/services/{slug}/board", response=BoardOut, summary="The service's board")
def get_board(request: HttpRequest, slug: str) -> dict[str, Any]:
    return board_body(slug)


@router.patch(
    "/services/{slug}/board/columns/{name}",
    response=ColumnOut,
    summary="Configure a column: WIP limit, definition of done, flags, name",
)
def configure_column(
    request: HttpRequest, slug: str, name: str, payload: ColumnPatch
) -> dict[str, Any]:
    # null means "no change", except for the WIP limit, where it means "no limit".
    fields = {
        key: value
        for key, value in payload.model_dump(exclude_unset=True).items()
        if value is not None or key == "wip_limit"
    }
    if "rename" in fields:
        fields["rename"] = _new_name(slug, name, fields["rename"])
    column = services.configure_column(actor_for_request(request, "api"), slug, name, **fields)
    board = board_body(slug)
    return next(entry for entry in board["columns"] if entry["name"] == column.name)


def _new_name(slug: str, name: str, rename: str) -> str:
    wanted = rename.strip()
    if not wanted or len(wanted) > 60:
        raise InvalidInput("a column needs a name of 1-60 characters", field="rename")
    names = {column.name for column in services.columns_of(slug)}
    if name in names and wanted != name and wanted in names:
        raise Conflict(
            f'the board of "{slug}" already has a column "{wanted}": pick another name',
            field="rename",
        )
    return wanted


@router.post(
    "/services/{slug}/stories/{key}/moves",
    response={201: CardOut},
    summary="Move a story's card to another column",
)
def move_card(request: HttpRequest, slug: str, key: str, payload: MoveIn) -> Status[Any]:
    card = services.move_card(
        actor_for_request(request, "api"),
        slug,
        key,
        payload.column,
        position=payload.position,
        override_reason=payload.override_reason,
    )
    return Status(201, card_body(card))
