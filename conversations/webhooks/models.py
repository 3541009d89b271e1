"""Outbound webhook endpoints, the messages sent to them and each delivery's attempts.

Loaded by :mod:`conversations.models` so Django registers them in the ``conversations`` app.

- :class:`WebhookEndpoint`: a tenant's URL, the event types it wants and its ``whsec_`` secret (encrypted at
  rest). Rotating keeps the previous secret valid for signing until ``previous_secret_expires_at``.
- :class:`WebhookMessage`: one event occurrence; its ``msg_id`` is the ``webhook-id`` header, identical on
  every retry and replay (Standard Webhooks). ``dedupe_key`` makes "emit" idempotent per tenant.
- :class:`WebhookDelivery`: one message to one endpoint (unique), with its retry state.
- :class:`WebhookAttempt`: one HTTP attempt (status code or error, duration) for the admin log.
"""

from __future__ import annotations

import base64
import secrets

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from identity.fields import EncryptedTextField
from identity.models import Tenant


class WebhookEventType(models.TextChoices):
    """Events a tenant can subscribe an endpoint to."""

    CONVERSATION_CLOSED = "conversation.closed", "conversation.closed (with the enriched interactions)"
    INTERACTION_ENRICHED = "interaction.enriched", "interaction.enriched"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged", "incident.acknowledged"
    CUSTOMER_ERASED = "customer.erased", "customer.erased (delete your copies of this patient)"


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_message_id() -> str:
    """A message id (``msg_`` + 26 url-safe chars), unique and stable across retries."""
    return "msg_" + secrets.token_urlsafe(20)


class WebhookEndpoint(models.Model):
    """A tenant's receiver URL, its events and its ``whsec_`` signing secret(s) (Standard Webhooks)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=1000, help_text="https URL; private, loopback and link-local hosts are refused.")
    description = models.CharField(max_length=200, blank=True)
    events = ArrayField(models.CharField(max_length=64, choices=WebhookEventType.choices), default=list)
    secret = EncryptedTextField(default=new_webhook_secret, help_text="whsec_… (encrypted at rest).")
    previous_secret = EncryptedTextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "is_active"])]

    def __str__(self) -> str:
        return self.url


class WebhookMessage(models.Model):
    """One event as sent: the ``webhook-id`` (``msg_id``, stable across retries) and the JSON body."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    msg_id = models.CharField(max_length=40, unique=True, default=new_message_id)
    event_type = models.CharField(max_length=64)
    dedupe_key = models.CharField(max_length=200, help_text="One message per (tenant, dedupe key).")
    payload = models.JSONField(help_text="The exact JSON body: {type, timestamp, data}.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "dedupe_key"], name="webhook_message_once")]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.event_type} {self.msg_id}"


class WebhookDelivery(models.Model):
    """One message to one endpoint: status, retry schedule position and next attempt time (UTC)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (endpoint gone or disabled)"
        DEAD = "dead", "Dead-lettered (retries exhausted)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "message"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="webhook_delivery_due"),
            models.Index(fields=["tenant", "status", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: when, the status code or error, and how long it took."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        indexes = [models.Index(fields=["delivery", "number"])]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error}"
