"""The board page: a service's columns and cards, moves under WIP limits and gates."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_POST

import obeya
from obeya.backlog import services as backlog
from obeya.backlog.views import ACCEPTANCE_WORDS, KIND_LABELS
from obeya.board import logic, reading
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


def _columns_html(
    slug: str, *, can_move: bool, show_all: bool, refused: dict[str, Any] | None
) -> tuple[str, str]:
    """The board's columns as HTML, and the slot in it where the CSRF token goes.

    Rendering 250 cards takes far longer than serving a page, so the HTML is kept until the
    board's next change (its version is read first: a change landing while the HTML is
    rendered only makes the next request render it again). A refusal is never kept.
    """
    version = reading.board_version(slug)

    def build() -> tuple[str, str]:
        return _render_columns(slug, can_move=can_move, show_all=show_all, refused=refused)

    if refused is not None:
        return build()
    key = f"obeya:{obeya.__version__}:board-page:{slug}:{int(can_move)}:{int(show_all)}"
    return reading.kept_for_version(key, version, build)


def _render_columns(
    slug: str, *, can_move: bool, show_all: bool, refused: dict[str, Any] | None
) -> tuple[str, str]:
    data = reading.board_page(slug, shown=None if show_all else reading.CARDS_SHOWN)
    shown = [card.story for column in data["columns"] for card in column["cards"]]
    verdicts = backlog.acceptances(data["service"], among=shown)
    columns = [
        {
            **column,
            "cards": [_card(card, verdicts) for card in column["cards"]],
            "gates": [logic.GATES.get(gate, gate) for gate in column["column"].gates],
        }
        for column in data["columns"]
    ]
    slot = secrets.token_urlsafe(24)
    html = render_to_string(
        "board/_columns.html",
        {
            "service": data["service"],
            "columns": columns,
            "column_names": [column["column"].name for column in columns],
            "kind_labels": KIND_LABELS,
            "acceptance_words": ACCEPTANCE_WORDS,
            "refused": refused,
            "can_move": can_move,
            "show_all": show_all,
            "shown": reading.CARDS_SHOWN,
            "csrf_token": slot,
        },
    )
    return html, slot


def _board_page(
    request: HttpRequest,
    slug: str,
    *,
    refused: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        service = catalog.get_service(slug)
        can_move = catalog.can(actor_for_request(request), service, Permission.EDIT_BACKLOG)
        html, slot = _columns_html(
            slug, can_move=can_move, show_all=request.GET.get("all") == "1", refused=refused
        )
    except ObeyaError as error:
        return _not_found(request, error)
    return render(
        request,
        "board/board.html",
        {
            "service": service,
            # The token of this visitor, in each card's forms.
            "columns_html": mark_safe(html.replace(slot, get_token(request))),  # noqa: S308
            "can_move": can_move,
            "flow_charts": _flow_charts_ready(),
            "flow_url": f"/api/services/{slug}/flow?days=90",
        },
        status=status,
    )


@login_required
@gzip_page  # 2,000 cards' columns: 130-230 KB of HTML, 15 KB gzipped
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
