"""Core tables: users, API tokens and the append-only event log."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who signs in to Obeya (Django auth; roles live per service)."""

    class Meta:
        db_table = "core_user"


class ApiToken(models.Model):
    """A personal API token. Only the SHA-256 of the secret is stored."""

    class Scope(models.TextChoices):
        READ = "read", "read: GET only"
        WRITE = "write", "write: read and change"
        ADMIN = "admin", "admin: write plus user and token administration"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token.")
    token_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=Scope.choices)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class EventQuerySet(models.QuerySet["Event"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("events are append-only: record a new event instead of updating one")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("events are append-only and cannot be deleted")


class Event(models.Model):
    """One remembered state change. Append-only: the spine of timelines, audit and metrics."""

    at = models.DateTimeField(db_index=True)
    # PROTECT: a person who acted is deactivated, never deleted, so the trail stays whole.
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    channel = models.CharField(max_length=16)
    ip = models.GenericIPAddressField(null=True, blank=True)
    kind = models.CharField(max_length=64, db_index=True)
    subject = models.CharField(max_length=200, db_index=True)
    service = models.CharField(max_length=50, blank=True, db_index=True)
    data = models.JSONField(default=dict)
    # The hash chain (obeya.core.chain): the hash of the event before this one, and this
    # one's own, over its content and prev_hash. `obeya audit verify` walks it.
    prev_hash = models.CharField(max_length=64, default="")
    hash = models.CharField(max_length=64, default="")

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["service", "id"]),
            models.Index(fields=["kind", "at"]),
            models.Index(fields=["service", "kind", "at"]),  # metrics read a service's window
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.subject}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise TypeError("events are append-only: record a new event instead of saving one")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("events are append-only and cannot be deleted")


class SignInAttempt(models.Model):
    """A sign-in under way, or one that failed in the last minutes: what throttling counts.

    Kept in the database, not a cache, so every process and host counts the same attempts.
    A success removes its account's rows; rows older than the window are pruned.
    """

    username = models.CharField(max_length=150, help_text="As typed, lower-cased.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["username", "at"]),
            models.Index(fields=["ip", "at"]),
            models.Index(fields=["at"]),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip} at {self.at:%H:%M:%S}"
