"""One row per recording that must be deleted at the voice provider (Twilio keeps the audio until told).

Loaded by :mod:`conversations.models`. Written in the same transaction as the erase or purge that unlinked the
recording, so a crash or a broker outage cannot forget it; the unique (tenant, recording_sid) makes a second
request for the same recording a no-op. Holds no PHI: a provider SID, why, and the outcome.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class RecordingDeletion(models.Model):
    class Reason(models.TextChoices):
        ERASE = "erase", "Patient erased"
        RETENTION = "retention", "Retention period over"

    tenant = models.ForeignKey("identity.Tenant", on_delete=models.CASCADE, related_name="+")
    recording_sid = models.CharField(max_length=64, help_text="The provider's recording SID (Twilio RE…).")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    requested_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="When the provider confirmed it gone (UTC).")
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "recording_sid"], name="recording_deletion_once"),
        ]
        indexes = [
            models.Index(
                fields=["requested_at"], condition=Q(deleted_at__isnull=True), name="recording_deletion_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.recording_sid} ({'deleted' if self.deleted_at else 'pending'})"
