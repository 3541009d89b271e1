"""The texts that follow an acknowledgement, each at most once (``IncidentNotice``):

- every other responder whose page reached the provider: "<clinic>: the urgent page was acknowledged by
  <responder's name>. No action is needed." (no PHI);
- the patient, when a clinician acknowledged: a holding message in their language ("Dr. Chen has been notified
  and will call you shortly"), recorded in their timeline as an outbound SMS turn.

The patient's text is created through ``conversations.services`` (a pending ``ChannelMessage``) and handed to the
SMS channel's delivery task by name (``channels_app.tasks.sms_deliver_task``: escalation may not import the
channels app), which checks STOP opt-outs and records the provider's answer; channels' outbound redrive covers a
lost task.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.models import Channel, Direction
from conversations.services import message_prepare_outbound, session_open
from escalation.models import Incident, IncidentNotice, NotificationAttempt, Responder
from escalation.services.messages import claimed_text_send, tenant_number
from escalation.services.responders import patient_number
from identity.models import CustomerIdentifier, IdentifierKind
from providers import ProviderError

logger = logging.getLogger(__name__)

HOLDING_TEXTS = {
    "en": "{clinic}: {name} has been notified and will call you shortly. If it gets worse, call 911.",
    "es": "{clinic}: {name} ha recibido su mensaje y le llamará en breve. Si empeora, llame al 911.",
}


def colleague_text(*, clinic: str, name: str) -> str:
    """What the other paged responders read (no PHI: the clinic and the acknowledging clinician's name)."""
    return f"{clinic}: the urgent page was acknowledged by {name}. No action is needed."


def patient_language(incident: Incident) -> str:
    """``"es"`` or ``"en"``: the language triage recorded for the triggering interaction (its newest decision),
    else the triage engine's detection over the patient's turns (:mod:`conversations.triage`)."""
    from conversations.triage import assess_rules
    from conversations.triage.models import TriageDecision

    interaction = incident.interaction
    if interaction is None:
        return "en"
    recorded = (
        TriageDecision.objects.filter(interaction=interaction)
        .order_by("-created_at")
        .values_list("language", flat=True)
        .first()
    )
    if recorded in HOLDING_TEXTS:
        return recorded
    said = " ".join(
        str(t.get("text", "")) for t in (interaction.transcript or []) if t.get("role") in ("customer", "user")
    )
    language = assess_rules(said[-2000:]).language if said.strip() else "en"
    return language if language in HOLDING_TEXTS else "en"


def holding_text(*, clinic: str, name: str, language: str) -> str:
    return HOLDING_TEXTS.get(language, HOLDING_TEXTS["en"]).format(clinic=clinic, name=name)


def _notice_failed(rows, exc: ProviderError) -> None:
    rows.update(error=str(exc)[:300])


def _claim(incident: Incident, kind: str, to: str, now: datetime) -> IncidentNotice | None:
    try:
        with transaction.atomic():
            return IncidentNotice.objects.create(
                tenant_id=incident.tenant_id, incident=incident, kind=kind, to_number=to, claimed_at=now
            )
    except IntegrityError:
        return None  # already sent, or being sent


def incident_notify_acknowledged(*, incident_id, now: datetime | None = None) -> dict[str, int]:
    """Send the colleague and patient texts of an acknowledged incident (at most once each; a provider error is
    recorded on the notice and not retried). Returns ``{"colleagues", "patient"}`` counts sent now."""
    now = now or timezone.now()
    counts = {"colleagues": 0, "patient": 0}
    incident = (
        Incident.objects.select_related("tenant", "acknowledged_by", "interaction", "customer")
        .filter(pk=incident_id, status=Incident.Status.ACKNOWLEDGED)
        .first()
    )
    if incident is None:
        return counts
    tenant = incident.tenant
    name = incident.acknowledged_by.name if incident.acknowledged_by else f"{tenant.short_name} staff"
    try:
        sender = tenant_number(tenant)
    except ValueError:
        logger.error("incident %s: tenant has no number to send notices from", incident_id)
        return counts
    paged = NotificationAttempt.objects.filter(tenant=tenant, incident=incident, sent_at__isnull=False).values(
        "responder_id"
    )
    colleagues = Responder.objects.filter(tenant=tenant, pk__in=paged)
    if incident.acknowledged_by_id is not None:
        colleagues = colleagues.exclude(pk=incident.acknowledged_by_id)
    for colleague in colleagues.order_by("pk"):
        notice = _claim(incident, IncidentNotice.Kind.COLLEAGUE_ACK, colleague.phone, now)
        if notice is None:
            continue
        rows = IncidentNotice.objects.filter(pk=notice.pk)  # claimed by insert, once: never retried
        if claimed_text_send(
            row=rows,
            tenant=tenant,
            from_=sender,
            to=colleague.phone,
            body=colleague_text(clinic=tenant.short_name, name=name),
            on_error=partial(_notice_failed, rows),
        ):
            counts["colleagues"] += 1
    if incident.acknowledged_by is not None and _patient_holding(incident, sender, name, now):
        counts["patient"] = 1
    return counts


def _patient_holding(incident: Incident, sender: str, name: str, now: datetime) -> bool:
    """Queue the patient's holding text in their timeline (SMS), unless they have no phone or said STOP."""
    phone = patient_number(incident)
    if not phone or incident.customer is None:
        return False
    opted_out = CustomerIdentifier.objects.filter(
        tenant_id=incident.tenant_id, kind=IdentifierKind.PHONE, value=phone, sms_opted_out_at__isnull=False
    ).exists()
    if opted_out or _claim(incident, IncidentNotice.Kind.PATIENT_HOLDING, phone, now) is None:
        return False
    tenant = incident.tenant
    body = holding_text(clinic=tenant.short_name, name=name, language=patient_language(incident))
    with transaction.atomic():
        interaction = incident.interaction
        if interaction is None or interaction.channel != Channel.SMS or interaction.ended_at is not None:
            interaction, _ = session_open(
                tenant=tenant,
                customer=incident.customer,
                channel=Channel.SMS,
                direction=Direction.OUTBOUND,
                idle_window=tenant.sms_idle_window,
            )
        message, created = message_prepare_outbound(
            interaction=interaction,
            sender=sender,
            recipient=phone,
            body=body,
            idempotency_key=f"incident-holding:{incident.pk}",
        )
        if created:
            from celery import current_app

            message_id = message.pk
            transaction.on_commit(
                lambda: current_app.send_task("channels_app.tasks.sms_deliver_task", args=(message_id,)),
                robust=True,
            )
    IncidentNotice.objects.filter(incident=incident, kind=IncidentNotice.Kind.PATIENT_HOLDING).update(sent_at=now)
    return True
