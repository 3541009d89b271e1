"""Entry points other apps reach through signals and dotted-path settings (imports point one way).

- ``conversations.signals.customer_message_received`` → :func:`on_customer_message`: urgent inbound
  messages raise an incident (tenant's emergency phrases, urgency threshold, business hours).
- ``conversations.signals.escalation_requested`` → :func:`on_escalation_requested`: a channel judged an
  interaction urgent.
- ``settings.SMS_INBOUND_HANDLERS`` → :func:`claim_responder_sms` and ``settings.VOICE_INBOUND_HANDLERS`` →
  :func:`claim_responder_call`: a responder texting or calling the clinic line is not a patient
  (:mod:`escalation.services.responders`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.utils import timezone

from conversations.models import ChannelMessage, Interaction
from conversations.urgency import EMERGENCY, classify
from escalation.models import EscalationSettings, Incident
from escalation.services import ack_by_sms, incident_raise, incident_should_raise
from escalation.services.responders import responder_call_answer, responder_sms_claim
from identity.models import Tenant
from identity.normalize import normalize_phone

logger = logging.getLogger(__name__)


def _maybe_raise(*, interaction: Interaction, urgency: int, reason: str) -> Incident | None:
    if Incident.objects.filter(interaction=interaction).exists():
        return None
    config = EscalationSettings.objects.filter(tenant_id=interaction.tenant_id).select_related("tenant").first()
    if not incident_should_raise(config=config, urgency=urgency, at=timezone.now()):
        return None
    incident, created = incident_raise(interaction=interaction, urgency=urgency, reason=reason)
    return incident if created else None


def screen_message(*, message_id: int, text: str | None = None) -> Incident | None:
    """Classify one inbound customer message by the tenant's rules and raise an incident if it pages."""
    message = ChannelMessage.objects.select_related("interaction__tenant").get(pk=message_id)
    interaction = message.interaction
    tenant = interaction.tenant
    urgency = classify(
        message.body if text is None else text,
        emergency_phrases=tenant.emergency_phrases,
        intent_name=interaction.intent,
    )
    reason = "emergency phrase" if urgency >= EMERGENCY else "urgent words"
    return _maybe_raise(interaction=interaction, urgency=urgency, reason=reason)


def on_customer_message(sender, *, interaction_id, message_id, text, **kwargs) -> None:
    """Receiver of ``customer_message_received`` (runs on commit in the web process, in milliseconds).

    Never lets an error escape into the patient's webhook: on failure the screening is queued as a task
    (retried with backoff), so a message is not lost to a transient database error.
    """
    try:
        screen_message(message_id=message_id, text=text)
    except Exception:
        logger.exception("screening message %s failed; queueing it", message_id)
        from escalation.tasks import incident_screen_message

        incident_screen_message.delay(message_id)


def on_escalation_requested(sender, *, interaction_id, urgency: int, reason: str = "", **kwargs) -> None:
    """Receiver of ``escalation_requested``: raise at most one incident for the interaction."""
    interaction = Interaction.objects.filter(pk=interaction_id).first()
    if interaction is None:
        logger.warning("escalation requested for unknown interaction %s", interaction_id)
        return
    _maybe_raise(interaction=interaction, urgency=int(urgency), reason=reason or "requested by channel")


def claim_responder_sms(tenant: Tenant, params: Mapping[str, str]) -> bool:
    """``SMS_INBOUND_HANDLERS`` hook: claim every SMS from an active responder's number before the patient flow
    sees it ("1"/"ACK" acknowledges, "2" connects them to the patient, anything else gets the menu). A number
    that once was a responder's (inactive now) still has a late "ACK" claimed. False: a patient's message."""
    if responder_sms_claim(tenant=tenant, params=params):
        return True
    phone = normalize_phone(params.get("From"), tenant.country)
    if not phone:
        return False
    return ack_by_sms(tenant=tenant, phone=phone, body=params.get("Body", ""))


def claim_responder_call(tenant: Tenant, params: Mapping[str, str]) -> str | None:
    """``VOICE_INBOUND_HANDLERS`` hook: TwiML for a call from an active responder's number (never the patient
    agent); None for everyone else."""
    return responder_call_answer(tenant=tenant, params=params)
