"""One satisfaction survey per conversation: asked on a channel, answered 1–5 (or declined)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from identity.models import Customer, Tenant


class SatisfactionSurvey(models.Model):
    """ "How did we do? 1–5" asked about one closed session (``interaction``) on ``channel``.

    Unique per conversation: a patient is never asked twice about one conversation (a task run twice, two
    sessions closing together). ``score`` is set once, when answered.
    """

    class Status(models.TextChoices):
        ASKED = "asked", "Asked"
        ANSWERED = "answered", "Answered"
        DECLINED = "declined", "Declined (no more surveys)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="surveys")
    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE, related_name="+")
    interaction = models.ForeignKey("conversations.Interaction", on_delete=models.CASCADE, related_name="surveys")
    channel = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ASKED)
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    asked_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation"], name="survey_once_per_conversation"),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | (Q(score__gte=1) & Q(score__lte=5)), name="survey_score_range"
            ),
        ]
        indexes = [models.Index(fields=["customer", "-asked_at"]), models.Index(fields=["tenant", "-asked_at"])]

    def __str__(self) -> str:
        return f"Survey {self.pk} ({self.status})"
