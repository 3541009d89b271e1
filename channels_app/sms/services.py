"""The SMS channel: receive an inbound Twilio message, deliver outbound messages (replies: :mod:`.replies`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from channels_app.delivery import (
    Claim,
    delivery_claim,
    delivery_record_failed,
    delivery_record_sent,
    delivery_release,
    known_provider_ids,
)
from channels_app.sms.keywords import Keyword, classify
from conversations.models import Channel, ChannelMessage, Interaction
from conversations.services import (
    Received,
    message_prepare_outbound,
    message_receive,
    session_open,
)
from identity.models import CustomerIdentifier, IdentifierKind, Tenant, TenantPhoneNumber
from identity.normalize import normalize_phone
from identity.services import customer_resolve, phone_set_opt_out
from providers import ProviderPermanentError, ProviderTransientError
from providers.sms import get_sms_backend

logger = logging.getLogger(__name__)

STATUS_CALLBACK_PATH = "/twilio/sms/status/"


class InvalidSms(ValueError):
    """The webhook lacks what an inbound SMS must have (MessageSid, a usable From) or exceeds Twilio's bounds."""


#: Twilio's bounds of one inbound message (https://www.twilio.com/docs/messaging/api/message-resource and the
#: messaging webhook's parameters): a body of at most 1,600 characters, at most 10 media, 34-character SIDs.
MAX_BODY_CHARS = 1600
MAX_MEDIA = 10
MAX_SID_CHARS = 64  # SIDs are 34 characters; a little slack, never a megabyte
MAX_MEDIA_URL_CHARS = 2048


def sms_params_check(params: Mapping[str, str]) -> dict[str, str]:
    """The webhook's parameters within Twilio's bounds, as a plain dict; :class:`InvalidSms` (400) for what no
    genuine Twilio request carries (a non-integer or out-of-range ``NumMedia``, an oversize SID or media URL).

    A ``Body`` over :data:`MAX_BODY_CHARS` is cut there and ``BodyTruncatedFrom`` records its length, so the
    turn says so instead of silently storing less (or a megabyte). Runs before any handler or query.
    """
    clean = {key: params.get(key, "") for key in params}
    num_media = clean.get("NumMedia") or "0"
    if not (num_media.isascii() and num_media.isdigit() and len(num_media) <= 2 and int(num_media) <= MAX_MEDIA):
        raise InvalidSms(f"NumMedia must be an integer from 0 to {MAX_MEDIA}")
    for key in ("MessageSid", "SmsSid", "AccountSid", "MessagingServiceSid"):
        if len(clean.get(key, "")) > MAX_SID_CHARS:
            raise InvalidSms(f"{key} is too long")
    for i in range(int(num_media)):
        if len(clean.get(f"MediaUrl{i}", "")) > MAX_MEDIA_URL_CHARS:
            raise InvalidSms(f"MediaUrl{i} is too long")
    body = clean.get("Body", "")
    if len(body) > MAX_BODY_CHARS:
        clean["Body"] = body[:MAX_BODY_CHARS]
        clean["BodyTruncatedFrom"] = str(len(body))
    return clean


def sms_check(*, tenant: Tenant, params: Mapping[str, str]) -> tuple[dict[str, str], str, str]:
    """``(params, MessageSid, sender)``: the parameters bounded (:func:`sms_params_check`), the SID and the
    sender in E.164. Raises :class:`InvalidSms` (the webhook's 400) for a malformed request; runs no query."""
    clean = sms_params_check(params)
    sid = clean.get("MessageSid") or clean.get("SmsSid") or ""
    phone = normalize_phone(clean.get("From"), tenant.country)
    if not sid:
        raise InvalidSms("MessageSid is required")
    if not phone:
        raise InvalidSms("From is not a usable phone number")
    return clean, sid, phone


def sms_claimed(*, tenant: Tenant, params: Mapping[str, str]) -> bool:
    """True when a handler in ``settings.SMS_INBOUND_HANDLERS`` (dotted paths of ``f(tenant, params) -> bool``)
    claimed the message — e.g. an on-call clinician's "ACK" — so the patient flow must not record it."""
    return any(import_string(path)(tenant, params) for path in getattr(settings, "SMS_INBOUND_HANDLERS", []))


def sms_receive(*, tenant: Tenant, params: Mapping[str, str]) -> Received | None:
    """Handle Twilio's inbound-message webhook parameters for ``tenant`` in this process; return what was
    recorded: :func:`sms_check`, then the handlers (:func:`sms_claimed`; a claimed message returns None), then
    :func:`sms_record`. The webhook runs this inline only with ``SMS_INTAKE_INLINE``; otherwise it stores the
    message and queues the same recording (:mod:`channels_app.sms.intake`). Raises :class:`InvalidSms`."""
    params, sid, phone = sms_check(tenant=tenant, params=params)
    if sms_claimed(tenant=tenant, params=params):
        return None
    return sms_record(tenant=tenant, params=params, sid=sid, phone=phone)


def sms_record(
    *, tenant: Tenant, params: Mapping[str, str], sid: str, phone: str, reply_queue: str | None = None
) -> Received:
    """Record one checked inbound SMS (:func:`sms_check`): resolve the sender by phone, store the message as one
    turn (once per MessageSid), apply STOP / START / HELP, and on commit queue the reply (on ``reply_queue``
    when given: the escalation lane answers an emergency ahead of a backlog). Queuing the reply never fails the
    caller (a broker outage is logged; the inbound redrive catches up); the reply itself is
    :func:`channels_app.sms.replies.sms_reply`."""
    body = params.get("Body", "")
    media = [params.get(f"MediaUrl{i}") for i in range(int(params.get("NumMedia") or 0))]
    extra: dict = {"media": [m for m in media if m]} if any(media) else {}
    if "BodyTruncatedFrom" in params:
        extra["truncated_from_chars"] = int(params["BodyTruncatedFrom"])
    with transaction.atomic():
        customer = customer_resolve(tenant=tenant, phone=phone, verified_kinds=("phone",)).customer
        received = message_receive(
            tenant=tenant,
            customer=customer,
            channel=Channel.SMS,
            provider_id=sid,
            sender=phone,
            recipient=params.get("To", ""),
            text=body,
            idle_window=tenant.sms_idle_window,
            turn_extra=extra,
        )
        if received.duplicate:
            logger.info("duplicate inbound SMS %s ignored", sid)
            return received
        keyword = classify(body)
        if keyword is Keyword.OPT_OUT:
            phone_set_opt_out(tenant=tenant, phone=phone, opted_out=True)
            return received  # Twilio itself sends the carrier-required opt-out confirmation
        if keyword is Keyword.OPT_IN:
            phone_set_opt_out(tenant=tenant, phone=phone, opted_out=False)
        from channels_app.tasks import sms_reply

        message_id = received.message.pk
        # robust: with the broker down the message stays recorded and Twilio still gets its 200 (it would not
        # retry a 500 anyway); channels_app.sms.replies.sms_reply_redrive queues the reply later.
        if reply_queue:
            transaction.on_commit(lambda: sms_reply.apply_async((message_id,), queue=reply_queue), robust=True)
        else:
            transaction.on_commit(lambda: sms_reply.delay(message_id), robust=True)
    return received


def is_opted_out(*, tenant: Tenant, phone: str) -> bool:
    """True if ``phone`` (E.164) texted STOP to this tenant and has not opted back in."""
    return CustomerIdentifier.objects.filter(
        tenant=tenant, kind=IdentifierKind.PHONE, value=phone, sms_opted_out_at__isnull=False
    ).exists()


def _opt_out_reason(message: ChannelMessage) -> tuple[str, str] | None:
    if is_opted_out(tenant=message.tenant, phone=message.recipient):
        return "21610", "recipient opted out (STOP)"
    return None


def sms_deliver(*, message_id: int) -> ChannelMessage:
    """Hand a pending outbound SMS to the provider, exactly once per row (see :mod:`channels_app.delivery`).

    Claim (committed) → send → record, with no transaction or row lock held across the HTTP call. Opted-out
    recipients are never sent to (status ``suppressed``); permanent provider errors mark it ``failed`` (code
    only) unless this attempt was superseded by a newer claim (then that attempt decides); transient ones
    (``ProviderTransientError``) propagate so the task retries. When an earlier attempt may have reached Twilio
    (5xx, read timeout, worker killed), the retry first looks for a message with this body sent to this number
    since that attempt (``find_recent``) and adopts it instead of sending again.
    """
    claim = delivery_claim(message_id=message_id, skip=_opt_out_reason)
    if not isinstance(claim, Claim):
        if claim.status == ChannelMessage.Status.SUPPRESSED:
            logger.info("outbound SMS %s suppressed: recipient opted out", claim.pk)
        return claim
    message, backend = claim.message, get_sms_backend()
    try:
        if claim.reconcile_since is not None:
            found = backend.find_recent(
                tenant=message.tenant,
                from_=message.sender,
                to=message.recipient,
                body=message.body,
                since=claim.reconcile_since,
                exclude=known_provider_ids(message=message, since=claim.reconcile_since),
            )
            if found:
                logger.info(
                    "outbound SMS %s found at the provider (%s) after an uncertain attempt", message.pk, found.sid
                )
                delivery_record_sent(message=message, provider_id=found.sid, status=found.status)
                return message
        sent = backend.send(
            tenant=message.tenant,
            from_=message.sender,
            to=message.recipient,
            body=message.body,
            status_callback=settings.PUBLIC_BASE_URL + STATUS_CALLBACK_PATH,
        )
    except ProviderPermanentError as exc:
        if delivery_record_failed(claim=claim, error_code=exc.code):
            logger.warning("outbound SMS %s failed permanently: code %s", message.pk, exc.code or "?")
        return message
    except ProviderTransientError as exc:
        delivery_release(claim=claim, request_sent=exc.request_sent)
        raise
    delivery_record_sent(message=message, provider_id=sent.sid, status=sent.status)
    return message


def tenant_sender_number(tenant: Tenant) -> str:
    """The tenant's first phone number (E.164), used as ``From`` for messages we start."""
    number = TenantPhoneNumber.objects.filter(tenant=tenant).order_by("id").values_list("number", flat=True).first()
    if not number:
        raise ValueError(f"tenant {tenant.slug} has no phone number")
    return number


def sms_send(
    *,
    tenant: Tenant,
    customer,
    to: str,
    body: str,
    idempotency_key: str,
    interaction: Interaction | None = None,
    transcript_text: str | None = None,
) -> ChannelMessage:
    """Send an SMS we start (confirmations, links) to ``to`` (E.164), recorded in the customer's timeline.

    Creates the outbound turn once per ``idempotency_key`` (in ``interaction`` or the customer's open SMS
    session) and delivers it on commit through a task. ``transcript_text`` replaces the body in the transcript
    when the body holds a secret (see :func:`conversations.services.message_prepare_outbound`).
    """
    from channels_app.tasks import sms_deliver_task

    with transaction.atomic():
        if interaction is None:
            interaction, _ = session_open(
                tenant=tenant,
                customer=customer,
                channel=Channel.SMS,
                direction="outbound",
                idle_window=tenant.sms_idle_window,
            )
        message, created = message_prepare_outbound(
            interaction=interaction,
            sender=tenant_sender_number(tenant),
            recipient=to,
            body=body,
            idempotency_key=idempotency_key,
            transcript_text=transcript_text,
        )
        if created:
            transaction.on_commit(lambda: sms_deliver_task.delay(message.pk))
    return message
