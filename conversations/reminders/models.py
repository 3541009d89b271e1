"""Reminder settings per tenant and one row per reminder of an appointment (idempotency by constraint)."""

from __future__ import annotations

from datetime import time

from django.core.exceptions import ValidationError
from django.db import models

from identity.models import Tenant


def _default_lead_minutes() -> list[int]:
    return [24 * 60, 120]


def _validate_leads(value) -> None:
    if not isinstance(value, list) or not all(isinstance(v, int) and 10 <= v <= 14 * 24 * 60 for v in value):
        raise ValidationError("a list of whole minutes between 10 and 20160 (14 days), e.g. [1440, 120]")
    if len(value) > 5:
        raise ValidationError("at most 5 reminders per appointment")


class ReminderSettings(models.Model):
    """When a tenant's patients are reminded of their appointments, and what counts as a no-show.

    ``lead_minutes``: how long before the start each reminder goes (default 24 h and 2 h). Quiet hours are the
    tenant's local wall-clock ``[quiet_start, quiet_end)`` (wrapping midnight when start > end): a reminder that
    falls due in them waits for ``quiet_end``, and is skipped if that is not before the appointment. A booked
    appointment not checked in ``no_show_after_minutes`` after it started becomes a no-show when
    ``record_no_shows`` is on. A tenant without a row uses these defaults.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="reminder_settings")
    enabled = models.BooleanField(default=True)
    lead_minutes = models.JSONField(
        default=_default_lead_minutes,
        validators=[_validate_leads],
        help_text="Minutes before the appointment each reminder is sent, e.g. [1440, 120] = 24 h and 2 h.",
    )
    quiet_start = models.TimeField(default=time(21, 0), help_text="No reminders from this local time…")
    quiet_end = models.TimeField(default=time(8, 0), help_text="…until this local time.")
    by_email = models.BooleanField(default=True, help_text="Also email the reminder to a verified address.")
    record_no_shows = models.BooleanField(
        default=True, help_text="Mark booked appointments nobody checked in for as no-shows."
    )
    no_show_after_minutes = models.PositiveIntegerField(default=30)

    class Meta:
        verbose_name_plural = "reminder settings"

    def __str__(self) -> str:
        return f"Reminder settings of {self.tenant_id}"

    def in_quiet_hours(self, local: time) -> bool:
        """Whether local wall-clock ``local`` lies in the quiet window."""
        start, end = self.quiet_start, self.quiet_end
        if start == end:
            return False
        if start < end:
            return start <= local < end
        return local >= start or local < end


class AppointmentReminder(models.Model):
    """One reminder of one appointment time: created when it is sent (or skipped), answered by the patient.

    Unique per (appointment, kind, starts_at): a task or beat run twice sends once; an appointment moved to
    another time is reminded again for its new time. ``kind`` is ``lead-<minutes>``.
    """

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Skipped (quiet hours, no reachable contact, opted out)"

    class Answer(models.TextChoices):
        NONE = "", "No answer"
        CONFIRMED = "confirmed", "Confirmed"
        RESCHEDULE = "reschedule", "Asked to reschedule"
        CANCELLED = "cancelled", "Cancelled"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    appointment = models.ForeignKey("conversations.Appointment", on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=20)
    starts_at = models.DateTimeField(help_text="The appointment's start this reminder was about.")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices)
    skip_reason = models.CharField(max_length=40, blank=True)
    channels = models.JSONField(default=list, blank=True, help_text="Channels it went out on.")
    language = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    answer = models.CharField(max_length=12, choices=Answer.choices, blank=True, default="")
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["appointment", "kind", "starts_at"], name="reminder_once_per_kind"),
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} reminder ({self.status})"
