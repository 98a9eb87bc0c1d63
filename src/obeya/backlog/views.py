"""Backlog pages: a service's stories in rank order, one story, and the SLR sheet."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from obeya.backlog import kinds
from obeya.backlog import services as backlog
from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.core import events
from obeya.core.actors import actor_for_request
from obeya.core.errors import InvalidInput, ObeyaError
from obeya.core.roles import Permission

KIND_LABELS = {
    "user": "User story",
    "test": "Test story",
    "operation": "Operation",
    "change_request": "Change request",
    "end_of_life": "End of life",
}
ACCEPTANCE_WORDS = {"passed": "passed", "failed": "failed", "not_run": "not run", "none": "none"}
COMMON_FIELDS = ("title", "description", "estimate", "labels", "assignees")
KIND_FIELDS = tuple(name for fields in kinds.FIELDS.values() for name in fields)
CHANGE_SOURCES = [(value, value.replace("_", " ")) for value in kinds.CHANGE_SOURCES]
TIMELINE_LENGTH = 100


def _not_found(request: HttpRequest, error: ObeyaError) -> HttpResponse:
    return render(request, "catalog/not_found.html", {"message": error.message}, status=404)


def _form_values(data: QueryDict) -> dict[str, str]:
    """Everything the story form sent, every kind's fields too: a refused form comes back
    as typed, even the fields of a kind the person looked at and left."""
    return {name: data.get(name, "") for name in ("kind", *COMMON_FIELDS, *KIND_FIELDS)}


def _checklist(text: str, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per line; an item already ticked keeps its tick when the text stays."""
    ticked = {item["text"] for item in before if item.get("done")}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [{"text": line, "done": line in ticked} for line in lines]


def _story_fields(values: dict[str, str], kind: str, before: dict[str, Any]) -> dict[str, Any]:
    """The service's keyword arguments from the form: common fields and the kind's details."""
    details: dict[str, Any] = {name: values[name] for name in kinds.FIELDS.get(kind, {})}
    if "checklist" in details:
        details["checklist"] = _checklist(values["checklist"], before.get("checklist", []))
    return {
        "description": values["description"],
        "estimate": values["estimate"],
        "labels": values["labels"],
        "assignees": [name.strip() for name in values["assignees"].split(",") if name.strip()],
        "details": details,
    }


def _story_values(story: Any) -> dict[str, str]:
    """A story as the edit form shows it."""
    values = {name: "" for name in ("kind", *COMMON_FIELDS, *KIND_FIELDS)}
    values.update(
        kind=story.kind,
        title=story.title,
        description=story.description,
        estimate="" if story.estimate is None else str(story.estimate),
        labels=", ".join(story.labels),
        assignees=", ".join(user.username for user in story.assignees.all()),
    )
    for name in kinds.FIELDS[story.kind]:
        value = story.details.get(name)
        if name == "checklist":
            value = "\n".join(item["text"] for item in value or [])
        values[name] = "" if value is None else f"{value:g}" if isinstance(value, float) else value
    return values


def _new_values() -> dict[str, str]:
    values = {name: "" for name in ("kind", *COMMON_FIELDS, *KIND_FIELDS)}
    values.update(
        kind="user",
        source=kinds.DEFAULTS["change_request"]["source"],
        checklist="\n".join(kinds.DEFAULTS["end_of_life"]["checklist"]),
    )
    return values


def _refusal(error: ObeyaError) -> dict[str, Any]:
    return {"message": error.message, "field": error.field or "", "code": error.code}


# ---- the backlog -----------------------------------------------------------------------


def _backlog_page(
    request: HttpRequest,
    slug: str,
    *,
    values: dict[str, str] | None = None,
    refused: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        service = catalog.get_service(slug)
    except ObeyaError as error:
        return _not_found(request, error)
    kind = request.GET.get("kind", "")
    label = request.GET.get("label", "").strip()
    search = request.GET.get("q", "").strip()
    try:
        stories = list(backlog.list_stories(slug, kind=kind, label=label, search=search))
    except ObeyaError as error:
        messages.error(request, error.message)
        kind, stories = "", list(backlog.list_stories(slug, label=label, search=search))
    keys = [story.key for story in stories]
    verdicts = backlog.acceptances(service) if stories else {}
    rows = [
        {
            "story": story,
            "acceptance": verdicts[story.pk]["state"],
            "findings": len(backlog.findings(story, verdicts[story.pk]))
            if story.kind == "user"
            else None,
            # Without a mouse: "up" goes after the story two above (or to the top).
            "up_after": (keys[i - 2] if i >= 2 else "") if i > 0 else None,
            "down_after": keys[i + 1] if i + 1 < len(keys) else None,
        }
        for i, story in enumerate(stories)
    ]
    actor = actor_for_request(request)
    filtered = bool(kind or label or search)
    return render(
        request,
        "backlog/backlog.html",
        {
            "service": service,
            "rows": rows,
            "kind": kind,
            "label": label,
            "q": search,
            "filtered": filtered,
            "kinds": list(KIND_LABELS.items()),
            "kind_labels": KIND_LABELS,
            "acceptance_words": ACCEPTANCE_WORDS,
            "change_sources": CHANGE_SOURCES,
            "values": values or {**_new_values(), "kind": kind or "user"},
            "refused": refused,
            "can_edit": catalog.can(actor, service, Permission.EDIT_BACKLOG),
            "can_order": catalog.can(actor, service, Permission.ORDER_BACKLOG),
        },
        status=status,
    )


@login_required
def backlog_page(request: HttpRequest, slug: str) -> HttpResponse:
    return _backlog_page(request, slug)


@login_required
@require_POST
def story_new(request: HttpRequest, slug: str) -> HttpResponse:
    values = _form_values(request.POST)
    kind = values["kind"]
    try:
        story = backlog.create_story(
            actor_for_request(request),
            slug,
            kind,
            values["title"],
            **_story_fields(values, kind, {}),
        )
    except ObeyaError as error:
        return _backlog_page(
            request, slug, values=values, refused=_refusal(error), status=error.status
        )
    messages.success(request, f"{story.key} “{story.title}” added at the bottom of the backlog.")
    return redirect(f"/services/{slug}/backlog/#story-{story.key}")


def _reorder_answer(request: HttpRequest, slug: str, error: ObeyaError | None) -> HttpResponse:
    if "application/json" in request.headers.get("Accept", ""):
        if error is not None:
            return JsonResponse(error.as_dict(), status=error.status)
        return JsonResponse({"ok": True})
    if error is not None:
        messages.error(request, error.message)
    else:
        messages.success(request, "Backlog order saved.")
    return redirect(f"/services/{slug}/backlog/")


@login_required
@require_POST
def story_reorder(request: HttpRequest, slug: str) -> HttpResponse:
    """Move one story after another (or to the top), refused if it moved meanwhile."""
    key = request.POST.get("key", "")
    after = request.POST.get("after", "").strip() or None
    try:
        expected = request.POST.get("expected_rank", "")
        if not expected.lstrip("-").isdigit():
            raise InvalidInput(
                "expected_rank must be the rank the story had when the page was shown",
                field="expected_rank",
            )
        backlog.reorder(
            actor_for_request(request), slug, key, after=after, expected_rank=int(expected)
        )
    except ObeyaError as error:
        return _reorder_answer(request, slug, error)
    return _reorder_answer(request, slug, None)


@login_required
def slr_sheet(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        service = catalog.get_service(slug)
    except ObeyaError as error:
        return _not_found(request, error)
    rows = [
        {"story": story, "acceptance": backlog.acceptance(story)["state"]}
        for story in backlog.slr_sheet(slug)
    ]
    return render(
        request,
        "backlog/slr_sheet.html",
        {"service": service, "rows": rows, "acceptance_words": ACCEPTANCE_WORDS},
    )


# ---- one story -------------------------------------------------------------------------

_GHERKIN_KEYWORD = re.compile(
    r"^(\s*)(Feature|Rule|Background|Scenario Outline|Scenario Template|Scenario|Example|"
    r"Examples|Scenarios|Given|When|Then|And|But|\*)(:?)(?=\s|$)"
)
_GHERKIN_TAG = re.compile(r"(?<![\w@])(@[^\s@]+)")


def highlight_gherkin(text: str) -> SafeString:
    """Feature text as HTML, with its keywords, tags and comments in spans (escaped first)."""
    lines = []
    for raw in text.splitlines():
        line = str(escape(raw))
        if raw.lstrip().startswith("#"):
            lines.append(f'<span class="gk-comment">{line}</span>')
            continue
        if raw.lstrip().startswith("@"):
            lines.append(_GHERKIN_TAG.sub(r'<span class="gk-tag">\1</span>', line))
            continue
        lines.append(_GHERKIN_KEYWORD.sub(r'\1<span class="gk-keyword">\2\3</span>', line))
    return mark_safe("\n".join(lines))  # noqa: S308 - every line was escaped above


def _scenario_rows(story: Any, tests: list[Any]) -> list[dict[str, Any]]:
    """Each scenario behind a story with its latest result (None: never run)."""
    rows: list[dict[str, Any]] = []
    for test in [story] if story.kind == "test" else tests:
        latest = {result.scenario: result for result in backlog.latest_results(test)}
        rows.extend(
            {"test": test, "name": name, "result": latest.get(name)}
            for name in test.details.get("scenarios", [])
        )
    return rows


def _story_context(request: HttpRequest, story: Any) -> dict[str, Any]:
    slug = story.service.slug
    actor = actor_for_request(request)
    acceptance = backlog.acceptance(story)
    subject = f"story:{slug}/{story.key}"
    tests = list(backlog.linked_test_stories(story)) if story.kind == "user" else []
    return {
        "service": story.service,
        "story": story,
        "kind_label": KIND_LABELS[story.kind],
        "acceptance": acceptance,
        "acceptance_words": ACCEPTANCE_WORDS,
        "change_sources": CHANGE_SOURCES,
        "findings": backlog.findings(story),
        "scenarios": _scenario_rows(story, tests),
        "gherkin": highlight_gherkin(story.details.get("gherkin", ""))
        if story.kind == "test"
        else "",
        "linked_tests": [
            {"story": test, "acceptance": backlog.acceptance(test)["state"]} for test in tests
        ],
        "commits": list(story.commits.all()[:50]),
        "column": board.card_of(story).column,
        "assignees": [user.username for user in story.assignees.all()],
        "checklist": list(enumerate(story.details.get("checklist", []))),
        "timeline": list(events.timeline(subject=subject).order_by("-id")[:TIMELINE_LENGTH]),
        "values": _story_values(story),
        "can_edit": catalog.can(actor, story.service, Permission.EDIT_BACKLOG),
    }


def _story_page(
    request: HttpRequest,
    slug: str,
    key: str,
    *,
    values: dict[str, str] | None = None,
    refused: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        story = backlog.get_story(slug, key)
    except ObeyaError as error:
        return _not_found(request, error)
    context = _story_context(request, story)
    context["edit"] = request.GET.get("edit") == "1" or (
        refused is not None and refused.get("section") == "story"
    )
    if values:
        context["values"] = {**context["values"], **values}
    context["refused"] = refused
    return render(request, "backlog/story_detail.html", context, status=status)


@login_required
def story_page(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    return _story_page(request, slug, key)


@login_required
@require_POST
def story_edit(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    values = _form_values(request.POST)
    try:
        story = backlog.get_story(slug, key)
        fields = _story_fields(values, story.kind, story.details)
        # The service counts assignees as changed whenever they are sent: send them only
        # when they did change, so the timeline says what really changed.
        if fields["assignees"] == [user.username for user in story.assignees.all()]:
            del fields["assignees"]
        backlog.update_story(actor_for_request(request), slug, key, title=values["title"], **fields)
    except ObeyaError as error:
        refused = {**_refusal(error), "section": "story"}
        return _story_page(request, slug, key, values=values, refused=refused, status=error.status)
    messages.success(request, f"{key} saved.")
    return redirect(f"/services/{slug}/backlog/{key}/")


@login_required
@require_POST
def story_checklist(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """Tick or untick an item of an end-of-life checklist."""
    index = request.POST.get("index", "")
    done = request.POST.get("done") in {"1", "on", "true"}
    try:
        if not index.isdigit():
            raise InvalidInput("which checklist item? send its index", field="index")
        backlog.check_end_of_life_item(actor_for_request(request), slug, key, int(index), done)
    except ObeyaError as error:
        refused = {**_refusal(error), "section": "checklist"}
        return _story_page(request, slug, key, refused=refused, status=error.status)
    return redirect(f"/services/{slug}/backlog/{key}/#checklist")


# ---- the timeline tells story events as sentences --------------------------------------

EVENT_TEXT: dict[str, Any] = {
    "story.created": lambda d: (
        f"found {d.get('key')} “{d.get('title')}” in {d['source_file']}"
        if d.get("source_file")
        else f"wrote {d.get('key')} “{d.get('title')}”"
    ),
    "story.synced": lambda d: (
        f"synced {d.get('key')} from {d.get('source_file')} in run #{d.get('run')}"
        + (f": {', '.join(str(c) for c in d['changed'])}" if d.get("changed") else "")
    ),
    "story.scenarios_recorded": lambda d: (
        f"recorded the scenarios of {d.get('key')} in run #{d.get('run')}: "
        f"{d.get('passed', 0)} passed, {d.get('failed', 0)} failed, {d.get('not_run', 0)} not run"
    ),
    "story.updated": lambda d: (
        f"changed {d.get('key')}: " + ", ".join(str(c) for c in d.get("changed", []))
    ),
    "story.reordered": lambda d: (
        f"moved {d.get('key')} " + (f"after {d['after']}" if d.get("after") else "to the top")
    ),
    "story.moved": lambda d: (
        f"moved {d.get('key')} from {d.get('from')} to {d.get('to')} ({d.get('wip')})"
        + (f" — WIP override: “{d['override_reason']}”" if d.get("override_reason") else "")
    ),
    "story.checked": lambda d: (
        f"{'ticked' if d.get('checked') else 'unticked'} “{d.get('item')}” on {d.get('key')}"
        f" in {d.get('column')}"
    ),
    "story.commit_linked": lambda d: (
        f"linked commit {str(d.get('sha', ''))[:10]} to {d.get('key')}"
        + (f" (run #{d['run']})" if d.get("run") else "")
    ),
    "story.done": lambda d: f"finished {d.get('key')}",
    "story.reopened": lambda d: f"reopened {d.get('key')}",
}
