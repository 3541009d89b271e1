"""A responder calling or texting the clinic line is a responder, not a patient.

``SMS_INBOUND_HANDLERS`` / ``VOICE_INBOUND_HANDLERS`` hooks (``escalation.hooks``) call these before the patient
flow: a message or call from an active responder's number (E.164, same tenant) is claimed — never recorded as a
patient interaction, never screened for urgency, so it never raises an incident. While an incident that paged
them is open (or one they acknowledged in the last :data:`RECENT`), they read / hear "1 to acknowledge, 2 to be
connected to the patient"; ``2`` bridges them to the patient from the clinic's number (``<Dial callerId>``), so
neither side sees the other's personal number; "RESOLVED <note>" by SMS resolves it. SMS answers carry no PHI; one row per MessageSid / CallSid
(``ResponderContact``), and the reply / bridge call goes out once, from a task on the ``escalation`` queue.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from escalation.models import ContactChannel, Incident, NotificationAttempt, Responder, ResponderContact
from escalation.services.incidents import incident_acknowledge, incident_resolve
from escalation.services.messages import bridge_twiml, responder_menu_twiml, tenant_number
from identity.models import CustomerIdentifier, IdentifierKind, Tenant
from identity.normalize import normalize_phone
from providers import ProviderError
from providers.sms import get_sms_backend
from providers.voice import get_voice_backend

logger = logging.getLogger(__name__)

#: An incident the responder acknowledged this recently still offers "2 to be connected to the patient".
RECENT = timedelta(hours=12)
ACK_WORDS = frozenset({"ACK", "1"})
CONNECT_WORDS = frozenset({"2", "CALL"})
#: "RESOLVED <note>" from the responder closes the loop (the note is kept on the incident, never texted).
RESOLVE_WORD = "RESOLVED"
Action = ResponderContact.Action


def responder_by_number(*, tenant: Tenant, raw: str | None) -> Responder | None:
    """The tenant's active responder with this phone number (normalised to E.164), or None."""
    phone = normalize_phone(raw, tenant.country)
    if not phone:
        return None
    return Responder.objects.filter(tenant=tenant, phone=phone, active=True).first()


def responder_incident(*, tenant: Tenant, responder: Responder, now: datetime | None = None) -> Incident | None:
    """The incident a responder's call or text is about: the newest still paging that paged them, else the newest
    they acknowledged within :data:`RECENT`."""
    now = now or timezone.now()
    paged = (
        NotificationAttempt.objects.filter(tenant=tenant, responder=responder)
        .exclude(status=NotificationAttempt.Status.SKIPPED)
        .values("incident_id")
    )
    scoped = Incident.objects.filter(tenant=tenant).select_related("tenant")
    open_ = scoped.filter(status=Incident.Status.TRIGGERED, pk__in=paged).order_by("-raised_at").first()
    if open_ is not None:
        return open_
    return (
        scoped.filter(status=Incident.Status.ACKNOWLEDGED, acknowledged_by=responder, acknowledged_at__gte=now - RECENT)
        .order_by("-acknowledged_at")
        .first()
    )


def patient_number(incident: Incident) -> str:
    """The patient's phone (E.164) to connect a responder to: a verified one first; "" if none on file."""
    if incident.customer_id is None:
        return ""
    return (
        CustomerIdentifier.objects.filter(
            tenant_id=incident.tenant_id, customer_id=incident.customer_id, kind=IdentifierKind.PHONE
        )
        .order_by("-verified", "id")
        .values_list("value", flat=True)
        .first()
        or ""
    )


def _clinic_number(tenant: Tenant, params: Mapping[str, str]) -> str:
    """Our end of the exchange: the number they called or texted (the tenant's, found by ``To``)."""
    return normalize_phone(params.get("To"), tenant.country) or tenant_number(tenant)


def _acknowledge(incident: Incident, responder: Responder, via: str, channel: str) -> Action:
    """Acknowledge as ``responder`` if still paging; ACK, or ALREADY if a colleague (or the ladder) closed it."""
    if incident.status == Incident.Status.ACKNOWLEDGED:
        return Action.ACK if incident.acknowledged_by_id == responder.pk else Action.ALREADY
    attempt = (
        NotificationAttempt.objects.filter(incident=incident, responder=responder, channel=channel)
        .order_by("-created_at")
        .first()
    )
    if incident_acknowledge(incident=incident, responder=responder, via=via, attempt=attempt):
        return Action.ACK
    incident.refresh_from_db(fields=["status", "acknowledged_by"])
    return Action.ACK if incident.acknowledged_by_id == responder.pk else Action.ALREADY


def sms_reply_text(*, clinic: str, action: str) -> str:
    """The SMS answer to a responder (no PHI: the clinic's name and what to do)."""
    return {
        Action.MENU: f"{clinic}: an urgent page is open. Reply 1 to acknowledge, 2 to be connected to the patient.",
        Action.ACK: f"{clinic}: acknowledged, nobody else will be paged. Reply 2 to be connected to the patient.",
        Action.CONNECT: f"{clinic}: calling you now to connect you to the patient from the clinic's number.",
        Action.ALREADY: f"{clinic}: this page was already acknowledged by a colleague. No action is needed.",
        Action.NONE: f"{clinic}: no urgent page is open for you. This is the clinic's automated patient line.",
        Action.NO_NUMBER: f"{clinic}: acknowledged. No patient phone number is on file; see the incident in admin.",
        Action.RESOLVED: f"{clinic}: the page is marked resolved. Thank you.",
    }[Action(action)]


def responder_sms_claim(*, tenant: Tenant, params: Mapping[str, str], now: datetime | None = None) -> bool:
    """Claim an SMS from a responder's number (True), act on ``1``/``ACK`` or ``2``/``CALL``, and queue the answer
    on commit. False (not a responder): the patient flow handles it. A redelivered MessageSid does nothing."""
    responder = responder_by_number(tenant=tenant, raw=params.get("From"))
    if responder is None:
        return False
    now = now or timezone.now()
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    word = (params.get("Body") or "").strip().strip(".!").upper()
    with transaction.atomic():
        incident = responder_incident(tenant=tenant, responder=responder, now=now)
        try:
            with transaction.atomic():
                contact = ResponderContact.objects.create(
                    tenant=tenant,
                    responder=responder,
                    incident=incident,
                    channel=ContactChannel.SMS,
                    provider_sid=sid,
                    received_at=now,
                    action=Action.NONE,
                )
        except IntegrityError:
            logger.info("duplicate responder SMS %s ignored", sid)
            return True
        action = Action.NONE if incident is None else Action.MENU
        if incident is not None and word.startswith(RESOLVE_WORD):
            note = (params.get("Body") or "").strip()[len(RESOLVE_WORD) :].strip(" :-.\n")
            incident_resolve(incident=incident, note=note, via=Incident.AckVia.SMS, responder=responder, at=now)
            action = Action.RESOLVED
        elif incident is not None and word in ACK_WORDS | CONNECT_WORDS:
            action = _acknowledge(incident, responder, Incident.AckVia.SMS, ContactChannel.SMS)
            if action == Action.ACK and word in CONNECT_WORDS:
                action = Action.CONNECT if patient_number(incident) else Action.NO_NUMBER
        contact.action = action
        contact.reply_text = sms_reply_text(clinic=tenant.short_name, action=action)
        contact.save(update_fields=["action", "reply_text"])
        _followup_on_commit(contact.pk)
    return True


def responder_call_answer(*, tenant: Tenant, params: Mapping[str, str], now: datetime | None = None) -> str | None:
    """TwiML for an incoming call from a responder's number (None: not a responder, the patient flow answers).
    An open page: "press 1 to acknowledge, 2 to be connected to the patient"; none: say so and hang up."""
    responder = responder_by_number(tenant=tenant, raw=params.get("From"))
    if responder is None:
        return None
    now = now or timezone.now()
    incident = responder_incident(tenant=tenant, responder=responder, now=now)
    action = Action.NONE if incident is None else Action.MENU
    ResponderContact.objects.bulk_create(
        [
            ResponderContact(
                tenant=tenant,
                responder=responder,
                incident=incident,
                channel=ContactChannel.VOICE,
                provider_sid=params.get("CallSid", ""),
                received_at=now,
                action=action,
            )
        ],
        ignore_conflicts=True,  # Twilio retrying the webhook of the same CallSid
    )
    return responder_menu_twiml(tenant=tenant, incident=incident)


def responder_call_key(*, tenant: Tenant, params: Mapping[str, str], incident_id) -> str:
    """TwiML for a key pressed on a responder's call about ``incident_id`` (from our own ``<Gather action>``, and
    checked again: the caller must be a responder that incident paged, in this tenant)."""
    responder = responder_by_number(tenant=tenant, raw=params.get("From"))
    incident = responder_incident(tenant=tenant, responder=responder) if responder else None
    if responder is None or incident is None or str(incident.pk) != str(incident_id):
        return responder_menu_twiml(tenant=tenant, incident=None)
    digit = (params.get("Digits") or "").strip()
    if digit not in ("1", "2"):
        return responder_menu_twiml(tenant=tenant, incident=incident, again=True)
    action = _acknowledge(incident, responder, Incident.AckVia.KEYPRESS, ContactChannel.VOICE)
    patient = patient_number(incident) if action == Action.ACK and digit == "2" else ""
    if patient:
        action = Action.CONNECT
    elif action == Action.ACK and digit == "2":
        action = Action.NO_NUMBER
    ResponderContact.objects.filter(
        tenant=tenant, channel=ContactChannel.VOICE, provider_sid=params.get("CallSid", "")
    ).update(action=action, incident=incident)
    if action == Action.CONNECT:
        return bridge_twiml(tenant=tenant, caller_id=_clinic_number(tenant, params), patient=patient)
    return responder_menu_twiml(tenant=tenant, incident=incident, outcome=action)


def _followup_on_commit(contact_id: int) -> None:
    from escalation.tasks import responder_contact_followup_task

    transaction.on_commit(lambda: responder_contact_followup_task.delay(contact_id), robust=True)


def responder_contact_followup(*, contact_id: int, now: datetime | None = None) -> bool:
    """Send the SMS answer and, for ``connect``, place the bridge call to the responder — at most once (claimed by
    ``followed_up_at``; a crash mid-way loses the answer rather than sending it twice). True if it ran now."""
    now = now or timezone.now()
    claimed = ResponderContact.objects.filter(
        Q(followed_up_at__isnull=True), pk=contact_id, channel=ContactChannel.SMS
    ).update(followed_up_at=now)
    if not claimed:
        return False
    contact = ResponderContact.objects.select_related("tenant", "responder", "incident").get(pk=contact_id)
    tenant = contact.tenant
    sender = tenant_number(tenant)
    updates: dict = {}
    try:
        if contact.reply_text:
            sent = get_sms_backend().send(
                tenant=tenant, from_=sender, to=contact.responder.phone, body=contact.reply_text
            )
            updates["reply_sid"] = sent.sid
        if contact.action == Action.CONNECT and contact.incident is not None:
            patient = patient_number(contact.incident)
            call = get_voice_backend().place_call(
                tenant=tenant,
                from_=sender,
                to=contact.responder.phone,
                twiml=bridge_twiml(tenant=tenant, caller_id=sender, patient=patient),
            )
            updates["bridge_sid"] = call.sid
    except ProviderError as exc:
        updates["error"] = str(exc)[:300]
        logger.warning("answer to responder contact %s failed", contact_id, exc_info=True)
    if updates:
        ResponderContact.objects.filter(pk=contact_id).update(**updates)
    return True


def page_call_connect(*, attempt: NotificationAttempt) -> str | None:
    """``2`` pressed on a page call: acknowledge as the called responder if still paging, then TwiML that
    ``<Dial>``s the patient with the clinic's number (the call's own ``From``) as caller id. None when that does
    not apply (a colleague acknowledged, the ladder ran out, or no patient number): the caller says what happened."""
    incident = Incident.objects.select_related("tenant").get(pk=attempt.incident_id)
    if incident.status == Incident.Status.TRIGGERED:
        _acknowledge(incident, attempt.responder, Incident.AckVia.KEYPRESS, ContactChannel.VOICE)
        incident.refresh_from_db(fields=["status", "acknowledged_by"])
    if incident.status != Incident.Status.ACKNOWLEDGED or incident.acknowledged_by_id != attempt.responder_id:
        return None
    patient = patient_number(incident)
    if not patient:
        return None
    return bridge_twiml(tenant=incident.tenant, caller_id=attempt.from_number, patient=patient)
