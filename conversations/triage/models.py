"""Stored triage decisions: what staff review in admin (emergencies, urgent messages, every LLM opinion)."""

from __future__ import annotations

from django.db import models

from identity.models import Tenant


class TriageDecision(models.Model):
    """One triaged patient message worth reviewing: every emergency or urgent result and every message the LLM
    gave a second opinion on. ``disagreement`` is True when the LLM's level differs from the rules' (the higher
    one was acted on). Codes are non-PHI red-flag codes; the message itself stays in the transcript."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    interaction = models.ForeignKey(
        "conversations.Interaction", on_delete=models.CASCADE, related_name="triage_decisions"
    )
    channel = models.CharField(max_length=16)
    level = models.CharField(max_length=10)
    rules_level = models.CharField(max_length=10)
    llm_level = models.CharField(max_length=10, blank=True)
    codes = models.JSONField(default=list, blank=True)
    llm_codes = models.JSONField(default=list, blank=True)
    llm_rationale = models.CharField(max_length=300, blank=True)
    llm_error = models.CharField(max_length=120, blank=True)
    language = models.CharField(max_length=8)
    engine = models.CharField(max_length=16)
    kb_version = models.CharField(max_length=32)
    disagreement = models.BooleanField(default=False)
    reviewed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["tenant", "disagreement", "reviewed"]),
        ]

    def __str__(self) -> str:
        return f"{self.level} ({', '.join(self.codes) or 'no red flag'})"
