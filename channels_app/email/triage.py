"""The EmailTriageAgent: what happens to an accepted inbound email (runs in a Celery task after ingest).

1. Urgency of the new text (subject + reply, not the quoted history) by the tenant's emergency phrases and,
   with ``OPENAI_API_KEY`` set, the LLM backend (:func:`channels_app.voice.assess.assess`, shared with voice).
2. Urgent (4–5): ``escalation_requested`` on commit — the escalation app decides from its own settings
   (business hours, threshold, ``escalate_in_business_hours``) whether to page, and raises at most one
   incident per interaction — plus a staff handoff; the patient gets a safety answer, not the agent.
3. Otherwise the agent engine answers (``conversations.engine.respond``; tools may book / move / cancel).
4. Either answer goes back as a threaded reply (:func:`channels_app.email.outbound.email_reply_prepare`).

Idempotent: the inbound row is locked and marked ``triaged_at``; the reply is keyed by the inbound id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from channels_app.email.outbound import email_reply_prepare
from channels_app.models import InboundEmail
from channels_app.voice.assess import assess
from conversations import engine
from conversations.agent.services import handoff_request
from conversations.models import Interaction
from conversations.services import interaction_set_assessment
from conversations.signals import escalation_requested

logger = logging.getLogger(__name__)

URGENT = 4
URGENT_REPLY = ("{clinic}: we received your message and flagged it as urgent for our clinical team. "
                "If this is a medical emergency, call 911 (or your local emergency number) now.")


@dataclass
class TriageOutcome:
    """``decision``: ``escalated`` | ``answered`` | ``skipped``; ``urgency`` 1–5; ``reply_id`` the outbound row."""

    decision: str
    urgency: int = 0
    reply_id: int | None = None


class EmailTriageAgent:
    """Classify one accepted inbound email and answer it (see the module docstring)."""

    def handle(self, inbound: InboundEmail) -> TriageOutcome:
        """Triage ``inbound`` (locked by the caller, status ``accepted``, not yet triaged)."""
        tenant = inbound.tenant
        interaction = Interaction.objects.select_related("tenant", "customer", "conversation").get(
            pk=inbound.interaction_id)
        text = inbound.reply_text or ""
        assessment = assess(tenant=tenant, text=f"{inbound.subject}\n{text}".strip(), channel="email")
        interaction_set_assessment(interaction=interaction, urgency=assessment.urgency,
                                   intent=assessment.intent if assessment.intent != "other" else None)
        if assessment.urgency >= URGENT:
            reason = assessment.reason or "urgent email"
            handoff_request(interaction=interaction, reason=f"Urgent email ({reason}); see the transcript.")
            interaction_id, level = interaction.pk, assessment.urgency
            transaction.on_commit(lambda: escalation_requested.send(
                sender=Interaction, interaction_id=interaction_id, urgency=level, reason=reason))
            body, decision = URGENT_REPLY.format(clinic=tenant.short_name), "escalated"
        else:
            body, decision = engine.respond(interaction=interaction, text=text or inbound.subject).text, "answered"
        inbound.interaction = interaction
        reply, _ = email_reply_prepare(inbound=inbound, body=body)
        return TriageOutcome(decision=decision, urgency=assessment.urgency, reply_id=reply.pk)


def email_triage(*, inbound_id) -> TriageOutcome:
    """Run the EmailTriageAgent once for an accepted inbound email; a second run is a no-op (``skipped``)."""
    with transaction.atomic():
        inbound = InboundEmail.objects.select_for_update(of=("self",)).select_related("tenant").filter(
            pk=inbound_id).first()
        if inbound is None or inbound.status != InboundEmail.Status.ACCEPTED or inbound.triaged_at:
            return TriageOutcome(decision="skipped")
        outcome = EmailTriageAgent().handle(inbound)
        inbound.triage = {"decision": outcome.decision, "urgency": outcome.urgency}
        inbound.triaged_at = timezone.now()
        inbound.save(update_fields=["triage", "triaged_at"])
    logger.info("email %s triaged: %s (urgency %s)", inbound_id, outcome.decision, outcome.urgency)
    return outcome
