"""Models of the staff inbox (loaded by :mod:`conversations.models` so Django registers them in the app)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from conversations.models import Conversation  # defined before conversations.models imports this module
from identity.models import Tenant


class ConversationHandling(models.Model):
    """The human side of one conversation: needs a human, inbox status, assignee, current takeover, unread.

    Created on the first event that concerns staff (the agent's hand-off, a staff reply or takeover, a patient
    message). ``ai_paused_until`` mirrors the active :class:`Takeover` for display; the AI's decision is
    :func:`conversations.selectors.ai_paused`, which reads ``Takeover``.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        RESOLVED = "resolved", "Resolved"

    conversation = models.OneToOneField(
        "conversations.Conversation", primary_key=True, on_delete=models.CASCADE, related_name="handling"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    needs_human = models.BooleanField(default=False)
    needs_human_reason = models.CharField(max_length=500, blank=True)
    needs_human_since = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    taken_over_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    taken_over_at = models.DateTimeField(null=True, blank=True)
    ai_paused_until = models.DateTimeField(null=True, blank=True)
    customer_waiting_since = models.DateTimeField(
        null=True, blank=True, help_text="The patient's oldest message staff have not answered yet."
    )
    unread = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "conversation_handling"
        indexes = [models.Index(fields=["tenant", "-needs_human", "-updated_at"], name="handling_inbox")]

    def __str__(self) -> str:
        return f"Handling of {self.conversation_id}"


class Takeover(models.Model):
    """A period during which staff answer and the AI does not: from ``started_at`` until the earlier of
    ``released_at`` ("Return to AI") and ``paused_until`` (the tenant's idle timeout after the last staff
    action, extended by every staff message). At most one unreleased row per conversation."""

    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE, related_name="takeovers")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField()
    paused_until = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    release_reason = models.CharField(max_length=20, blank=True, help_text="staff | idle | api | superseded")

    class Meta:
        db_table = "conversation_takeovers"
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"], condition=Q(released_at__isnull=True), name="one_active_takeover"
            ),
            models.CheckConstraint(condition=Q(paused_until__gte=models.F("started_at")), name="takeover_order"),
        ]
        indexes = [models.Index(fields=["conversation", "-started_at"], name="takeover_recent")]

    def __str__(self) -> str:
        return f"Takeover of {self.conversation_id} at {self.started_at:%Y-%m-%d %H:%M}"


class InboxNote(models.Model):
    """An internal note on a conversation: staff only, never sent to the patient, not in ``call_logs``."""

    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE, related_name="notes")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = "conversation_notes"
        indexes = [models.Index(fields=["conversation", "created_at"], name="note_conversation")]

    def __str__(self) -> str:
        return f"Note {self.pk} on {self.conversation_id}"


class InboxConversation(Conversation):
    """Admin entry of the staff inbox (a proxy of ``Conversation``; no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "inbox"
        verbose_name_plural = "inbox"


class CannedResponse(models.Model):
    """A tenant's saved reply for the inbox's reply box. ``body`` may use ``{patient_first_name}``,
    ``{patient_name}``, ``{staff_first_name}`` and ``{clinic}``; unknown placeholders stay as typed."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=100)
    body = models.TextField(max_length=1600)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "inbox_canned_responses"
        constraints = [models.UniqueConstraint(fields=["tenant", "title"], name="canned_title_once")]

    def __str__(self) -> str:
        return self.title
