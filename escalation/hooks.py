"""Entry points other apps reach through signals and dotted-path settings (imports point one way).

- ``conversations.signals.customer_message_received`` → :func:`on_customer_message`: every inbound message is
  triaged; an emergency pages after hours (or alerts staff in opening hours), an urgent one is queued for a
  staff callback.
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
from conversations.triage import assess_rules
from escalation.models import EscalationSettings, Incident
from escalation.services import ack_by_sms, incident_raise, incident_should_raise
from escalation.services.responders import responder_call_answer, responder_sms_claim
from escalation.services.staff_alerts import staff_alert_emergency, staff_alert_urgent
from identity.models import Tenant
from identity.normalize import normalize_phone

logger = logging.getLogger(__name__)

EMERGENCY, URGENT = 5, 4


def _maybe_raise(*, interaction: Interaction, urgency: int, reason: str) -> Incident | None:
    """Act on a triaged interaction: an emergency pages after hours (tenant settings) or alerts staff in opening
    hours; an urgent one joins the staff callback queue. Only emergencies page (the triage rules' "urgent" is a
    callback, never a page). Returns the incident raised, if any."""
    if urgency < EMERGENCY:
        if urgency >= URGENT:
            staff_alert_urgent(interaction=interaction, reason=reason)
        return None
    if Incident.objects.filter(interaction=interaction).exists():
        return None
    config = EscalationSettings.objects.filter(tenant_id=interaction.tenant_id).select_related("tenant").first()
    if not incident_should_raise(config=config, urgency=urgency, at=timezone.now()):
        staff_alert_emergency(interaction=interaction, reason=reason)
        return None
    incident, created = incident_raise(interaction=interaction, urgency=urgency, reason=reason)
    return incident if created else None


def screen_message(*, message_id: int, text: str | None = None, tenant: Tenant | None = None) -> Incident | None:
    """Triage one inbound customer message by the rules (:mod:`conversations.triage`, no network) and act on it
    (:func:`_maybe_raise`). The LLM's second opinion runs with the reply (``conversations.engine``) and can
    only raise the level, through ``escalation_requested``.

    With ``text`` and the message's ``tenant`` (the signal passes both) a routine message, most of them, reads
    nothing; otherwise (the retry task, by id only) the message is read first. The interaction is read only when
    there is something to act on."""
    if text is None or tenant is None:
        message = ChannelMessage.objects.select_related("interaction__tenant").get(pk=message_id)
        text, tenant = message.body, message.interaction.tenant
    result = assess_rules(text, phrases=tenant.emergency_phrases or [])
    if result.urgency < URGENT:
        return None  # _maybe_raise would do nothing
    interaction = Interaction.objects.select_related("tenant").get(messages__pk=message_id)
    return _maybe_raise(interaction=interaction, urgency=result.urgency, reason=result.reason or "urgent")


def on_customer_message(sender, *, interaction_id, message_id, text, tenant: Tenant | None = None, **kwargs) -> None:
    """Receiver of ``customer_message_received`` (runs on commit in the web process, in milliseconds).

    Never lets an error escape into the patient's webhook: on failure the screening is queued as a task
    (retried with backoff), so a message is not lost to a transient database error.
    """
    try:
        screen_message(message_id=message_id, text=text, tenant=tenant)
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
