"""Catalog tables: services with their charter and lifecycle stage, and team membership."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from obeya.catalog.logic import Stage
from obeya.core.roles import Role


class Service(models.Model):
    """A service whose whole life the team runs in Obeya."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    repository_url = models.CharField(max_length=500, blank=True)
    owner_team = models.CharField(max_length=120, blank=True)
    # The charter (§2.2): scope set by the Service Master.
    vision = models.TextField(blank=True)
    goals = models.TextField(blank=True)
    business_value = models.TextField(blank=True)
    customers = models.TextField(blank=True)
    stage = models.CharField(
        max_length=20, choices=[(s.value, s.value) for s in Stage], default=Stage.STRATEGY
    )
    stage_changed_at = models.DateTimeField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "slug"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A person holding one role on one service's team; a person may hold several roles."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=24, choices=[(r.value, r.value) for r in Role])
    since = models.DateTimeField()

    class Meta:
        ordering = ["role", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "user", "role"], name="catalog_membership_unique_role"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} on {self.service}"
