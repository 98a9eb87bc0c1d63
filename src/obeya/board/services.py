"""Use cases of the board: columns with WIP limits and definitions of done, card moves.

A move into a full column is refused (409) unless the person gives a reason, which is
recorded and shown on the card. A card that fails the definition of done of the column it
leaves cannot move on. The column row is locked for the move, so two people racing for the
last free slot cannot both get it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Count, QuerySet

from obeya.backlog import services as backlog
from obeya.backlog.models import Story
from obeya.board import flow_store, logic
from obeya.board.models import Card, Column
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events
from obeya.core.actors import Actor, system_actor
from obeya.core.errors import Conflict, InvalidInput, NotFound
from obeya.core.roles import Permission

MAX_WIP_LIMIT = 10_000


class WipLimitReached(Conflict):
    code = "wip_limit"


class GateFailed(Conflict):
    code = "gate_failed"


def ensure_columns(service: Service) -> list[Column]:
    """The service's columns, creating the default five on first use."""
    columns = list(Column.objects.filter(service=service).order_by("position"))
    if columns:
        return columns
    with transaction.atomic():
        for position, (name, limit, starts, done, first, checklist, gates) in enumerate(
            logic.DEFAULT_COLUMNS
        ):
            Column.objects.get_or_create(
                service=service,
                name=name,
                defaults={
                    "position": position,
                    "wip_limit": limit,
                    "starts_work": starts,
                    "is_done": done,
                    "receives_first_commit": first,
                    "done_checklist": checklist,
                    "gates": gates,
                },
            )
    return list(Column.objects.filter(service=service).order_by("position"))


def card_of(story: Story) -> Card:
    """The story's card, placed in the first column when it has none yet."""
    card = Card.objects.filter(story=story).select_related("column").first()
    if card is not None:
        return card
    first = ensure_columns(story.service)[0]
    card, _ = Card.objects.get_or_create(
        story=story, defaults={"column": first, "entered_at": story.created_at}
    )
    return card


def board(slug: str) -> dict[str, Any]:
    """Columns in order, each with its cards (in order) and WIP count."""
    service = catalog.get_service(slug)
    columns = ensure_columns(service)
    for story in Story.objects.filter(service=service, card__isnull=True):
        card_of(story)
    cards = (
        Card.objects.filter(column__service=service)
        .select_related("story", "column")
        .prefetch_related("story__assignees")
        .order_by("column__position", "position", "story__rank")
    )
    by_column: dict[int, list[Card]] = {column.pk: [] for column in columns}
    for card in cards:
        by_column[card.column_id].append(card)
    return {
        "service": service,
        "columns": [
            {
                "column": column,
                "cards": by_column[column.pk],
                "wip": logic.wip_text(len(by_column[column.pk]), column.wip_limit),
                "full": column.wip_limit is not None
                and len(by_column[column.pk]) >= column.wip_limit,
            }
            for column in columns
        ],
    }


def _gate_results(card: Card) -> dict[str, str | None]:
    results: dict[str, str | None] = {}
    for gate in card.column.gates:
        if gate == "scenarios_pass" and card.story.kind not in {"user", "test"}:
            results[gate] = None  # operation, change and end-of-life stories have no scenarios
        elif gate == "scenarios_pass":
            verdict = backlog.acceptance(card.story)
            if verdict["state"] == "passed":
                results[gate] = None
            elif verdict["state"] == "none":
                results[gate] = (
                    "gate: no scenario covers this story yet (tag a test story "
                    f"with @{card.story.key})"
                )
            else:
                results[gate] = (
                    f"gate: its scenarios do not all pass on the latest "
                    f"default-branch run ({verdict['passed']}/"
                    f"{verdict['scenarios']} passed)"
                )
        else:
            results[gate] = f"gate: unknown gate {gate!r}"
    return results


def move_card(
    actor: Actor,
    slug: str,
    key: str,
    column: str,
    *,
    position: int | None = None,
    override_reason: str | None = None,
) -> Card:
    """Move a story's card to ``column`` (by name), under WIP limits and the gates."""
    story = backlog.get_story(slug, key)
    catalog.require(actor, story.service, Permission.EDIT_BACKLOG)
    if override_reason is not None and not override_reason.strip():
        raise InvalidInput("a WIP override needs a reason", field="override_reason")
    columns = {c.name: c for c in ensure_columns(story.service)}
    if column not in columns:
        other = Column.objects.filter(name=column).exclude(service=story.service).exists()
        where = "another service's board" if other else f'the board of "{slug}"'
        raise InvalidInput(
            f'"{column}" is not a column of {where}: use one of {", ".join(columns)}',
            field="column",
        )
    card_of(story)
    with transaction.atomic():
        target = Column.objects.select_for_update().get(pk=columns[column].pk)
        card = (
            Card.objects.select_for_update()
            .select_related("column", "story__service")
            .get(story=story)
        )
        source = card.column
        count = Card.objects.filter(column=target).exclude(pk=card.pk).count()
        plan = logic.plan_move(
            target=target.name,
            count_in_target=count if target != source else 0,
            limit=target.wip_limit if target != source else None,
            forward=target.position > source.position,
            checklist=source.done_checklist,
            checked=card.checked,
            gate_results=_gate_results(card) if target.position > source.position else {},
        )
        if plan.gate_problems:
            raise GateFailed(
                f'{key} cannot leave "{source.name}": ' + "; ".join(plan.gate_problems),
                field="column",
            )
        if plan.wip_full and not override_reason:
            raise WipLimitReached(
                logic.wip_message(target.name, count, target.wip_limit or 0),
                field="override_reason",
            )
        now = actor.now()
        if target != source:
            card.column, card.entered_at, card.checked = target, now, []
            card.override_reason = (
                override_reason.strip() if plan.wip_full and override_reason else ""
            )
            card.override_by = actor.name if card.override_reason else ""
        placed = card.position
        card.position = position if position is not None else count
        card.save()
        if target == source and card.position != placed:
            # Only its place in the column changed: still a change of the board, recorded.
            backlog.story_event(
                actor,
                card.story,
                "story.positioned",
                {"column": target.name, "position": card.position},
            )
        if target != source:
            backlog.set_done(actor, card.story, target.is_done)
            backlog.story_event(
                actor,
                card.story,
                "story.moved",
                {
                    "from": source.name,
                    "to": target.name,
                    "wip": plan.wip_text,
                    "override_reason": card.override_reason,
                    "starts_work": target.starts_work,
                    "done": target.is_done,
                },
            )
    return card


def check_item(actor: Actor, slug: str, key: str, item: str, checked: bool) -> Card:
    """Tick (or untick) a definition-of-done item of the card's current column."""
    story = backlog.get_story(slug, key)
    catalog.require(actor, story.service, Permission.EDIT_BACKLOG)
    card = card_of(story)
    if item not in card.column.done_checklist:
        raise InvalidInput(f'"{card.column.name}" has no checklist item {item!r}', field="item")
    with transaction.atomic():
        card = Card.objects.select_for_update().select_related("column").get(pk=card.pk)
        ticked = [i for i in card.checked if i != item] + ([item] if checked else [])
        card.checked = ticked
        card.save(update_fields=["checked"])
        backlog.story_event(
            actor,
            story,
            "story.checked",
            {"column": card.column.name, "item": item, "checked": checked},
        )
    return card


def columns_of(slug: str) -> list[Column]:
    return ensure_columns(catalog.get_service(slug))


def configure_column(actor: Actor, slug: str, name: str, **fields: Any) -> Column:
    """Change a column: WIP limit, checklist, gates, flags, name."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.CONFIGURE_BOARD)
    columns = {c.name: c for c in ensure_columns(service)}
    if name not in columns:
        raise NotFound(f'no column "{name}" on the board of "{slug}"', field="name")
    allowed = {
        "wip_limit",
        "done_checklist",
        "gates",
        "rename",
        "starts_work",
        "is_done",
        "receives_first_commit",
    }
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidInput(f"a column has no setting {unknown[0]!r}", field=unknown[0])
    with transaction.atomic():
        column = Column.objects.select_for_update().get(pk=columns[name].pk)
        if "wip_limit" in fields:
            limit = fields["wip_limit"]
            if limit not in (None, "") and (not str(limit).isdigit() or int(limit) < 1):
                raise InvalidInput(
                    "a WIP limit is a whole number of at least 1, or empty for none",
                    field="wip_limit",
                )
            if limit not in (None, "") and int(limit) > MAX_WIP_LIMIT:
                raise InvalidInput(
                    f"a WIP limit above {MAX_WIP_LIMIT} is no limit: leave it empty",
                    field="wip_limit",
                )
            column.wip_limit = int(limit) if limit not in (None, "") else None
        for listed in ("done_checklist", "gates"):
            if listed in fields and not isinstance(fields[listed], list | tuple):
                raise InvalidInput(f"{listed} must be a list", field=listed)
        if "done_checklist" in fields:
            column.done_checklist = [
                str(i).strip()[:200] for i in fields["done_checklist"] if str(i).strip()
            ]
        if "gates" in fields:
            unknown_gates = [g for g in fields["gates"] if g not in logic.GATES]
            if unknown_gates:
                raise InvalidInput(
                    f"unknown gate {unknown_gates[0]!r}: use {', '.join(logic.GATES)}",
                    field="gates",
                )
            column.gates = list(fields["gates"])
        for flag in ("starts_work", "is_done", "receives_first_commit"):
            if flag in fields:
                setattr(column, flag, bool(fields[flag]))
        recorded = dict(fields)
        if "rename" in fields:
            new_name = str(fields["rename"] or "").strip()
            if not new_name or len(new_name) > 60:
                raise InvalidInput("a column name needs 1-60 characters", field="rename")
            taken = Column.objects.filter(service=service, name=new_name).exclude(pk=column.pk)
            if taken.exists():
                raise Conflict(
                    f'the board of "{slug}" already has a column "{new_name}"', field="rename"
                )
            if new_name != column.name:
                # The old name lets flow metrics see one column across the rename.
                recorded.update(rename=new_name, renamed_from=column.name)
            else:
                del recorded["rename"]
            column.name = new_name
        column.save()
        event = events.record(
            actor,
            "board.column_configured",
            f"column:{slug}/{column.name}",
            recorded,
            service=slug,
        )
        flow_store.column_configured(service, event, recorded.get("renamed_from"))
    return column


def wip_counts(slug: str) -> QuerySet[Any]:
    service = catalog.get_service(slug)
    return (
        Column.objects.filter(service=service)
        .annotate(cards_count=Count("cards"))
        .order_by("position")
    )


def on_first_commit(stories: list[Story]) -> None:
    """Move each story whose first commit just landed to the column marked for it."""
    actor = system_actor()
    for story in stories:
        target = Column.objects.filter(service=story.service, receives_first_commit=True).first()
        card = card_of(story)
        if target is None or card.column.position >= target.position:
            continue
        try:
            move_card(actor, story.service.slug, story.key, target.name)
        except Conflict:
            continue  # full or gated: a person decides
