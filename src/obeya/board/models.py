"""Board tables: each service's Kanban columns, and where each story's card sits."""

from __future__ import annotations

from django.db import models

from obeya.backlog.models import Story
from obeya.catalog.models import Service


class Column(models.Model):
    """A column of a service's board, with its WIP limit and definition of done."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="columns")
    name = models.CharField(max_length=60)
    position = models.PositiveIntegerField()
    wip_limit = models.PositiveIntegerField(null=True, blank=True)  # None = no limit
    # Definition of done to LEAVE this column: checklist items and automatic gates.
    done_checklist = models.JSONField(default=list)
    gates = models.JSONField(default=list)
    starts_work = models.BooleanField(default=False)  # entering it starts cycle time
    is_done = models.BooleanField(default=False)
    # A story's first commit moves its card here (from an earlier column).
    receives_first_commit = models.BooleanField(default=False)

    class Meta:
        ordering = ["service", "position"]
        constraints = [
            models.UniqueConstraint(fields=["service", "name"], name="board_column_name"),
        ]

    def __str__(self) -> str:
        return self.name


class Card(models.Model):
    """A story's place on its service's board."""

    story = models.OneToOneField(Story, on_delete=models.CASCADE, related_name="card")
    column = models.ForeignKey(Column, on_delete=models.PROTECT, related_name="cards")
    position = models.PositiveIntegerField(default=0)
    entered_at = models.DateTimeField()
    checked = models.JSONField(default=list)  # checklist items ticked for the current column
    override_reason = models.TextField(blank=True)  # last WIP override, shown on the card
    override_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["column", "position", "id"]

    def __str__(self) -> str:
        return f"{self.story} in {self.column}"


# ---- the stored flow: the board's events folded as they are recorded (board.flow_store) ----


class BoardState(models.Model):
    """What a service's board has taken in: a version that changes with each change of the
    board, so what was built from it is reused until the next one; the time zone of its
    stored flow's days, and the latest event folded into it. Its row lock serialises both."""

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveBigIntegerField(default=0)
    time_zone = models.CharField(max_length=64)
    latest_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"board of {self.service_id} at version {self.version}"


class FlowStory(models.Model):
    """One story's flow so far: created, started, done, and the column its card is in.

    ``done_at`` is the last time the story became done (kept while it is reopened, as the
    fold needs it). ``last_at``/``last_seq`` name the latest of its events folded in.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=20)
    created_at = models.DateTimeField()
    column = models.CharField(max_length=60)
    started_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    done = models.BooleanField(default=False)
    last_at = models.DateTimeField()
    last_seq = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "key"], name="board_flowstory_key"),
        ]
        indexes = [models.Index(fields=["service", "column"])]

    def __str__(self) -> str:
        return f"{self.key} in {self.column}"


class FlowDay(models.Model):
    """Cards per column at the end of a day that saw a story event (by column name)."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    counts = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "day"], name="board_flowday_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day}: {self.counts}"
