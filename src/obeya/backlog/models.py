"""Backlog tables: stories of every kind, their commits and their scenario results."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from obeya.catalog.models import Service


class StoryKind(models.TextChoices):
    USER = "user", "user story"
    TEST = "test", "test story"
    OPERATION = "operation", "operation story"
    CHANGE_REQUEST = "change_request", "change request"
    END_OF_LIFE = "end_of_life", "end-of-life story"


class Story(models.Model):
    """One backlog item of a service, known by its key (S-12)."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="stories")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=StoryKind.choices)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    estimate = models.PositiveIntegerField(null=True, blank=True)
    # Backlog order set by the Service Master: smaller comes first; gaps leave room to move.
    rank = models.BigIntegerField(db_index=True)
    labels = models.JSONField(default=list)
    assignees = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    details = models.JSONField(default=dict)  # the kind's own fields (see backlog.kinds)
    # Test stories synced from a .feature file in the repository are edited there only.
    source_file = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rank", "id"]
        constraints = [
            models.UniqueConstraint(fields=["service", "number"], name="backlog_story_number")
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.title}"

    @property
    def key(self) -> str:
        return f"S-{self.number}"


class StoryCommit(models.Model):
    """A commit whose message names the story's key."""

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="commits")
    sha = models.CharField(max_length=64)
    message = models.TextField()
    author = models.CharField(max_length=255)
    committed_at = models.DateTimeField()
    branch = models.CharField(max_length=255, blank=True)
    run_number = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-committed_at"]
        constraints = [models.UniqueConstraint(fields=["story", "sha"], name="backlog_commit_once")]

    def __str__(self) -> str:
        return f"{self.sha[:10]} {self.story_id}"


class ScenarioResult(models.Model):
    """The result of one scenario of a test story in one default-branch run."""

    story = models.ForeignKey(Story, on_delete=models.CASCADE, related_name="scenario_results")
    scenario = models.CharField(max_length=500)
    run_number = models.PositiveIntegerField()
    sha = models.CharField(max_length=64)
    status = models.CharField(max_length=16)  # passed | failed | not_run
    message = models.TextField(blank=True)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["-run_number", "scenario"]
        constraints = [
            models.UniqueConstraint(
                fields=["story", "scenario", "run_number"], name="backlog_scenario_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scenario}: {self.status}"
