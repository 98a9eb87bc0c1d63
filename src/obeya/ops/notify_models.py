"""Notification tables: where to tell people (webhooks, e-mail) and every delivery tried."""

from __future__ import annotations

from django.db import models

from obeya.catalog.models import Service
from obeya.core.models import Event


class Channel(models.Model):
    """A webhook or an e-mail list told about a service's incidents, andon and deploys.

    With no service, the channel hears every service (administrators set those up).
    """

    service = models.ForeignKey(
        Service, null=True, blank=True, on_delete=models.CASCADE, related_name="channels"
    )
    name = models.CharField(max_length=63)
    kind = models.CharField(max_length=8)  # webhook | email
    url = models.TextField(blank=True)  # sealed too: a chat webhook's path is its password
    # Write-only, signs webhook bodies; sealed (obeya.core.crypto): holds a Fernet token.
    secret = models.TextField(blank=True)
    recipients = models.JSONField(default=list)
    kinds = models.JSONField(default=list)  # event kinds; empty = every notified kind
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    """One event told to one channel, retried until delivered or given up."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, default="pending")  # pending|delivered|failed
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "event"], name="ops_delivery_once")
        ]

    def __str__(self) -> str:
        return f"{self.channel} ← event {self.event_id}: {self.status}"


class DeliveryAttempt(models.Model):
    """The delivery log: each try, with what the other side answered."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} {'ok' if self.ok else 'failed'}"
