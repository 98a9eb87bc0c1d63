"""The board page: a service's columns and cards, moves under WIP limits and gates."""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CSRF_TOKEN_LENGTH, get_token
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

import obeya
from obeya.backlog import services as backlog
from obeya.backlog.views import ACCEPTANCE_WORDS, KIND_LABELS
from obeya.board import logic, reading
from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.core.actors import actor_for_request
from obeya.core.errors import InvalidInput, ObeyaError
from obeya.core.roles import Permission
from obeya.web import gzip_slots

FLOW_CHARTS = "board/_flow_charts.html"
BOARD_MARK = "<!-- the board -->"
ACCEPTS_GZIP = re.compile(r"\bgzip\b")


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


# The slot the board part's CSRF token goes in: a marker split out of the part before it is
# kept (gzip_slots), so it never reaches a reader; one per process, so that a card's HTML
# can be kept across versions of the board.
_SLOT = secrets.token_urlsafe(24)
# A card's HTML is ~1.5 KB: ~12 MB a process at most, a 2,000-card board shown whole to
# those who may move cards and those who may not.
MAX_CARDS_KEPT = 8_000


class _CardsKept:
    """Each card's HTML, by everything board/_card.html shows of it: after a move, the
    board part is built again, but only the cards the move changed are rendered again
    (rendering a card costs ~0.2 ms; a board shows up to 250 of them). The oldest are
    dropped past ``MAX_CARDS_KEPT``."""

    def __init__(self) -> None:
        self._html: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._lock = threading.Lock()

    def html(self, key: tuple[Any, ...], render: Callable[[], str]) -> str:
        with self._lock:
            found = self._html.get(key)
            if found is not None:
                self._html.move_to_end(key)
                return found
        made = render()
        with self._lock:
            self._html[key] = made
            while len(self._html) > MAX_CARDS_KEPT:
                self._html.popitem(last=False)
        return made


_cards_kept = _CardsKept()


def _card_html(entry: dict[str, Any], context: dict[str, Any], *, keep: bool) -> str:
    """board/_card.html for one card (``context``: the board's own part of what it shows)."""
    template = get_template("board/_card.html")

    def render() -> str:
        return template.render({**context, "c": entry})

    if not keep:
        return render()
    card, story = entry["card"], entry["story"]
    key = (
        story.pk,
        story.key,
        story.kind,
        story.title,
        entry["acceptance"],
        tuple(entry["assignees"]),
        tuple(entry["checklist"]),
        card.override_reason,
        card.override_by,
        card.column.name,
        tuple(context["column_names"]),
        context["can_move"],
        context["service"].slug,
    )
    return _cards_kept.html(key, render)


def _board_part(
    slug: str,
    version: int,
    *,
    can_move: bool,
    show_all: bool,
    refused: dict[str, Any] | None,
) -> gzip_slots.SlottedText:
    """The page's board part (board/_board.html: the columns, the WIP override dialog, the
    flow charts) as UTF-8 HTML with a slot wherever the reader's CSRF token goes, and
    compressed once (see obeya.web.gzip_slots).

    Rendering 250 cards takes far longer than serving a page, so the part is kept until
    the board's next change (its version is read first: a change landing while it is
    rendered only makes the next request render it again), one variant for those who may
    move cards and one for those who may not. Nothing else in it depends on who is looking.
    A refusal is never kept.
    """
    flow_charts = _flow_charts_ready()

    def build() -> gzip_slots.SlottedText:
        return _render_board_part(
            slug, can_move=can_move, show_all=show_all, refused=refused, flow_charts=flow_charts
        )

    if refused is not None:
        return build()
    variant = f"{int(can_move)}:{int(show_all)}:{int(flow_charts)}"
    key = f"obeya:{obeya.__version__}:board-part:{slug}:{variant}"
    return reading.kept_for_version(key, version, build)


def _render_board_part(
    slug: str,
    *,
    can_move: bool,
    show_all: bool,
    refused: dict[str, Any] | None,
    flow_charts: bool,
) -> gzip_slots.SlottedText:
    data = reading.board_page(slug, shown=None if show_all else reading.CARDS_SHOWN)
    shown = [card.story for column in data["columns"] for card in column["cards"]]
    verdicts = backlog.acceptances(data["service"], among=shown)
    card_context = {
        "service": data["service"],
        "column_names": [column["column"].name for column in data["columns"]],
        "kind_labels": KIND_LABELS,
        "acceptance_words": ACCEPTANCE_WORDS,
        "refused": refused,
        "can_move": can_move,
        "csrf_token": _SLOT,
    }
    columns = [
        {
            **column,
            "cards": [
                mark_safe(  # noqa: S308 (rendered by the template engine, which escapes)
                    _card_html(_card(card, verdicts), card_context, keep=refused is None)
                )
                for card in column["cards"]
            ],
            "gates": [logic.GATES.get(gate, gate) for gate in column["column"].gates],
        }
        for column in data["columns"]
    ]
    html = render_to_string(
        "board/_board.html",
        {
            **card_context,
            "columns": columns,
            "show_all": show_all,
            "shown": reading.CARDS_SHOWN,
            "flow_charts": flow_charts,
            "flow_url": f"/api/services/{slug}/flow?days=90",
        },
    )
    return gzip_slots.slotted(html.encode().split(_SLOT.encode()), CSRF_TOKEN_LENGTH)


def _board_page(
    request: HttpRequest,
    slug: str,
    *,
    refused: dict[str, Any] | None = None,
    status: int = 200,
    gzip: bool = False,
) -> HttpResponse:
    """The page: its heading and the site's layout rendered around the kept board part,
    which gets this reader's CSRF token; gzipped when ``gzip`` (the board part compressed
    once, the rest now)."""
    try:
        service, version = reading.service_and_version(slug)  # read before the board
        can_move = catalog.can(actor_for_request(request), service, Permission.EDIT_BACKLOG)
        show_all = request.GET.get("all") == "1"
        part = _board_part(slug, version, can_move=can_move, show_all=show_all, refused=refused)
    except ObeyaError as error:
        return _not_found(request, error)
    # One token for the whole page, rather than a second one from the context processor:
    # each masking draws 32 random characters from the OS.
    token = get_token(request)
    response = render(
        request,
        "board/board.html",
        {
            "csrf_token": token,
            "service": service,
            "board_html": mark_safe(BOARD_MARK),  # noqa: S308 (a constant)
            "can_move": can_move,
        },
        status=status,
    )
    # Escaped text holds no "<": the first mark is the template's.
    head, _, tail = response.content.partition(BOARD_MARK.encode())
    if gzip:
        response.content = gzip_slots.gzipped(head, part, token.encode(), tail)
        response["Content-Encoding"] = "gzip"
    else:
        response.content = head + part.filled(token.encode()) + tail
    return response


@login_required
@vary_on_headers("Accept-Encoding")
def board_page(request: HttpRequest, slug: str) -> HttpResponse:
    # 2,000 cards' columns: 120-220 KB of HTML, 6-15 KB gzipped.
    gzip = ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")) is not None
    return _board_page(request, slug, gzip=gzip)


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
