"""Use cases of the backlog: stories of every kind, their order, commits and scenarios.

Each change is one transaction with its event. The board reads stories through here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.db.models import Max, Q, QuerySet

from obeya.backlog import kinds
from obeya.backlog.gherkin import GherkinInvalid, parse_feature
from obeya.backlog.invest import Finding, invest_findings
from obeya.backlog.models import ScenarioResult, Story, StoryCommit
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events
from obeya.core.actors import Actor, system_actor
from obeya.core.errors import Conflict, InvalidInput, NotFound
from obeya.core.models import Event, User
from obeya.core.roles import Permission

RANK_GAP = 1024
EDITABLE = ("title", "description", "estimate", "labels", "assignees", "details")
# Called with each story event just recorded, in its transaction (the board keeps its
# stored flow this way); registered by the listening app's ready().
STORY_EVENT_LISTENERS: list[Callable[[Story, Event], None]] = []


def _invalid(problem: kinds.DetailProblem) -> InvalidInput:
    return InvalidInput(str(problem), field=problem.field)


def story_event(actor: Actor, story: Story, kind: str, data: dict[str, Any]) -> None:
    event = events.record(
        actor,
        kind,
        f"story:{story.service.slug}/{story.key}",
        {"key": story.key, "kind": story.kind, "title": story.title, **data},
        service=story.service.slug,
    )
    for listener in STORY_EVENT_LISTENERS:
        listener(story, event)


# ---- reading ---------------------------------------------------------------------------


def list_stories(
    slug: str, *, kind: str = "", label: str = "", search: str = ""
) -> QuerySet[Story]:
    stories = Story.objects.filter(service=catalog.get_service(slug)).select_related("service")
    if kind:
        try:
            kinds.check_kind(kind)
        except kinds.DetailProblem as problem:
            raise _invalid(problem) from None
        stories = stories.filter(kind=kind)
    if label:
        stories = (
            stories.filter(labels__contains=[label])
            if _json_contains()
            else stories.filter(labels__icontains=f'"{label}"')
        )
    if search:
        stories = stories.filter(Q(title__icontains=search) | Q(description__icontains=search))
    return stories.prefetch_related("assignees")


def _json_contains() -> bool:
    from django.db import connection

    return bool(connection.features.supports_json_field_contains)


def get_story(slug: str, key: str) -> Story:
    catalog.get_service(slug)  # an unknown service is named as such
    try:
        number = kinds.parse_key(key)
    except kinds.DetailProblem as problem:
        raise _invalid(problem) from None
    try:
        return Story.objects.select_related("service").get(service__slug=slug, number=number)
    except Story.DoesNotExist:
        raise NotFound(f'no story {key} in "{slug}"', field="key") from None


def linked_test_stories(story: Story) -> QuerySet[Story]:
    """Test stories tagged with this story's key (@S-12)."""
    return (
        Story.objects.filter(
            service=story.service, kind="test", details__keys__contains=story.number
        )
        if _json_contains()
        else Story.objects.filter(
            pk__in=[
                s.pk
                for s in Story.objects.filter(service=story.service, kind="test")
                if story.number in s.details.get("keys", [])
            ]
        )
    )


def latest_results(story: Story) -> list[ScenarioResult]:
    """The newest result of each scenario of a test story."""
    latest: dict[str, ScenarioResult] = {}
    for result in story.scenario_results.order_by("-run_number"):
        latest.setdefault(result.scenario, result)
    return list(latest.values())


def acceptance(story: Story) -> dict[str, Any]:
    """Whether the scenarios behind a story pass on the latest default-branch run."""
    tests = [story] if story.kind == "test" else list(linked_test_stories(story))
    return _verdict(tests, [r for test in tests for r in latest_results(test)])


def acceptances(
    service: Service, among: Iterable[Story] | None = None
) -> dict[int, dict[str, Any]]:
    """``acceptance`` of every story of a service (or only of those ``among`` them), by
    story id, in a few queries, for pages that show many stories at once."""
    stories = list(Story.objects.filter(service=service)) if among is None else list(among)
    tests = [s for s in stories if s.kind == "test"]
    if among is not None:  # every test story, for the tags that link stories to them
        tests = list(Story.objects.filter(service=service, kind="test"))
    latest: dict[int, dict[str, ScenarioResult]] = {t.pk: {} for t in tests}
    for result in ScenarioResult.objects.filter(story__in=tests).order_by("-run_number"):
        latest[result.story_id].setdefault(result.scenario, result)
    tagged: dict[int, list[Story]] = {}
    for test in tests:
        for number in test.details.get("keys", []):
            tagged.setdefault(int(number), []).append(test)
    verdicts = {}
    for story in stories:
        linked = [story] if story.kind == "test" else tagged.get(story.number, [])
        verdicts[story.pk] = _verdict(linked, [r for t in linked for r in latest[t.pk].values()])
    return verdicts


def _verdict(tests: list[Story], results: list[ScenarioResult]) -> dict[str, Any]:
    scenario_count = sum(len(t.details.get("scenarios", [])) for t in tests)
    passed = sum(1 for r in results if r.status == "passed")
    if scenario_count == 0:
        state = "none"
    elif passed == scenario_count:
        state = "passed"
    elif any(r.status == "failed" for r in results):
        state = "failed"
    else:
        state = "not_run"
    return {
        "state": state,
        "scenarios": scenario_count,
        "passed": passed,
        "tests": [t.key for t in tests],
    }


def findings(story: Story, verdict: dict[str, Any] | None = None) -> list[Finding]:
    """INVEST findings of a user story (``verdict``: its acceptance, if already known)."""
    if story.kind != "user":
        return []
    others = [f"S-{n}" for n in kinds.keys_in(story.description) if n != story.number]
    return invest_findings(
        story.details,
        title=story.title,
        description=story.description,
        estimate=story.estimate,
        scenarios=(verdict or acceptance(story))["scenarios"],
        depends_on=others,
    )


def slr_sheet(slug: str) -> list[Story]:
    """The service-level requirements: every operation story, in backlog order."""
    return list(list_stories(slug, kind="operation"))


# ---- changing --------------------------------------------------------------------------


def _clean_common(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    if "title" in fields:
        title = str(fields["title"] or "").strip()
        if not title or len(title) > 200:
            raise InvalidInput("a story needs a title of 1-200 characters", field="title")
        cleaned["title"] = title
    if "description" in fields:
        cleaned["description"] = str(fields["description"] or "").strip()[:20_000]
    if "estimate" in fields:
        value = fields["estimate"]
        if value in (None, ""):
            cleaned["estimate"] = None
        else:
            try:
                cleaned["estimate"] = int(value)
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"estimate must be a whole number, not {value!r}", field="estimate"
                ) from None
            if not 0 <= cleaned["estimate"] <= 1000:
                raise InvalidInput("estimate must be 0 to 1000", field="estimate")
    if "labels" in fields:
        labels = fields["labels"] or []
        if isinstance(labels, str):
            labels = labels.split(",")
        cleaned["labels"] = sorted({str(x).strip()[:40] for x in labels if str(x).strip()})
    return cleaned


def _users(names: Iterable[str]) -> list[User]:
    wanted = [n.strip() for n in names if n and n.strip()]
    found = {u.username: u for u in User.objects.filter(username__in=wanted, is_active=True)}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise NotFound(f"no user named {missing[0]!r}", field="assignees")
    return [found[n] for n in wanted]


def _test_details(service: Service, details: dict[str, Any]) -> dict[str, Any]:
    """Parse the Gherkin of a test story; its @S-n tags must name stories of the service."""
    text = str(details.get("gherkin") or "")
    try:
        feature = parse_feature(text)
    except GherkinInvalid as invalid:
        raise InvalidInput(f"Gherkin: {invalid}", field="gherkin") from None
    existing = set(
        Story.objects.filter(service=service, number__in=feature.keys).values_list(
            "number", flat=True
        )
    )
    missing = [f"@S-{n}" for n in feature.keys if n not in existing]
    if missing:
        raise InvalidInput(f'tag {missing[0]} names no story of "{service.slug}"', field="gherkin")
    return {
        **details,
        "gherkin": text,
        "feature": feature.name,
        "keys": list(feature.keys),
        "scenarios": [s.name for s in feature.scenarios],
    }


def _details(
    service: Service, kind: str, details: dict[str, Any], base: dict[str, Any] | None = None
) -> dict[str, Any]:
    derived = ("feature", "keys", "scenarios")
    stored = {k: v for k, v in (base or {}).items() if k not in derived}
    try:
        cleaned = kinds.clean_details(kind, details, stored)
    except kinds.DetailProblem as problem:
        raise _invalid(problem) from None
    return _test_details(service, cleaned) if kind == "test" else cleaned


def create_story(actor: Actor, slug: str, kind: str, title: str, **fields: Any) -> Story:
    """Add a story at the bottom of the backlog."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.EDIT_BACKLOG)
    try:
        kinds.check_kind(kind)
    except kinds.DetailProblem as problem:
        raise _invalid(problem) from None
    unknown = sorted(set(fields) - set(EDITABLE) - {"source_file"})
    if unknown:
        raise InvalidInput(f"a story has no field {unknown[0]!r}", field=unknown[0])
    common = _clean_common({"title": title, **fields})
    details = _details(service, kind, dict(fields.get("details") or {}))
    assignees = _users(fields.get("assignees") or [])
    now = actor.now()
    with transaction.atomic():
        Service.objects.select_for_update().filter(pk=service.pk).first()  # numbering
        last = Story.objects.filter(service=service).aggregate(n=Max("number"), r=Max("rank"))
        story = Story.objects.create(
            service=service,
            number=(last["n"] or 0) + 1,
            kind=kind,
            rank=(last["r"] or 0) + RANK_GAP,
            details=details,
            source_file=str(fields.get("source_file") or ""),
            created_at=now,
            updated_at=now,
            **common,
        )
        story.assignees.set(assignees)
        story_event(actor, story, "story.created", {})
    return story


def update_story(actor: Actor, slug: str, key: str, **fields: Any) -> Story:
    """Change a story; a test story synced from the repository is edited there instead."""
    story = get_story(slug, key)
    catalog.require(actor, story.service, Permission.EDIT_BACKLOG)
    if story.source_file and actor.channel != "system":
        raise Conflict(
            f"{key} comes from {story.source_file} in the repository: edit the file "
            "there and push; the next run of the default branch updates it",
            field="gherkin",
        )
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise InvalidInput(f"a story has no field {unknown[0]!r}", field=unknown[0])
    common = _clean_common(fields)
    details = (
        _details(story.service, story.kind, dict(fields["details"] or {}), story.details)
        if "details" in fields
        else None
    )
    assignees = _users(fields["assignees"] or []) if "assignees" in fields else None
    with transaction.atomic():
        story = Story.objects.select_for_update().select_related("service").get(pk=story.pk)
        changed = sorted(k for k, v in common.items() if getattr(story, k) != v)
        for name in changed:
            setattr(story, name, common[name])
        if details is not None and details != story.details:
            story.details = details
            changed.append("details")
        if assignees is not None and {u.pk for u in assignees} != set(
            story.assignees.values_list("pk", flat=True)
        ):
            story.assignees.set(assignees)
            changed.append("assignees")
        if not changed:
            return story
        story.updated_at = actor.now()
        story.save()
        story_event(actor, story, "story.updated", {"changed": changed})
    return story


def reorder(actor: Actor, slug: str, key: str, *, after: str | None, expected_rank: int) -> Story:
    """Move ``key`` to just after ``after`` (None: to the top). ``expected_rank`` is the rank
    the person saw: if someone else moved the story meanwhile, the move is refused."""
    story = get_story(slug, key)
    catalog.require(actor, story.service, Permission.ORDER_BACKLOG)
    with transaction.atomic():
        Service.objects.select_for_update().filter(pk=story.service_id).first()
        story = Story.objects.select_related("service").get(pk=story.pk)
        if story.rank != expected_rank:
            raise Conflict(
                f"{key} was moved by someone else meanwhile: reload the backlog and try again",
                field="expected_rank",
            )
        siblings = list(
            Story.objects.filter(service=story.service)
            .exclude(pk=story.pk)
            .order_by("rank", "id")
            .values_list("number", "rank")
        )
        index = 0
        if after is not None and after.strip() == key:
            raise InvalidInput(f"{key} cannot be placed after itself", field="after")
        if after is not None:
            after_number = get_story(slug, after).number
            index = next((i + 1 for i, (n, _) in enumerate(siblings) if n == after_number), -1)
            if index < 0:
                raise NotFound(f"no story {after} in the backlog", field="after")
        low = siblings[index - 1][1] if index > 0 else None
        high = siblings[index][1] if index < len(siblings) else None
        rank = _between(low, high)
        if rank is None:  # no room left between the neighbours: spread everyone out
            for position, (number, _) in enumerate(siblings, start=1):
                Story.objects.filter(service=story.service, number=number).update(
                    rank=position * RANK_GAP * 2
                )
            low = index * RANK_GAP * 2 if index > 0 else None
            high = (index + 1) * RANK_GAP * 2 if index < len(siblings) else None
            rank = _between(low, high)
        old = story.rank
        story.rank = int(rank) if rank is not None else RANK_GAP
        story.save(update_fields=["rank"])
        story_event(
            actor,
            story,
            "story.reordered",
            {"after": after, "from_rank": old, "to_rank": story.rank},
        )
    return story


def _between(low: int | None, high: int | None) -> int | None:
    if low is None and high is None:
        return RANK_GAP
    if low is None:
        return high - RANK_GAP if high is not None else None
    if high is None:
        return low + RANK_GAP
    return (low + high) // 2 if high - low > 1 else None


def set_done(actor: Actor, story: Story, done: bool) -> None:
    """Called by the board when a card enters or leaves a done column."""
    if done == (story.done_at is not None):
        return
    story.done_at = actor.now() if done else None
    story.save(update_fields=["done_at"])
    story_event(actor, story, "story.done" if done else "story.reopened", {})


def check_end_of_life_item(actor: Actor, slug: str, key: str, index: int, done: bool) -> Story:
    story = get_story(slug, key)
    if story.kind != "end_of_life":
        raise InvalidInput(f"{key} is not an end-of-life story", field="key")
    items = list(story.details.get("checklist", []))
    if not 0 <= index < len(items):
        raise InvalidInput(f"{key} has no checklist item {index + 1}", field="index")
    items[index] = {**items[index], "done": done}
    return update_story(actor, slug, key, details={**story.details, "checklist": items})


def end_of_life_ready(service: Service) -> str | None:
    """The catalog's retirement check: an end-of-life story done with every item checked."""
    stories = Story.objects.filter(service=service, kind="end_of_life").order_by("-id")
    if not stories:
        return (
            f'"{service.slug}" cannot retire: write an end-of-life story (reason, data '
            "and tool disposition, replacement ready, shutdown order) and finish it first"
        )
    problems = [kinds.end_of_life_problem(s.details, s.done_at is not None) for s in stories]
    if any(problem is None for problem in problems):
        return None
    return f'"{service.slug}" cannot retire yet: {problems[0]}'


def record_commits(
    service: Service, commits: Iterable[dict[str, Any]], run_number: int, branch: str
) -> list[Story]:
    """Link commits naming story keys; returns stories that got their first commit."""
    firsts: list[Story] = []
    for commit in commits:
        for number in kinds.keys_in(commit["message"]):
            story = Story.objects.filter(service=service, number=number).first()
            if story is None:
                continue
            first = not story.commits.exists()
            _, created = StoryCommit.objects.get_or_create(
                story=story,
                sha=commit["sha"],
                defaults={
                    "message": commit["message"][:5000],
                    "author": commit["author"],
                    "committed_at": commit["committed_at"],
                    "branch": branch,
                    "run_number": run_number,
                },
            )
            if created:
                story_event(
                    system_actor(),
                    story,
                    "story.commit_linked",
                    {"sha": commit["sha"], "branch": branch, "run": run_number},
                )
            if created and first:
                firsts.append(story)
    return firsts
