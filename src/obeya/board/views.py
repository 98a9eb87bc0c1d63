"""The board page: a service's columns and cards, moves under WIP limits and gates."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.views.decorators.http import require_POST

from obeya.backlog import services as backlog
from obeya.backlog.views import ACCEPTANCE_WORDS, KIND_LABELS
from obeya.board import logic
from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.core.actors import actor_for_request
from obeya.core.errors import InvalidInput, ObeyaError
from obeya.core.roles import Permission

FLOW_CHARTS = "board/_flow_charts.html"


def _not_found(request: HttpRequest, error: ObeyaError) -> HttpResponse:
    return render(request, "catalog/not_found.html", {"message": error.message}, status=404)


def _flow_charts_ready() -> bool:
    """Whether the flow charts partial is installed (it is written apart from this page)."""
    try:
        get_template(FLOW_CHARTS)
    except TemplateDoesNotExist:
        return False
    return True


def _card(card: Any, verdicts: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {
        "card": card,
        "story": card.story,
        "acceptance": verdicts.get(card.story_id, {"state": "none"})["state"],
        "checklist": [(item, item in card.checked) for item in card.column.done_checklist],
        "assignees": [user.username for user in card.story.assignees.all()],
    }


def _board_page(
    request: HttpRequest,
    slug: str,
    *,
    refused: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        data = board.board(slug)
    except ObeyaError as error:
        return _not_found(request, error)
    service = data["service"]
    verdicts = backlog.acceptances(service)
    columns = [
        {
            **column,
            "cards": [_card(card, verdicts) for card in column["cards"]],
            "gates": [logic.GATES.get(gate, gate) for gate in column["column"].gates],
        }
        for column in data["columns"]
    ]
    return render(
        request,
        "board/board.html",
        {
            "service": service,
            "columns": columns,
            "column_names": [column["column"].name for column in columns],
            "kind_labels": KIND_LABELS,
            "acceptance_words": ACCEPTANCE_WORDS,
            "refused": refused,
            "can_move": catalog.can(actor_for_request(request), service, Permission.EDIT_BACKLOG),
            "flow_charts": _flow_charts_ready(),
            "flow_url": f"/api/services/{slug}/flow?days=90",
        },
        status=status,
    )


@login_required
def board_page(request: HttpRequest, slug: str) -> HttpResponse:
    return _board_page(request, slug)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_POST
def card_move(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """Move a card; a full column asks for a reason, a failed gate says why not."""
    column = request.POST.get("column", "")
    # Absent means "no override asked"; present but blank is refused by the service.
    reason = request.POST.get("override_reason")
    position = request.POST.get("position", "")
    try:
        if position and not position.isdigit():
            raise InvalidInput("position must be a whole number", field="position")
        card = board.move_card(
            actor_for_request(request),
            slug,
            key,
            column,
            position=int(position) if position else None,
            override_reason=reason,
        )
    except ObeyaError as error:
        if _wants_json(request):
            return JsonResponse(error.as_dict(), status=error.status)
        refused = {
            "key": key,
            "message": error.message,
            "code": error.code,
            "column": column,
            "override_reason": reason or "",
        }
        return _board_page(request, slug, refused=refused, status=error.status)
    moved = f"{key} is in “{card.column.name}”."
    if _wants_json(request):
        return JsonResponse({"key": key, "column": card.column.name, "message": moved})
    messages.success(request, moved)
    return redirect(f"/services/{slug}/board/#card-{key}")


@login_required
@require_POST
def card_check(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """Tick or untick a definition-of-done item on a card."""
    item = request.POST.get("item", "")
    checked = request.POST.get("checked") in {"1", "on", "true"}
    try:
        board.check_item(actor_for_request(request), slug, key, item, checked)
    except ObeyaError as error:
        refused = {"key": key, "message": error.message, "code": error.code, "column": ""}
        return _board_page(request, slug, refused=refused, status=error.status)
    return redirect(f"/services/{slug}/board/#card-{key}")
