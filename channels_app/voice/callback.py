"""Calling a patient back: a ``request_callback`` from any channel becomes an outbound call.

``conversations.signals.callback_requested(interaction_id, callback_request_id)`` → the ``voice_place_callback``
task (at the request's ``preferred_at`` when that is in the future) → :func:`callback_place`, which opens an
outbound ``voice`` row once per request (idempotency key ``callback:<id>``) and dials through
``VOICE_BACKEND`` with answering-machine detection (``MachineDetection=DetectMessageEnd``) and the ``url`` of the
signed webhook ``/twilio/voice/callback/<id>/answer/`` (:func:`callback_answered`). Twilio posts ``AnsweredBy``
there (https://www.twilio.com/docs/voice/answering-machine-detection): for ``human`` or ``unknown`` the first
words carry the conversation's context — what it was about as a fixed phrase ("about booking an appointment") —
never a name, their own words, a symptom or anything they did not tell us, and the same turn loop as an inbound
call runs; for a machine (``machine_*``) or ``fax`` a generic message (clinic name, "please call us back at
<our number>") is left and the call hung up, and the request is marked ``failed`` (outcome ``left_message`` in the
call's metadata) so staff follow up. ``DetectMessageEnd`` rather than ``Enable``: Twilio then answers a machine
only after its greeting ends (``machine_end_beep`` / ``_silence`` / ``_other``), so the message is recorded
whole instead of being spoken over the greeting; a human is reported as fast as with ``Enable``. Only a
verified phone of the customer is ever dialled (:func:`_callee_phone`); without one the request is ``failed``
for staff to follow up.

The send is exactly-once per request (:mod:`channels_app.delivery`: claim → dial → record, no lock held across
the HTTP call): when an earlier attempt may have reached Twilio (a 5xx, a read timeout, a killed worker), the
retry first looks for a call Twilio placed since that attempt and that we do not already own (``find_recent``)
before dialling again.
"""

from __future__ import annotations

import logging
import re

import phonenumbers
from django.db import transaction
from django.utils import timezone

from channels_app.delivery import (
    Claim,
    delivery_claim,
    delivery_record_failed,
    delivery_record_sent,
    delivery_release,
    known_provider_ids,
)
from channels_app.voice import twiml
from channels_app.voice.status import CALL_STATUS_RANK
from conversations import selectors
from conversations.models import CallbackRequest, Channel, ChannelMessage, Direction, Interaction
from conversations.services import (
    call_open,
    callback_request_set_status,
    interaction_append_turn,
    interaction_close,
    interaction_set_metadata,
    message_status_update,
)
from conversations.triage import assess_rules
from identity.models import CustomerIdentifier, IdentifierKind, Tenant
from identity.normalize import normalize_phone
from providers import ProviderPermanentError, ProviderTransientError
from providers.voice import get_voice_backend

logger = logging.getLogger(__name__)

OPEN = (CallbackRequest.Status.REQUESTED, CallbackRequest.Status.IN_PROGRESS)
ANSWER_PATH = "/twilio/voice/callback/{id}/answer/"
#: Twilio's MachineDetection mode for callbacks (see module docstring)
MACHINE_DETECTION = "DetectMessageEnd"
#: AnsweredBy values after which we talk to the callee; every other one (machine_*, fax) gets the generic message
HUMAN_ANSWERS = ("human", "unknown", "")
_TOPICS = {  # intent → what we may say out loud to whoever picks up
    "book": "booking an appointment",
    "reschedule": "moving your appointment",
    "book_appointment": "booking an appointment",
    "reschedule_appointment": "moving your appointment",
    "cancel_appointment": "your appointment",
    "billing": "your billing question",
    "general_question": "your question",
}
_TOPIC_WORDS = [  # when the tenant's intent examples do not match the request's wording
    (re.compile(r"\b(reschedul\w*|move|change)\b.{0,30}\bappointment", re.I), "moving your appointment"),
    (re.compile(r"\bcancel\w*\b.{0,30}\bappointment", re.I), "your appointment"),
    (re.compile(r"\b(book\w*|appointment|schedul\w*)\b", re.I), "booking an appointment"),
    (re.compile(r"\b(bill\w*|invoice|payment|insurance|cost|price)\b", re.I), "your billing question"),
]
_VIA = {
    Channel.CHAT: "in our chat",
    Channel.SMS: "by text",
    Channel.EMAIL: "by email",
    Channel.VOICE: "on the phone",
    Channel.VOICEMAIL: "in your voicemail",
}


def callback_first_words(request: CallbackRequest) -> str:
    """What the callee hears first: who calls, about what (a fixed phrase), asked where. Never a name: whoever
    answers — or the voicemail box — may not be the patient, and a name plus a clinic is PHI (DESIGN.md)."""
    state = selectors.state_get_all(conversation=request.conversation)
    pending = state.get("pending") or {}
    topic = _TOPICS.get(pending.get("intent", "")) if isinstance(pending, dict) else None
    if topic is None and request.reason:
        topic = _TOPICS.get(assess_rules(request.reason).intent)
        topic = topic or next((phrase for pattern, phrase in _TOPIC_WORDS if pattern.search(request.reason)), None)
    via = _VIA.get(request.interaction.channel, "") if request.interaction_id else ""
    words = f"Hello, this is {request.tenant.short_name} calling you back"
    words += f" about {topic}" if topic else ""
    words += f", as you asked {via}." if via else "."
    return words + " How can I help?"


def _callee_phone(request: CallbackRequest) -> str | None:
    """The number to call: the request's own if it is a verified phone of the request's customer, else the
    customer's oldest verified phone, else None. Verified means proven (an SMS or call came from it, or its
    chat code was typed back): an unverified number — merely typed in chat or an email — is never called, so
    a callback cannot be aimed at a stranger's or a premium-rate number (toll fraud, harassment)."""
    verified = CustomerIdentifier.objects.filter(
        tenant_id=request.tenant_id, customer_id=request.customer_id, kind=IdentifierKind.PHONE, verified=True
    )
    phone = normalize_phone(request.phone, request.tenant.country) if request.phone else None
    if phone and verified.filter(value=phone).exists():
        return phone
    if phone:
        logger.warning("callback %s: its number is not a verified phone of the customer", request.pk)
    return verified.order_by("created_at", "id").values_list("value", flat=True).first()


def callback_place(*, callback_request_id: int) -> ChannelMessage | None:
    """Place the call of one callback request (idempotent; see module docstring). Returns the call's message,
    or None when the request is gone, closed, or has no verified number (the request is then ``failed``, for
    staff to follow up). Raises ProviderTransientError for a retry."""
    from channels_app.sms.services import tenant_sender_number

    request = (
        CallbackRequest.objects.select_related("tenant", "customer", "conversation", "interaction")
        .filter(pk=callback_request_id)
        .first()
    )
    if request is None or request.status not in OPEN:
        return None
    tenant, phone = request.tenant, _callee_phone(request)
    if not phone:
        logger.warning("callback %s: no verified phone number to call", request.pk)
        callback_request_set_status(
            callback_request_id=request.pk, status=CallbackRequest.Status.FAILED, only_from=OPEN
        )
        return None
    with transaction.atomic():
        received = call_open(
            tenant=tenant,
            customer=request.customer,
            sender=tenant_sender_number(tenant),
            recipient=phone,
            status="pending",
            idempotency_key=f"callback:{request.pk}",
            direction=Direction.OUTBOUND,
            metadata={"callback_request_id": request.pk, "call_status": "pending"},
        )
        callback_request_set_status(
            callback_request_id=request.pk,
            status=CallbackRequest.Status.IN_PROGRESS,
            only_from=(CallbackRequest.Status.REQUESTED,),
        )
    return _dial(message_id=received.message.pk, request_id=request.pk)


def _dial(*, message_id: int, request_id: int) -> ChannelMessage:
    claim = delivery_claim(message_id=message_id)
    if not isinstance(claim, Claim):
        return claim
    message, backend = claim.message, get_voice_backend()
    interaction, tenant = message.interaction, message.tenant
    try:
        if claim.reconcile_since is not None:
            found = backend.find_recent(
                tenant=tenant,
                from_=message.sender,
                to=message.recipient,
                since=claim.reconcile_since,
                exclude=known_provider_ids(message=message, since=claim.reconcile_since),
            )
            if found:
                logger.info("callback call %s found at the provider after an uncertain attempt", found.sid)
                _mark_placed(message, found.sid, found.status)
                return message
        placed = backend.place_call(
            tenant=tenant,
            from_=message.sender,
            to=message.recipient,
            url=twiml.url(ANSWER_PATH.format(id=request_id)),
            machine_detection=MACHINE_DETECTION,
            status_callback=twiml.url(twiml.STATUS_PATH),
        )
    except ProviderPermanentError as exc:
        with transaction.atomic():
            if not delivery_record_failed(claim=claim, error_code=exc.code):
                return message  # superseded by a newer attempt (or already recorded): that one decides
            interaction_set_metadata(interaction=interaction, updates={"call_status": "failed"})
            interaction_close(interaction=interaction)
            callback_call_ended(interaction=interaction, status="failed")
        logger.warning("callback call %s failed permanently: code %s", message.pk, exc.code or "?")
        return message
    except ProviderTransientError as exc:
        delivery_release(claim=claim, request_sent=exc.request_sent)
        raise
    _mark_placed(message, placed.sid, placed.status)
    return message


def _mark_placed(message: ChannelMessage, sid: str, status: str) -> None:
    with transaction.atomic():
        if not delivery_record_sent(message=message, provider_id=sid, status="queued"):
            return
        if status and status != "queued":
            message_status_update(channel=Channel.VOICE, provider_id=sid, status=status, rank=CALL_STATUS_RANK)
        interaction_set_metadata(
            interaction=message.interaction, updates={"call_sid": sid, "call_status": status or "queued"}
        )


def _spoken_number(e164: str, country: str) -> str:
    """``+15550100001`` → ``"5 5 5, 0 1 0, 0 0 0 1"``: the national format read digit by digit, a pause per group."""
    try:
        national = phonenumbers.format_number(
            phonenumbers.parse(e164, country or None), phonenumbers.PhoneNumberFormat.NATIONAL
        )
    except phonenumbers.NumberParseException:
        national = e164
    groups = re.findall(r"\d+", national)
    return ", ".join(" ".join(group) for group in groups)


def callback_machine_message(*, tenant: Tenant, number: str) -> str:
    """What a voicemail box (or fax) hears: the clinic's short name and our number — nothing about the patient
    or the request, since anyone may play the box back (DESIGN.md, PHI)."""
    return (
        f"Hello, this is {tenant.short_name} returning your call. Please call us back at "
        f"{_spoken_number(number, tenant.country)}. Thank you, goodbye."
    )


def callback_answered(*, tenant: Tenant, callback_request_id: int, params) -> str | None:
    """Twilio's answer webhook of a callback call (``AnsweredBy`` per answering-machine detection); returns TwiML,
    or None if ``tenant`` has no such request (the view answers 404).

    Human / unknown: the callback's first words in a speech Gather for turn 1 (then the inbound turn loop).
    Machine / fax: :func:`callback_machine_message` then hang up; the request becomes ``failed`` and the call's
    metadata gets ``callback_outcome="left_message"``. ``answered_by`` is stored once under a row lock: a replayed
    request answers the same branch without a second transcript turn. A ``CallSid`` other than the one we placed
    for this request gets a bare hang-up.
    """
    request = (
        CallbackRequest.objects.select_related("tenant", "conversation", "interaction")
        .filter(pk=callback_request_id, tenant=tenant)
        .first()
    )
    if request is None:
        return None
    message = ChannelMessage.objects.filter(
        tenant=tenant, channel=Channel.VOICE, idempotency_key=f"callback:{request.pk}"
    ).first()
    sid = params.get("CallSid", "")
    if message is None or not sid or (message.provider_id and message.provider_id != sid):
        logger.warning("callback %s answer webhook for an unexpected call %s", request.pk, sid or "-")
        return twiml.hangup()
    with transaction.atomic():
        interaction = Interaction.objects.select_for_update().get(pk=message.interaction_id)
        answered_by = (interaction.metadata or {}).get("answered_by")
        first = answered_by is None
        if first:
            answered_by = params.get("AnsweredBy", "")
        human = answered_by in HUMAN_ANSWERS
        if human:
            words = callback_first_words(request)
            document = twiml.gather(words, turn=1)
            updates = {"answered_by": answered_by or "unknown"}
        else:
            words = callback_machine_message(tenant=tenant, number=message.sender)
            document = twiml.goodbye(words)
            updates = {"answered_by": answered_by, "callback_outcome": "left_message"}
        if first:
            interaction_set_metadata(interaction=interaction, updates=updates)
            interaction_append_turn(
                interaction=interaction,
                role="agent",
                text=words,
                event="callback_intro" if human else "callback_machine_message",
            )
            if not human:
                callback_request_set_status(
                    callback_request_id=request.pk, status=CallbackRequest.Status.FAILED, only_from=OPEN
                )
    return document


def callback_call_ended(*, interaction: Interaction, status: str) -> None:
    """A callback call reached a terminal status: the request is ``done`` if it was answered (``completed``),
    else ``failed`` (busy, no-answer, failed, canceled) so staff see it in admin. A request already ``failed``
    because a machine answered (:func:`callback_answered`) stays so."""
    request_id = (interaction.metadata or {}).get("callback_request_id")
    if not request_id:
        return
    final = CallbackRequest.Status.DONE if status == "completed" else CallbackRequest.Status.FAILED
    callback_request_set_status(callback_request_id=request_id, status=final, only_from=OPEN)


def on_callback_requested(sender, *, interaction_id=None, callback_request_id=None, **kwargs) -> None:
    """Receiver of ``callback_requested`` (already sent on commit): queue the call, at ``preferred_at`` if later."""
    from channels_app.voice.tasks import voice_place_callback

    if callback_request_id is None and interaction_id is not None:
        callback_request_id = (
            CallbackRequest.objects.filter(interaction_id=interaction_id, status__in=OPEN)
            .values_list("pk", flat=True)
            .first()
        )
    if callback_request_id is None:
        logger.warning("callback_requested for interaction %s without a pending request", interaction_id)
        return
    preferred = CallbackRequest.objects.filter(pk=callback_request_id).values_list("preferred_at", flat=True).first()
    eta = preferred if preferred and preferred > timezone.now() else None
    voice_place_callback.apply_async((callback_request_id,), eta=eta)
