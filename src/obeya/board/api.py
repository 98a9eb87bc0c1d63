"""Board API: a service's Kanban columns with their WIP limits, and moving cards across them."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers
from django.utils.text import compress_string
from ninja import Field, Router, Schema, Status
from ninja.responses import NinjaJSONEncoder
from pydantic import ConfigDict

import obeya
from obeya.board import logic, reading, services
from obeya.core.actors import actor_for_request
from obeya.core.errors import Conflict, InvalidInput

router = Router(tags=["board"])

JSON_TYPE = "application/json; charset=utf-8"
ACCEPTS_GZIP = re.compile(r"\bgzip\b")


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


def board_body(slug: str) -> dict[str, Any]:
    service, columns = reading.board_rows(slug)
    body = []
    for column, cards in columns:
        count = len(cards)
        entry = {
            "name": column.name,
            "position": column.position,
            "wip": logic.wip_text(count, column.wip_limit),
            "wip_limit": column.wip_limit,
            "full": column.wip_limit is not None and count >= column.wip_limit,
            "starts_work": column.starts_work,
            "is_done": column.is_done,
            "receives_first_commit": column.receives_first_commit,
            "done_checklist": column.done_checklist,
            "gates": column.gates,
            "cards": [_row_body(card, column) for card in cards],
        }
        body.append(entry)
    return {"service": service.slug, "columns": body}


def _row_body(card: reading.CardRow, column: Any) -> dict[str, Any]:
    return {
        "key": card.key,
        "title": card.title,
        "kind": card.kind,
        "estimate": card.estimate,
        "labels": card.labels,
        "assignees": card.assignees,
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


def board_json(slug: str) -> tuple[bytes, bytes]:
    """The board as JSON, plain and gzipped, kept until the board's next change.

    The version is read first, so a change landing while the JSON is built only makes the
    next request build it again. ``board_body`` has the shape of ``BoardOut`` (tests hold it
    to the schema): 2,000 cards are not validated again on every request. Gzip takes the
    JSON of 2,000 cards from 540 KB to 40 KB, compressed once a version.
    """
    version = reading.board_version(slug)

    def build() -> tuple[bytes, bytes]:
        plain = json.dumps(board_body(slug), cls=NinjaJSONEncoder).encode()
        return plain, compress_string(plain)

    return reading.kept_for_version(f"obeya:{obeya.__version__}:board-json:{slug}", version, build)


@router.get("/services/{slug}/board", response=BoardOut, summary="The service's board")
def get_board(request: HttpRequest, slug: str) -> HttpResponse:
    plain, packed = board_json(slug)
    gzipped = ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")) is not None
    response = HttpResponse(packed if gzipped else plain, content_type=JSON_TYPE)
    if gzipped:
        response["Content-Encoding"] = "gzip"
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


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
