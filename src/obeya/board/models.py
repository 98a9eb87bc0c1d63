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
